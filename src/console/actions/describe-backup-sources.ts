// DescribeBackupSources (console only): which node each shard of a backup was taken from — its role (master or
// replica), address and replication offset when the snapshot was asked for (recorded since catalogue migration 5;
// older and fixture backups have none: an empty list). A CAM policy allows it as DescribeInstanceBackups.
import { defineBackupAction } from "../../actions/action";

export default defineBackupAction({
  name: "DescribeBackupSources",
  policyAction: "DescribeInstanceBackups",
  async handle({ backup }) {
    const sources = [...(backup.source ?? [])].sort((a, b) => a.shard - b.shard);
    return {
      BackupId: backup.backupId,
      // The shard's number as the task message gives it (1-based), like the files' names.
      Sources: sources.map((s) => ({ Shard: s.shard + 1, Role: s.role, Node: s.node, Offset: s.offset ?? null })),
    };
  },
});
