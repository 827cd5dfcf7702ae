// ModifyInstanceBackupSource (console only; the cloud API has no such action): which node of each shard an
// instance's backups are taken from — master, replica (never the master) or prefer-replica (the master when no
// replica is healthy, and the task says so); src/redis/capture/source.ts has the rules. The CLI sets it with
// `instance add --backup-source`, a fixture with BackupSource. A CAM policy allows it as ModifyAutoBackupConfig:
// it is one of the instance's backup settings. The next backup (manual or automatic) follows the new setting.
import { defineInstanceAction } from "../../actions/action";
import { ApiError } from "../../protocol/errors";
import { BACKUP_SOURCES, BackupSource } from "../../records";

export default defineInstanceAction({
  name: "ModifyInstanceBackupSource",
  policyAction: "ModifyAutoBackupConfig",
  mutates: true,
  params: {
    BackupSource: { type: "string", required: true, maxLength: 32 },
  },
  async handle(instance, ctx, p) {
    const source = p.BackupSource! as BackupSource;
    if (!BACKUP_SOURCES.includes(source)) {
      throw new ApiError("InvalidParameterValue", { reason: `\`BackupSource\` must be one of ${BACKUP_SOURCES.join(", ")}, got ${JSON.stringify(p.BackupSource)}` });
    }
    if (!instance.redisUrl) {
      throw new ApiError("FailedOperation.UnSupportError", { reason: `the instance \`${instance.instanceId}\` has no Redis server registered, so it is never backed up` });
    }
    if ((instance.backupSource ?? "master") !== source) await ctx.catalog.updateInstance(instance.instanceId, { backupSource: source });
    return { InstanceId: instance.instanceId, BackupSource: source };
  },
});
