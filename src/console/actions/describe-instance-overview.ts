// DescribeInstanceOverview (console only): one page of the caller's instances in the region with what the
// instances page shows: the registration, the last backup and its age, the next automatic-backup window and
// the sizes and durations of the latest backups (the trend). Computed server-side one page at a time, with one
// indexed listing query per instance, so it stays fast at 1,000 instances and 100,000 backups.
// A CAM policy allows it as DescribeInstances; backup figures need DescribeInstanceBackups and the schedule
// DescribeAutoBackupConfig, else they are null.
import type { Backup, Instance } from "../../catalog/types";
import { defineAction, pageParams } from "../../actions/action";
import { parseRedisUrl, shownAddress } from "../../redis/client/url";
import { nextWindow } from "../schedule";
import { policyAllows } from "../../actions/scope";

/** How many of the latest backups make the trend. */
export const TREND_LENGTH = 12;

function endpoint(i: Instance): { WanIp: string; Port: number } {
  if (!i.redisUrl) return { WanIp: "", Port: 0 };
  const at = shownAddress(parseRedisUrl(i.redisUrl));
  return { WanIp: at.host, Port: at.port };
}

export default defineAction({
  name: "DescribeInstanceOverview",
  policyAction: "DescribeInstances",
  instanceParam: "InstanceId",
  schema: {
    ...pageParams(100),
    SearchKey: { type: "string", maxLength: 128 },
    /** One instance (the instance page): looked up by id instead of listing the account's instances. */
    InstanceId: { type: "string", maxLength: 64 },
  },
  async handle(p, ctx) {
    const { catalog, time, credential } = ctx;
    const now = ctx.services.clock.now();
    const key = p.SearchKey?.trim().toLowerCase() || undefined;
    const one = p.InstanceId !== undefined ? await ctx.scope.instance(p.InstanceId).catch(() => undefined) : undefined;
    const candidates = p.InstanceId !== undefined ? (one && ctx.scope.allows(one.instanceId) ? [one] : []) : await ctx.scope.instances();
    const all = candidates.filter((i) => policyAllows(credential, "DescribeInstances", i.instanceId)
      && (key === undefined || i.instanceId.includes(key) || i.name.toLowerCase().includes(key)));
    const offset = p.Offset ?? 0;
    const page = all.slice(offset, offset + (p.Limit ?? 20));
    const fmt = (t: number | undefined) => (t === undefined ? "" : time.format(t));
    const set = [];
    for (const i of page) {
      const seesBackups = policyAllows(credential, "DescribeInstanceBackups", i.instanceId);
      const seesSchedule = policyAllows(credential, "DescribeAutoBackupConfig", i.instanceId);
      let latest: { total: number; rows: Backup[] } | undefined;
      if (seesBackups) latest = await catalog.listBackups({ instanceId: i.instanceId, limit: TREND_LENGTH, offset: 0 });
      const last = latest?.rows[0];
      const window = seesSchedule && i.redisUrl ? nextWindow(i, now, time) : undefined;
      set.push({
        InstanceId: i.instanceId,
        InstanceName: i.name,
        Region: i.region,
        Type: i.instanceType,
        RedisVersion: i.redisVersion ?? "",
        ShardNum: i.shardNum,
        Size: i.memSizeMb * Math.max(1, i.shardNum),
        Createtime: time.format(i.createdAt),
        // Catalogue-only (fixture) instances have no server: nothing can be backed up or restored into them.
        Registered: i.redisUrl !== undefined,
        ...endpoint(i),
        // Which node of each shard backups are taken from (src/redis/capture/source.ts).
        BackupSource: i.backupSource ?? "master",
        AutoBackup: seesSchedule ? { WeekDays: i.autoBackupWeekDays, TimePeriod: i.autoBackupPeriod, BackupStorageDays: i.backupStorageDays } : null,
        NextWindow: window ? { StartTime: time.format(window.start), EndTime: time.format(window.end), InSeconds: Math.max(0, Math.round((window.start - now) / 1000)) } : null,
        BackupCount: latest ? latest.total : null,
        LastBackup: last ? {
          BackupId: last.backupId, StartTime: time.format(last.startTime), EndTime: fmt(last.endTime), Status: last.status, BackupType: last.backupType,
          BackupSize: last.backupSize, AgeSeconds: Math.max(0, Math.round((now - last.startTime) / 1000)),
        } : null,
        // Oldest first; a backup still being taken has no size yet.
        Trend: latest ? latest.rows.filter((b) => b.status !== 1).reverse().map((b) => ({
          BackupId: b.backupId, StartTime: time.format(b.startTime), BackupSize: b.backupSize,
          DurationSeconds: b.endTime !== undefined ? Math.max(0, Math.round((b.endTime - b.startTime) / 1000)) : null,
        })) : null,
      });
    }
    return { TotalCount: all.length, ServerTime: time.format(now), TimeZone: time.timeZone, InstanceSet: set };
  },
});
