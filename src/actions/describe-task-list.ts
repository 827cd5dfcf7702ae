// DescribeTaskList: an account's tasks in the region, filtered and paged, newest first.
import { RESULT_OF, STATUS_OF_RESULT } from "../jobs/tasks";
import type { TaskStatus } from "../catalog/types";
import { businessParameter } from "../protocol/errors";
import { defineAction, ID_MAX_LENGTH, pageParams } from "./action";

export default defineAction({
  name: "DescribeTaskList",
  instanceParam: "InstanceId",
  schema: {
    InstanceId: { type: "string", maxLength: ID_MAX_LENGTH },
    InstanceName: { type: "string", maxLength: 128 },
    ...pageParams(100),
    ProjectIds: { type: "array", items: { type: "integer" }, maxItems: 100 },
    TaskTypes: { type: "array", items: { type: "string", maxLength: 16 }, maxItems: 100 },
    BeginTime: { type: "string", maxLength: 32 },
    EndTime: { type: "string", maxLength: 32 },
    TaskStatus: { type: "array", items: { type: "integer" }, maxItems: 100 },
    Result: { type: "array", items: { type: "integer" }, maxItems: 100 },
    OperatorUin: { type: "array", items: { type: "integer" }, maxItems: 100 },
    OperateUin: { type: "array", items: { type: "string", maxLength: 64 }, maxItems: 100 },
  },
  async handle(p, ctx) {
    const time = (name: "BeginTime" | "EndTime") => {
      const text = p[name];
      if (text === undefined) return undefined;
      const t = ctx.time.parse(text);
      if (t === undefined) throw businessParameter(`\`${name}\` must be a time like 2021-12-30 00:00:00, got ${JSON.stringify(text.slice(0, 40))}`);
      return t;
    };
    const statuses = p.Result?.map((r) => {
      const s = STATUS_OF_RESULT[r];
      if (!s) throw businessParameter(`\`Result\` values must be among 0, 1, 2, 4; got ${r}`);
      return s;
    });
    const end = time("EndTime");
    const { total, rows } = await ctx.scope.listTasks({
      instanceId: p.InstanceId, instanceName: p.InstanceName, taskTypes: p.TaskTypes,
      statuses: statuses as TaskStatus[] | undefined, begin: time("BeginTime"), end: end === undefined ? undefined : end + 999,
      limit: p.Limit ?? 20, offset: p.Offset ?? 0,
    });
    // Failures this node knows but the catalogue has not accepted yet (a full disk) are shown as failed; the
    // filters and the total still see the catalogue's state until the write goes through.
    const known = (t: { taskId: number; status: TaskStatus }) => t.status === "running" || t.status === "preparing" ? ctx.services.runner.outcomeOf(t.taskId) : undefined;
    return {
      TotalCount: total,
      Tasks: rows.map((t) => {
        const k = known(t);
        const endTime = k?.endTime ?? t.endTime;
        return {
          TaskId: t.taskId, StartTime: ctx.time.format(t.startTime), TaskType: t.taskType, InstanceName: t.instanceName, InstanceId: t.instanceId,
          ProjectId: 0, Progress: t.progress, EndTime: endTime !== undefined ? ctx.time.format(endTime) : "", Result: RESULT_OF[k?.status ?? t.status],
        };
      }),
    };
  },
});
