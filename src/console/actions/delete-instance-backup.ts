// DeleteInstanceBackup (console only; the cloud API has no such action): removes a backup's files and marks it
// deleted (Status -2), as `crs-backup backup delete` does; the record stays for the audit trail.
import { defineBackupAction } from "../../actions/action";
import { ApiError } from "../../protocol/errors";

export default defineBackupAction({
  name: "DeleteInstanceBackup",
  async handle({ backup }, ctx, p) {
    // One already deleted is as absent as an unknown one.
    if (backup.status === -2) throw new ApiError("InvalidParameterValue.BackupNotExists", { backupId: p.BackupId! });
    if (backup.status === -1) throw new ApiError("InvalidParameterValue", { reason: `the backup ${backup.backupId} has expired (-1): its files are already removed` });
    if (backup.status === 1 || backup.locked) throw new ApiError("ResourceUnavailable.BackupLockedError", { backupId: backup.backupId });
    // Locked by an export or a restore that began after the check above: BackupLockedError (actions/errors.ts).
    await ctx.services.backups.retire(backup, -2, ctx.accountId);
    return { BackupId: backup.backupId, Status: -2 };
  },
});
