// The lifecycle clock: automatic backups once per window on the chosen days (server time zone), retention
// (Status -1 when ExpireTime passes, files removed; a locked backup waits until released) and the end of the
// audit trail of deleted backups. One tick does one pass; the server ticks on an interval, tests tick by hand
// with a clock they control. Every node ticks: a window is served once (the instance's lastAutoWindow is set in
// the transaction that queues the backup, under the instance's lock) and a backup expires once (a conditional
// status change), whichever node gets there first.
import type { Catalog } from "../catalog/catalog";
import type { Instance } from "../catalog/types";
import type { Logger } from "../log";
import { parsePeriod, WEEKDAYS } from "../protocol/schedule";
import type { LocalTime } from "../protocol/time";
import type { Clock } from "../config";
import { BackupJobs, DAY_MS } from "./backups";
import { InstanceBusyError } from "./errors";
import { DiskSpaceError } from "./disk-space";
import type { BlobStore } from "../storage/blob-store";
import { reclaimStreams, StreamRetentionResult } from "./stream-retention";

const HOUR_MS = 3_600_000;

/** The instance's backup window open at `now`, if any: its start (epoch ms). */
export function openWindow(instance: Pick<Instance, "autoBackupWeekDays" | "autoBackupPeriod">, now: number, time: LocalTime): number | undefined {
  const period = parsePeriod(instance.autoBackupPeriod);
  if (!period) return undefined;
  // A window that opened yesterday may still be open after midnight.
  for (const daysBack of [0, 1]) {
    const p = time.parts(now - daysBack * DAY_MS);
    const start = time.parse(`${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(period.startHour)}:00:00`);
    if (start === undefined) continue;
    const weekday = WEEKDAYS[time.parts(start).weekday]!;
    if (start <= now && now < start + period.hours * HOUR_MS && instance.autoBackupWeekDays.includes(weekday)) return start;
  }
  return undefined;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

export interface SchedulerOptions {
  catalog: Catalog;
  backups: BackupJobs;
  clock: Clock;
  time: LocalTime;
  /** How long records of deleted (and expired) backups are kept, in days. */
  auditDays: number;
  /** Whether automatic backups are taken at all (off: retention and purging still run). */
  autoBackups: boolean;
  logger: Logger;
  /** The store second-level backup streams live in: with it, each pass runs their retention (jobs/stream-retention.ts). */
  store?: BlobStore;
}

export interface TickResult {
  started: string[];
  expired: string[];
  purged: number;
  /** Second-level backup retention, per stream. */
  streams?: StreamRetentionResult[];
}

export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<TickResult> | undefined;
  /** Windows whose automatic backup was skipped for free space (instance@window), so it is said once. */
  private readonly skipped = new Set<string>();

  constructor(private readonly o: SchedulerOptions) {}

  /** One pass over automatic backups, retention and the audit trail; concurrent calls share the pass. */
  tick(): Promise<TickResult> {
    this.ticking ??= this.pass().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async pass(): Promise<TickResult> {
    const { catalog, backups, clock, time, logger } = this.o;
    const now = clock.now();
    const result: TickResult = { started: [], expired: [], purged: 0 };
    for (const instance of this.o.autoBackups ? await catalog.instances() : []) {
      if (instance.deletedAt !== undefined || !instance.redisUrl) continue;
      const window = openWindow(instance, now, time);
      if (window === undefined || instance.lastAutoWindow >= window) continue;
      try {
        const queued = await backups.enqueue(instance, { automatic: true }, window);
        if (queued) {
          result.started.push(instance.instanceId);
          logger.info({ instanceId: instance.instanceId, taskId: queued.taskId, backupId: queued.backupId, window: new Date(window).toISOString() }, "automatic backup queued");
        }
      } catch (err) {
        // A manual backup is running: try again on a later tick while the window is open.
        if (err instanceof DiskSpaceError) {
          // Skipped, not recorded as a failed task (that would need the very space that is short): the window
          // stays unserved, so every pass tries again while it is open. Said once per window at warn level.
          const key = `${instance.instanceId}@${window}`;
          const first = !this.skipped.has(key);
          if (first) this.skipped.add(key);
          if (this.skipped.size > 10_000) this.skipped.clear();
          logger[first ? "warn" : "debug"]({ instanceId: instance.instanceId, window: new Date(window).toISOString(), reason: err.message },
            "automatic backup skipped: not enough free space; retried on every pass while its window is open");
        } else if (!(err instanceof InstanceBusyError)) logger.warn({ err, instanceId: instance.instanceId }, "automatic backup not started");
      }
    }
    // Streams first: a base a second in retention still needs has its ExpireTime moved on before the expiry below.
    if (this.o.store) result.streams = await reclaimStreams({ catalog, store: this.o.store, backups, logger }, now);
    for (const b of await catalog.expiredBackups(now)) {
      if (b.locked) continue; // held by an export or a restore: expires once released
      const owner = await catalog.instance(b.instanceId);
      try {
        if (await backups.retire(b, -1, owner?.accountId ?? "")) result.expired.push(b.backupId);
      } catch (err) {
        logger.info({ instanceId: b.instanceId, backupId: b.backupId, reason: (err as Error).message }, "expiry of a backup deferred");
      }
    }
    result.purged = await catalog.purgeRetired(now - this.o.auditDays * DAY_MS);
    if (result.started.length || result.expired.length || result.purged) {
      logger.info({ started: result.started.length, expired: result.expired.length, purged: result.purged }, "scheduler pass");
    }
    return result;
  }

  start(intervalMs: number): void {
    if (intervalMs <= 0) return;
    // A failed pass (e.g. the catalogue busy past its timeout) is logged and retried on the next one; an
    // unhandled rejection would stop the server.
    const run = () => void this.tick().catch((err: unknown) => this.o.logger.error({ err }, "scheduler pass failed; retrying on the next one"));
    run();
    this.timer = setInterval(run, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking?.catch(() => undefined);
  }
}
