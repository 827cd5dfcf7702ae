// DescribeAutoBackupConfig: the instance's automatic backup schedule and retention.
import { defineAction, ID_MAX_LENGTH } from "./action";

export default defineAction({
  name: "DescribeAutoBackupConfig",
  instanceParam: "InstanceId",
  schema: { InstanceId: { type: "string", required: true, maxLength: ID_MAX_LENGTH } },
  async handle(p, ctx) {
    const i = await ctx.scope.instance(p.InstanceId!);
    return { AutoBackupType: 1, WeekDays: i.autoBackupWeekDays, TimePeriod: i.autoBackupPeriod, BackupStorageDays: i.backupStorageDays, BinlogStorageDays: 0 };
  },
});
