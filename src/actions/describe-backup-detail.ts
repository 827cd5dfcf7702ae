// DescribeBackupDetail: one backup of one instance.
import { ApiError } from "../protocol/errors";
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
      KeyAlgorithm: "",
    };
  },
});
