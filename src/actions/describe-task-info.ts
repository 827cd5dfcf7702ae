// DescribeTaskInfo: one task's state (preparing, running, succeed, failed), as Terraform polls it.
import { TASK_NAMES } from "../jobs/tasks";
import { ApiError } from "../protocol/errors";
import { defineAction } from "./action";

export default defineAction({
  name: "DescribeTaskInfo",
  schema: { TaskId: { type: "integer", required: true, min: 0 } },
  async handle(p, ctx) {
    const task = await ctx.catalog.task(p.TaskId!);
    const instance = task && (await ctx.catalog.instance(task.instanceId));
    // Another account's or region's task is as absent as an unknown one.
    const allowed = ctx.credential.policy?.Instances;
    const hidden = allowed !== undefined && !allowed.includes("*") && task !== undefined && !allowed.includes(task.instanceId);
    if (!task || hidden || task.accountId !== ctx.accountId || (instance && instance.region !== ctx.region)) {
      throw new ApiError("ResourceNotFound.TaskNotExists", { taskId: p.TaskId! });
    }
    return {
      Status: task.status,
      StartTime: ctx.time.format(task.startTime),
      TaskType: TASK_NAMES[task.taskType] ?? task.taskType,
      InstanceId: task.instanceId,
      TaskMessage: task.message,
    };
  },
});
