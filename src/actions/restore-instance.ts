// RestoreInstance: load one of the account's backups into a registered instance (the same one or another):
// standalone or cluster, same or other Redis/Valkey version. The API has no restore options: the path is
// chosen by the job (replication when the target loads the file as it is, commands otherwise), every key is
// restored and existing keys are replaced. DescribeTaskInfo's TaskMessage names the path and the outcome.
import crypto from "node:crypto";
import { parseRedisUrl } from "../redis/client/resp";
import { ApiError } from "../protocol/errors";
import { defineAction, ID_MAX_LENGTH } from "./action";

function samePassword(given: string, expected: string): boolean {
  const a = crypto.createHash("sha256").update(given).digest();
  const b = crypto.createHash("sha256").update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

export default defineAction({
  name: "RestoreInstance",
  instanceParam: "InstanceId",
  mutates: true,
  schema: {
    InstanceId: { type: "string", required: true, maxLength: ID_MAX_LENGTH },
    BackupId: { type: "string", required: true, maxLength: ID_MAX_LENGTH },
    Password: { type: "string", maxLength: 512 },
  },
  async handle(p, ctx) {
    const target = await ctx.scope.instance(p.InstanceId!);
    // A backup of any of the caller's instances in the region, the key's policy reaching that instance too.
    const { backup } = await ctx.scope.backup(p.BackupId!);
    if (!target.redisUrl) {
      throw new ApiError("ResourceUnavailable.InstanceStatusAbnormal", { reason: `${target.instanceId} has no Redis server registered, so nothing can be restored into it` });
    }
    if (backup.status === -1 || backup.status === -2 || backup.status === 1) {
      const what = backup.status === -1 ? "expired (-1)" : backup.status === -2 ? "deleted (-2)" : "still being taken (1)";
      throw new ApiError("ResourceUnavailable.BackupStatusAbnormal", { reason: `the backup ${backup.backupId} is ${what}` });
    }
    if (!samePassword(p.Password ?? "", parseRedisUrl(target.redisUrl).password ?? "")) throw new ApiError("InvalidParameterValue.PasswordError");
    // Refusals (a locked backup, a restore already running into the target) get their codes in actions/errors.ts.
    return { TaskId: (await ctx.services.restores.enqueue(backup, target)).taskId };
  },
});
