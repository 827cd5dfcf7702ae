// The server's Prometheus metrics: one prom-client Registry per server (never the global one, so several servers
// in one process — tests — keep their own counts), fed by two observers (the HTTP server's request log point and
// the task runner) and by the catalogue, read at scrape time.
//
// Label values are all from closed sets, so the number of time series stays bounded whatever callers send:
// action (the registry's action names, else "other"), code (the API's error catalogue), task (a task type's
// name), reason (reasons.ts), status (a backup status). The one open label is instance_id, which is bounded by
// the catalogue.
//
// Catalogue figures (sizes, task queue, readiness) are read at most once per `cacheMs` and served from the
// last reading in between: a scrape waits for the catalogue only when there is no reading yet, so it never
// costs more than rendering (a few ms; bench/metrics.ts), whatever the catalogue's size.
import client, { Counter, Gauge, Histogram, Registry } from "prom-client";
import { actions as registeredActions } from "../actions";
import type { Instance } from "../catalog/types";
import type { RequestObserver } from "../gateway/server";
import type { RunnerObserver } from "../queue";
import { parsePeriod, WEEKDAYS } from "../protocol/schedule";
import { TASK } from "../jobs/tasks";
import type { Services } from "../services";
import type { Task, Backup } from "../catalog/types";
import { failureReason, FAILURE_REASONS } from "./reasons";
import { checkReadiness, Readiness } from "./health";
import { StreamMetrics } from "./streams";

/** The `task` label: what a task type is, in words. */
export const TASK_LABELS: Record<string, string> = {
  [TASK.backup]: "backup",
  [TASK.autoBackup]: "auto_backup",
  [TASK.exportBackup]: "export",
  [TASK.restore]: "restore",
  [TASK.deleteBackup]: "delete",
  [TASK.removeBackupFile]: "remove_file",
};

const BACKUP_TYPES: readonly string[] = [TASK.backup, TASK.autoBackup];
const DAY_S = 86_400;

export interface MetricsOptions {
  /** How long a catalogue reading (stats, readiness) is served before the next scrape refreshes it. Default 5 s. */
  cacheMs?: number;
  /** How often instances are re-read (schedules, removed instances). Default 60 s. */
  instancesEveryMs?: number;
  /** Action names that may be label values; anything else is "other". Default: the API's registry. */
  actions?: Iterable<string>;
}

/** One reading of the catalogue (and of readiness), shared by the scrapes of `cacheMs`. */
interface Reading {
  at: number;
  ready: Readiness;
  stats?: Awaited<ReturnType<Services["catalog"]["stats"]>>;
}

/**
 * The longest time between two window ends of a schedule, in seconds: the largest gap between consecutive
 * chosen weekdays plus the window's length. A backup older than this (plus some slack for its own duration) is
 * late. Undefined when the instance has no automatic backups.
 */
export function scheduleIntervalSeconds(i: Pick<Instance, "autoBackupWeekDays" | "autoBackupPeriod">): number | undefined {
  const days = WEEKDAYS.map((d, n) => (i.autoBackupWeekDays.includes(d) ? n : -1)).filter((n) => n >= 0);
  const period = parsePeriod(i.autoBackupPeriod);
  if (!days.length || !period) return undefined;
  let gap = 0;
  for (const [k, d] of days.entries()) {
    const next = days[(k + 1) % days.length]!;
    gap = Math.max(gap, ((next - d + 6) % 7) + 1);
  }
  return gap * DAY_S + period.hours * 3600;
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly actionNames: Set<string>;
  private readonly cacheMs: number;
  private readonly instancesEveryMs: number;
  private services: Services | undefined;
  private reading: Reading | undefined;
  private refreshing: Promise<Reading> | undefined;
  private instancesAt = 0;
  private instancesPass: Promise<void> | undefined;

  readonly requests: Counter<"action" | "code">;
  readonly requestSeconds: Histogram<"action">;
  readonly rateLimited: Counter<"action" | "limit">;
  readonly tasksStarted: Counter<"task">;
  readonly tasksSucceeded: Counter<"task">;
  readonly tasksFailed: Counter<"task" | "reason">;
  readonly tasksRecovered: Counter<"task" | "outcome">;
  readonly backupsRefused: Counter<"task" | "reason">;
  readonly backupBytes: Histogram;
  readonly backupSeconds: Histogram;
  readonly lastSuccess: Gauge<"instance_id">;
  readonly scheduleInterval: Gauge<"instance_id">;
  private readonly nodeRunning: Gauge;
  private readonly catalogTasks: Gauge<"state">;
  private readonly catalogInstances: Gauge;
  private readonly catalogBackups: Gauge<"status">;
  private readonly storedBytes: Gauge;
  private readonly ready: Gauge;
  private readonly readyCheck: Gauge<"check">;
  private readonly storageCapability: Gauge<"operation">;
  /** Second-level backup streams (streams.ts). */
  private readonly streamMetrics: StreamMetrics;

  constructor(o: MetricsOptions = {}) {
    this.actionNames = new Set(o.actions ?? registeredActions.keys());
    this.cacheMs = o.cacheMs ?? 5_000;
    this.instancesEveryMs = o.instancesEveryMs ?? 60_000;
    const registers = [this.registry];
    this.requests = new Counter({ name: "crs_backup_api_requests_total", help: "API requests answered, by Action and response code (OK or the error code).", labelNames: ["action", "code"], registers });
    this.requestSeconds = new Histogram({
      name: "crs_backup_api_request_duration_seconds", help: "Time from receiving an API request to its answer, by Action.", labelNames: ["action"], registers,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.rateLimited = new Counter({
      name: "crs_backup_api_rate_limited_total", help: "API requests refused by a rate limit: limit=action (per account and Action) or address (failed authentications per client address).",
      labelNames: ["action", "limit"], registers,
    });
    this.tasksStarted = new Counter({ name: "crs_backup_tasks_started_total", help: "Tasks this node started, by task (backup, auto_backup, export, restore, delete, remove_file).", labelNames: ["task"], registers });
    this.tasksSucceeded = new Counter({ name: "crs_backup_tasks_succeeded_total", help: "Tasks this node finished successfully, by task.", labelNames: ["task"], registers });
    this.tasksFailed = new Counter({
      name: "crs_backup_tasks_failed_total", help: `Tasks that failed on this node, by task and reason (${FAILURE_REASONS.join(", ")}).`, labelNames: ["task", "reason"], registers,
    });
    this.tasksRecovered = new Counter({
      name: "crs_backup_tasks_recovered_total", help: "Tasks a dead node (or a previous run) left running, recovered by this node, by task and outcome (succeed, failed).",
      labelNames: ["task", "outcome"], registers,
    });
    this.backupsRefused = new Counter({
      name: "crs_backup_backups_refused_total",
      help: "Backups refused up front by this node, by task (backup, auto_backup) and reason (disk_space: a disk has less free space than the watermark); an automatic backup is tried again on every scheduler pass while its window is open.",
      labelNames: ["task", "reason"], registers,
    });
    this.backupBytes = new Histogram({
      name: "crs_backup_backup_size_bytes", help: "Size (plain RDB bytes, all shards) of each backup this node took.", registers,
      buckets: [64 << 10, 1 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30, 4 * 2 ** 30, 16 * 2 ** 30, 64 * 2 ** 30, 256 * 2 ** 30],
    });
    this.backupSeconds = new Histogram({
      name: "crs_backup_backup_duration_seconds", help: "Time each backup this node took ran, from claim to commit.", registers,
      buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400],
    });
    this.lastSuccess = new Gauge({
      name: "crs_backup_last_success_timestamp_seconds",
      help: "End time (Unix seconds) of the newest successful backup of each instance known to this node (taken here, or found in the catalogue at start); take max by (instance_id) across nodes.",
      labelNames: ["instance_id"], registers,
    });
    this.scheduleInterval = new Gauge({
      name: "crs_backup_schedule_interval_seconds",
      help: "Longest time between two automatic backup windows of each instance (largest gap between its weekdays plus the window); absent when the instance has no automatic backups.",
      labelNames: ["instance_id"], registers,
    });
    this.streamMetrics = new StreamMetrics(this.registry, this.cacheMs);
    this.nodeRunning = new Gauge({ name: "crs_backup_node_tasks_running", help: "Tasks running on this node now.", registers });
    this.catalogTasks = new Gauge({ name: "crs_backup_catalog_tasks", help: "Tasks in the catalogue that have not ended, by state (running, queued), all nodes.", labelNames: ["state"], registers });
    this.catalogInstances = new Gauge({ name: "crs_backup_catalog_instances", help: "Registered instances (removed ones excluded).", registers });
    this.catalogBackups = new Gauge({ name: "crs_backup_catalog_backups", help: "Backup records in the catalogue by Status (1 taking, 2 kept, 3 exporting, 4 exported, -1 expired, -2 deleted).", labelNames: ["status"], registers });
    this.storedBytes = new Gauge({ name: "crs_backup_stored_backup_bytes", help: "Plain RDB bytes of the backups that hold files (Status 1 to 4).", registers });
    this.ready = new Gauge({ name: "crs_backup_ready", help: "1 when the last readiness check passed (catalogue reachable, migrations applied, storage reachable), else 0.", registers });
    this.readyCheck = new Gauge({ name: "crs_backup_ready_check", help: "Each readiness check at the last reading: 1 passed, 0 failed.", labelNames: ["check"], registers });
    this.storageCapability = new Gauge({
      name: "crs_backup_storage_capability",
      help: "Optional operations of the object store (S3 multipart housekeeping): 1 implemented, 0 not (the housekeeping it does is skipped; see `crs-backup storage check`). Absent until known.",
      labelNames: ["operation"], registers,
    });
  }

  /** Where catalogue figures come from; also reads each instance's newest successful backup (in the background). */
  attach(services: Services): void {
    this.services = services;
    services.backups.onRefused = (_instanceId, automatic) => this.backupsRefused.inc({ task: automatic ? "auto_backup" : "backup", reason: "disk_space" });
    void this.instancesPassOnce(true);
  }

  /** The HTTP server's observer (src/gateway/server.ts). */
  readonly requestObserver: RequestObserver = {
    request: (r) => {
      const action = r.action === "-" ? "none" : this.actionNames.has(r.action) ? r.action : "other";
      this.requests.inc({ action, code: r.code });
      this.requestSeconds.observe({ action }, r.ms / 1000);
      if (r.code === "RequestLimitExceeded") this.rateLimited.inc({ action, limit: "action" });
      else if (r.code === "RequestLimitExceeded.IPLimitExceeded") this.rateLimited.inc({ action, limit: "address" });
    },
  };

  /** The task runner's observer (src/queue/runner.ts). */
  readonly runnerObserver: RunnerObserver = {
    taskStarted: (t) => this.tasksStarted.inc({ task: taskLabel(t) }),
    taskSucceeded: (t, ms, result) => {
      this.tasksSucceeded.inc({ task: taskLabel(t) });
      if (!BACKUP_TYPES.includes(t.taskType)) return;
      const b = result as Backup | undefined;
      this.backupSeconds.observe(ms / 1000);
      if (b && typeof b.backupSize === "number") this.backupBytes.observe(b.backupSize);
      this.noteSuccess(t.instanceId, b?.endTime ?? Date.now());
    },
    taskFailed: (t, _ms, err, message, aborted) => this.tasksFailed.inc({ task: taskLabel(t), reason: failureReason(err, message, aborted) }),
    taskRecovered: (t, outcome) => this.tasksRecovered.inc({ task: taskLabel(t), outcome }),
  };

  /** The newest successful backup's end (Unix seconds) per instance: what crs_backup_last_success_timestamp_seconds shows. */
  private readonly lastSuccessOf = new Map<string, number>();

  private noteSuccess(instanceId: string, endMs: number): void {
    const seconds = Math.floor(endMs / 1000);
    const current = this.lastSuccessOf.get(instanceId);
    if (current !== undefined && seconds <= current) return;
    this.lastSuccessOf.set(instanceId, seconds);
    this.lastSuccess.set({ instance_id: instanceId }, seconds);
  }

  /**
   * Re-reads instances: their schedules, which ones were removed (their series go), and — the first time — the
   * newest successful backup of each, so a restarted node reports backups taken before it started.
   */
  private instancesPassOnce(seed = false): Promise<void> {
    this.instancesPass ??= (async () => {
      const s = this.services;
      if (!s) return;
      this.instancesAt = Date.now();
      const all = await s.catalog.instances();
      const live = all.filter((i) => i.deletedAt === undefined && i.redisUrl);
      // Only instances the catalogue shows as removed lose their series: one registered since the read above
      // (and maybe already backed up) is not in `all` and stays.
      const gone = new Set(all.filter((i) => i.deletedAt !== undefined || !i.redisUrl).map((i) => i.instanceId));
      this.scheduleInterval.reset();
      for (const i of live) {
        const interval = s.config.autoBackups ? scheduleIntervalSeconds(i) : undefined;
        if (interval !== undefined) this.scheduleInterval.set({ instance_id: i.instanceId }, interval);
      }
      for (const id of [...this.lastSuccessOf.keys()]) {
        if (!gone.has(id)) continue;
        this.lastSuccessOf.delete(id);
        this.lastSuccess.remove({ instance_id: id });
      }
      if (!seed) return;
      for (const i of live) {
        const { rows } = await s.catalog.listBackups({ instanceId: i.instanceId, limit: 20, offset: 0, statuses: [2, 4] });
        const newest = rows.find((b) => !b.fixture && b.endTime !== undefined);
        if (newest) this.noteSuccess(i.instanceId, newest.endTime!);
      }
    })().catch((err: unknown) => {
      this.services?.logger.debug({ err }, "metrics: reading instances failed; retried at a later scrape");
      if (seed) this.seedPending = true;
    }).finally(() => (this.instancesPass = undefined));
    return this.instancesPass;
  }

  private seedPending = false;

  /** A fresh reading of the catalogue and readiness. */
  private refresh(): Promise<Reading> {
    this.refreshing ??= (async (): Promise<Reading> => {
      const s = this.services!;
      const ready = await checkReadiness(s);
      let stats: Reading["stats"];
      if (ready.checks.catalog === "ok") stats = await s.catalog.stats().catch(() => undefined);
      const r: Reading = { at: Date.now(), ready, stats: stats ?? this.reading?.stats };
      this.reading = r;
      return r;
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Records a readiness result obtained elsewhere (/readyz), so the gauge follows it at once. */
  noteReadiness(ready: Readiness): void {
    if (this.reading) this.reading = { ...this.reading, ready };
  }

  /** Brings the catalogue gauges up to date: from the last reading, refreshed in the background when stale. */
  private async collectCatalog(): Promise<void> {
    const s = this.services;
    if (!s) return;
    this.nodeRunning.set(s.runner.active);
    for (const c of s.store.capabilities?.() ?? []) {
      if (c.supported !== undefined) this.storageCapability.set({ operation: c.operation }, c.supported ? 1 : 0);
    }
    let r = this.reading;
    if (!r) {
      // The first scrape waits for the first readings (instances included) rather than show a partial picture.
      // Bounded: a catalogue that hangs must not hold the scrape (the readiness checks have their own timeouts).
      const pass = this.instancesPass;
      [r] = await Promise.all([this.refresh().catch(() => undefined), pass && Promise.race([pass, new Promise((res) => setTimeout(res, 2_000).unref())])]);
    } else if (Date.now() - r.at >= this.cacheMs) void this.refresh().catch(() => undefined);
    if (Date.now() - this.instancesAt >= this.instancesEveryMs || this.seedPending) {
      const seed = this.seedPending;
      this.seedPending = false;
      void this.instancesPassOnce(seed);
    }
    if (!r) return;
    this.ready.set(r.ready.ready ? 1 : 0);
    for (const [check, state] of Object.entries(r.ready.checks)) this.readyCheck.set({ check }, state === "ok" ? 1 : 0);
    const st = r.stats;
    if (!st) return;
    this.catalogInstances.set(st.instances);
    this.catalogTasks.set({ state: "running" }, st.tasksRunning);
    this.catalogTasks.set({ state: "queued" }, st.tasksQueued);
    this.catalogBackups.reset();
    for (const [status, n] of Object.entries(st.backupsByStatus)) this.catalogBackups.set({ status }, n);
    this.storedBytes.set(st.storedBytes);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text: this server's metrics, then the process's (CPU, memory, event loop, GC). */
  async render(): Promise<string> {
    await this.collectCatalog();
    if (this.services) await this.streamMetrics.collect(this.services).catch(() => undefined);
    return `${await this.registry.metrics()}\n${await processRegistry().metrics()}`;
  }
}

function taskLabel(t: Task): string {
  return TASK_LABELS[t.taskType] ?? "other";
}

let processMetrics: Registry | undefined;

/**
 * Node's process metrics (process_*, nodejs_*) in a registry of their own, made once per process: they
 * describe the process, not a server, and prom-client's collectors (GC observer, event-loop monitor) are not
 * meant to be started once per server.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    client.collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}
