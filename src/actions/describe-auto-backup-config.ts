// DescribeAutoBackupConfig: the instance's automatic backup schedule and retention.
import { defineInstanceAction } from "./action";

export default defineInstanceAction({
  name: "DescribeAutoBackupConfig",
  params: {},
  async handle(i) {
    return { AutoBackupType: 1, WeekDays: i.autoBackupWeekDays, TimePeriod: i.autoBackupPeriod, BackupStorageDays: i.backupStorageDays, BinlogStorageDays: 0 };
  },
});
