// ManualBackupInstance: start a backup of a live instance; the TaskId comes back at once.
import { ApiError } from "../protocol/errors";
import { defineInstanceAction } from "./action";

export default defineInstanceAction({
  name: "ManualBackupInstance",
  mutates: true,
  params: {
    Remark: { type: "string", maxLength: 256 },
    StorageDays: { type: "integer", min: 0, max: 1825 },
  },
  async handle(instance, ctx, p) {
    if (!instance.redisUrl) {
      throw new ApiError("ResourceUnavailable.InstanceStatusAbnormal", { reason: `${instance.instanceId} has no Redis server registered (a catalogue-only instance), so it cannot be backed up` });
    }
    // A backup already in progress: InstanceBusyError -> ResourceUnavailable.InstanceLockedError (actions/errors.ts).
    const started = await ctx.services.backups.enqueue(instance, { remark: p.Remark, storageDays: p.StorageDays });
    return { TaskId: started!.taskId };
  },
});
