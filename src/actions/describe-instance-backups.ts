// DescribeInstanceBackups: an instance's backups, newest first, paged and filtered (the seed's contract).
import { BACKUP_STATUSES } from "../catalog/types";
import { businessParameter } from "../protocol/errors";
import { defineInstanceAction, pageParams } from "./action";
import { backupSetJson } from "./format";
import { TASK } from "../jobs/tasks";

const BACKUP_TASKS: readonly string[] = [TASK.backup, TASK.autoBackup];

const range = "InvalidParameter.InvalidParameter" as const;

export default defineInstanceAction({
  name: "DescribeInstanceBackups",
  params: {
    ...pageParams(100),
    BeginTime: { type: "string", maxLength: 32 },
    EndTime: { type: "string", maxLength: 32 },
    Status: { type: "array", items: { type: "integer", rangeCode: range }, maxItems: 100 },
    InstanceName: { type: "string", maxLength: 128 },
  },
  async handle(instance, ctx, p) {
    const begin = p.BeginTime !== undefined ? parseTime(ctx.time.parse(p.BeginTime), "BeginTime", p.BeginTime) : undefined;
    const end = p.EndTime !== undefined ? parseTime(ctx.time.parse(p.EndTime), "EndTime", p.EndTime) : undefined;
    if (begin !== undefined && end !== undefined && begin > end) {
      throw businessParameter(`\`BeginTime\` (${p.BeginTime}) is after \`EndTime\` (${p.EndTime})`);
    }
    for (const s of p.Status ?? []) {
      if (!(BACKUP_STATUSES as readonly number[]).includes(s)) {
        throw businessParameter(`\`Status\` values must be among 1, 2, 3, 4, -1, -2; got ${s}`);
      }
    }
    if (p.InstanceName !== undefined && !instance.name.toLowerCase().includes(p.InstanceName.toLowerCase())) {
      return { TotalCount: 0, BackupSet: [] };
    }
    // EndTime names a whole second: a backup that started within it is inside the window.
    const endMs = end === undefined ? undefined : end + 999;
    const { total, rows } = await ctx.catalog.listBackups({
      instanceId: instance.instanceId, limit: p.Limit ?? 20, offset: p.Offset ?? 0, begin, end: endMs, statuses: p.Status,
    });
    // A backup whose failure this node knows but could not write yet (a full disk) is still at Status 1 in the
    // catalogue, and goes once the write succeeds: it is left out now (the page may be one short meanwhile).
    const doomed = ctx.services.runner.pendingFailures().filter((f) => f.task.instanceId === instance.instanceId && f.task.backupId
      && BACKUP_TASKS.includes(f.task.taskType));
    if (!doomed.length) return { TotalCount: total, BackupSet: backupSetJson(rows, instance, ctx.time) };
    const ids = new Set(doomed.map((f) => f.task.backupId!));
    const inFilter = (startTime: number) => (!p.Status?.length || p.Status.includes(1))
      && (begin === undefined || startTime >= begin) && (endMs === undefined || startTime <= endMs);
    const hidden = doomed.filter((f) => inFilter(f.task.startTime)).length;
    return {
      TotalCount: Math.max(0, total - hidden),
      BackupSet: backupSetJson(rows.filter((b) => !(b.status === 1 && ids.has(b.backupId))), instance, ctx.time),
    };
  },
});

function parseTime(t: number | undefined, name: string, text: string): number {
  if (t === undefined) throw businessParameter(`\`${name}\` must be a time like 2017-02-08 16:46:34, got ${JSON.stringify(text.slice(0, 40))}`);
  return t;
}
