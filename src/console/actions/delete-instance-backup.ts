// DeleteInstanceBackup (console only; the cloud API has no such action): removes a backup's files and marks it
// deleted (Status -2), as `crs-backup backup delete` does; the record stays for the audit trail.
import { defineAction, ID_MAX_LENGTH, ownInstance } from "../../actions/action";
import { InstanceBusyError } from "../../jobs/backups";
import { ApiError } from "../../protocol/errors";

export default defineAction({
  name: "DeleteInstanceBackup",
  instanceParam: "InstanceId",
  schema: {
    InstanceId: { type: "string", required: true, maxLength: ID_MAX_LENGTH },
    BackupId: { type: "string", required: true, maxLength: 128 },
  },
  async handle(p, ctx) {
    const instance = await ownInstance(ctx, p.InstanceId!);
    const backup = await ctx.catalog.backup(p.BackupId!);
    // Another instance's backup, or one already deleted, is as absent as an unknown one.
    if (!backup || backup.instanceId !== instance.instanceId || backup.status === -2) {
      throw new ApiError("InvalidParameterValue.BackupNotExists", { backupId: p.BackupId! });
    }
    if (backup.status === -1) throw new ApiError("InvalidParameterValue", { reason: `the backup ${backup.backupId} has expired (-1): its files are already removed` });
    if (backup.status === 1 || backup.locked) throw new ApiError("ResourceUnavailable.BackupLockedError", { backupId: backup.backupId });
    try {
      await ctx.services.backups.retire(backup, -2, ctx.accountId);
    } catch (err) {
      // Locked by an export or a restore that began after the check above.
      if (err instanceof InstanceBusyError) throw new ApiError("ResourceUnavailable.BackupLockedError", { backupId: backup.backupId });
      throw err;
    }
    return { BackupId: backup.backupId, Status: -2 };
  },
});
