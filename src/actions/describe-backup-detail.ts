// DescribeBackupDetail: one backup of one instance. The encryption fields the API may leave out (DecryptKey,
// KmsKeyId, KeyAlgorithm) are left out when they do not apply, as the cloud does: an unencrypted backup answers
// Encrypted false and none of them. An encrypted one (only fixture backups can be) names the cloud's one
// algorithm; it has no key here, so DecryptKey and KmsKeyId stay out.
import { defineAction, ID_MAX_LENGTH } from "./action";

export default defineAction({
  name: "DescribeBackupDetail",
  instanceParam: "InstanceId",
  schema: { InstanceId: { type: "string", required: true, maxLength: ID_MAX_LENGTH }, BackupId: { type: "string", required: true, maxLength: ID_MAX_LENGTH } },
  async handle(p, ctx) {
    const instance = await ctx.scope.instance(p.InstanceId!);
    const { backup: b } = await ctx.scope.backup(p.BackupId!, instance);
    return {
      BackupId: b.backupId,
      StartTime: ctx.time.format(b.startTime),
      EndTime: b.endTime !== undefined ? ctx.time.format(b.endTime) : "",
      BackupType: b.backupType,
      Status: b.status,
      Remark: b.remark,
      Locked: b.locked,
      BackupSize: b.backupSize,
      InstanceType: b.instanceType,
      MemSize: instance.memSizeMb,
      ShardNum: Math.max(1, b.files.length || instance.shardNum),
      ReplicasNum: 0,
      Encrypted: b.encrypted,
      ...(b.encrypted ? { KeyAlgorithm: "AES-256-CBC" } : {}),
    };
  },
});
