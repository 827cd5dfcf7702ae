// DescribeTaskInfo: one task's state (preparing, running, succeed, failed), as Terraform polls it.
import { TASK_NAMES } from "../jobs/tasks";
import { defineAction } from "./action";

export default defineAction({
  name: "DescribeTaskInfo",
  schema: { TaskId: { type: "integer", required: true, min: 0 } },
  async handle(p, ctx) {
    // Another account's or region's task (or one the key's policy does not reach) is as absent as an unknown one.
    const task = await ctx.scope.task(p.TaskId!);
    // A failure this node knows but the catalogue has not accepted yet (a full disk) is reported as it is.
    const known = task.status === "running" || task.status === "preparing" ? ctx.services.runner.outcomeOf(task.taskId) : undefined;
    return {
      Status: known?.status ?? task.status,
      StartTime: ctx.time.format(task.startTime),
      TaskType: TASK_NAMES[task.taskType] ?? task.taskType,
      InstanceId: task.instanceId,
      TaskMessage: known?.message ?? task.message,
    };
  },
});
