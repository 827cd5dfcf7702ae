// ModifyAutoBackupConfig: days of the week, a whole-hour window and the retention of automatic backups. Every
// parameter but InstanceId is optional (WeekDays and TimePeriod since the API of 2025-10-29): one left out keeps
// its current value. The answer is the configuration now in force, BackupStorageDays included.
import { ALL_WEEKDAYS as ORDER, parsePeriod } from "../protocol/schedule";
import { ApiError } from "../protocol/errors";
import type { InstanceFields } from "../catalog/types";
import { defineInstanceAction } from "./action";

export default defineInstanceAction({
  name: "ModifyAutoBackupConfig",
  mutates: true,
  params: {
    WeekDays: { type: "array", items: { type: "string", maxLength: 16 }, maxItems: 7 },
    TimePeriod: { type: "string", maxLength: 32 },
    AutoBackupType: { type: "integer", min: 1, max: 1 },
    BackupStorageDays: { type: "integer", min: 1, max: 1825 },
  },
  async handle(i, ctx, p) {
    const change: InstanceFields = {};
    if (p.WeekDays !== undefined) {
      if (p.WeekDays.length === 0) throw new ApiError("InvalidParameterValue.WeekDaysIsInvalid", { reason: "at least one day is required" });
      const days = new Set<string>();
      for (const d of p.WeekDays) {
        const day = ORDER.find((w) => w.toLowerCase() === d.toLowerCase());
        if (!day) throw new ApiError("InvalidParameterValue.WeekDaysIsInvalid", { reason: `${JSON.stringify(d)} is not one of ${ORDER.join(", ")}` });
        days.add(day);
      }
      change.autoBackupWeekDays = ORDER.filter((d) => days.has(d));
    }
    if (p.TimePeriod !== undefined) {
      if (!parsePeriod(p.TimePeriod)) {
        throw new ApiError("InvalidParameter.Period", { reason: `must be whole hours HH:00-HH:00 with different hours (e.g. 01:00-02:00), got ${JSON.stringify(p.TimePeriod)}` });
      }
      change.autoBackupPeriod = p.TimePeriod;
    }
    if (p.BackupStorageDays !== undefined) change.backupStorageDays = p.BackupStorageDays;
    if (Object.keys(change).length > 0) await ctx.catalog.updateInstance(i.instanceId, change);
    const now = { ...i, ...change };
    return { AutoBackupType: 1, WeekDays: now.autoBackupWeekDays, TimePeriod: now.autoBackupPeriod, BackupStorageDays: now.backupStorageDays };
  },
});
