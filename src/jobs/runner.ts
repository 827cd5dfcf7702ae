// The task runner: how a node takes work from the catalogue's queue, keeps it, and how any node finishes the
// work of one that died.
//
// - A task is queued in the catalogue (status preparing, no owner) by whoever asked for it. Each node claims
//   queued tasks of the kinds it runs while it has room (`concurrency` per pool), as one conditional write, so
//   exactly one node runs each task. A node that queues work kicks its own runner, so on one node nothing waits
//   for a poll.
// - The owner renews its lease (a time in the catalogue) while the job runs. A job whose lease cannot be
//   renewed, or was taken over, is aborted: the catalogue, not process memory, says who owns a task.
// - Any node looks for running tasks whose lease has lapsed and recovers them: it takes the task over, undoes
//   what the dead owner left outside the catalogue (partial files, a Redis left as our replica) and records the
//   outcome together with the job's own catalogue rollback, in one transaction. Recovery is idempotent: if the
//   recovering node dies too, the next one repeats it.
// - Failures are recorded the same way. A recording refused because the catalogue's disk is full first releases
//   the disk reserve (catalog/reserve.ts) and retries at once. A failure that still cannot be written (PostgreSQL
//   away, the reserve spent) is kept in memory: the API reports it at once (outcomeOf / pendingFailures) and
//   every pass retries the write until it is durable, or until another node has recovered the task. A success
//   whose commit cannot be written is retried until the lease lapses, then undone and recorded as failed the
//   same way. A process that dies with outcomes in memory loses nothing the catalogue relies on: its tasks are
//   still running there and are recovered as interrupted.
import crypto from "node:crypto";
import os from "node:os";
import { Catalog, CatalogFullError, CatalogTx, isTransientCatalogError } from "../catalog/catalog";
import type { Task } from "../catalog/types";
import type { Logger } from "../log";
import type { Clock } from "../config";

export interface JobContext {
  task: Task;
  nodeId: string;
  /** Aborted when the node shuts down or loses the task's lease. */
  signal: AbortSignal;
  /** Records progress (0..100); best effort, throttled. */
  progress(percent: number): void;
  /** Persists what recovery needs before an action it would have to undo (awaited: it must be durable first). */
  saveState(state: Record<string, unknown>): Promise<void>;
  /** In-process observers (the CLI's progress bar), when the task runs where it was asked for. */
  local?: LocalHooks;
}

export interface LocalHooks {
  onProgress?(done: number, total: number | undefined, label: string): void;
}

/** What a run hands back on success: the catalogue changes that make it visible, run with the task's success. */
export interface JobSuccess {
  commit?(tx: CatalogTx): Promise<void>;
  message?: string;
  /** The job's own result, for in-process waiters (e.g. the finished Backup). */
  result?: unknown;
  /** Called once the success is recorded (never when it could not be): follow-up work such as a backup's digest. */
  committed?(): void;
}

export interface Undone {
  /** The real outcome found while undoing (a restore target that had loaded everything): succeed. */
  outcome?: "succeed" | "failed";
  /** Added to the task's message. */
  note?: string;
}

export interface JobKind {
  /** Task type codes this kind runs (e.g. 012 and 017). */
  readonly taskTypes: readonly string[];
  /** Concurrency pool: long Redis-facing work, or short file work. */
  readonly pool: "redis" | "files";
  run(ctx: JobContext): Promise<JobSuccess>;
  /** Undoes what a failed or dead run left outside the catalogue; idempotent, never throws for "already gone". */
  undo(task: Task, why: "failed" | "interrupted"): Promise<Undone>;
  /** The catalogue side of a failure (e.g. drop the unfinished backup record); idempotent. */
  failed(tx: CatalogTx, task: Task): Promise<void>;
  /** The catalogue side of a recovery that found the work done (see Undone.outcome). */
  recovered?(tx: CatalogTx, task: Task): Promise<void>;
}

export interface RunnerOptions {
  catalog: Catalog;
  clock: Clock;
  logger: Logger;
  nodeId: string;
  /** How long a claim holds without renewal. */
  leaseMs: number;
  /** Simultaneous jobs per pool on this node. */
  concurrency: { redis: number; files: number };
  /** How often queued tasks and lapsed leases are looked for (a local kick makes it immediate). */
  pollMs: number;
  /** Whether this node takes queued tasks (a CLI process runs only its own). */
  takeQueued: boolean;
  /** Told about task starts and outcomes (metrics); may also be set later with TaskRunner.observe(). */
  observer?: RunnerObserver;
  /** Called when recording an outcome fails for a full disk: frees reserved space; true when it freed some. */
  onCatalogFull?: () => boolean;
  /** Called on every pass (e.g. to make the disk reserve again once there is room); must not throw. */
  housekeeping?: () => void;
  /** How long a failure's recording is retried in line before it is kept in memory and retried by the passes. */
  inlineRetryMs?: number;
}

/** A failure this node knows and the catalogue does not have yet. */
export interface PendingFailure {
  task: Task;
  message: string;
  endTime: number;
}

interface Pending extends PendingFailure {
  kind: JobKind | undefined;
  /** False while the task's own run is still writing it; true once the passes own the retries. */
  deferred: boolean;
  flushing?: Promise<boolean>;
  lastError?: unknown;
}

/**
 * What an observer (the server's metrics) learns about the tasks this node runs. Calls are synchronous and
 * must be cheap; an observer that throws is ignored, so metrics can never break a task.
 */
export interface RunnerObserver {
  taskStarted?(task: Task): void;
  /** `result` is the JobSuccess.result (for backups, the finished Backup). */
  taskSucceeded?(task: Task, ms: number, result: unknown): void;
  /** `error` is what the job threw (undefined when the outcome could not be recorded in time); `aborted` when cancelled or the lease was lost. */
  taskFailed?(task: Task, ms: number, error: unknown, message: string, aborted: boolean): void;
  /** A task a dead node (or a previous run) left running, recovered here. */
  taskRecovered?(task: Task, outcome: "succeed" | "failed"): void;
}

export type TaskResult = { ok: true; task: Task; result?: unknown } | { ok: false; task: Task; message: string };

interface Running {
  task: Task;
  abort: AbortController;
  done: Promise<TaskResult>;
}

/** A process-unique node id: who holds a task's lease. `serve:` nodes are servers, `cli:` one-off commands. */
export function makeNodeId(role: "serve" | "cli", given?: string): string {
  if (given) return given;
  return `${role}:${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString("hex")}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TaskRunner {
  private readonly kinds = new Map<string, JobKind>();
  private readonly running = new Map<number, Running>();
  private readonly waiters = new Map<number, Array<(r: TaskResult) => void>>();
  private timer: NodeJS.Timeout | undefined;
  private pumping: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private recovering = new Set<number>();
  /** Failures this node knows but the catalogue does not have yet (the overlay the API reports), by task id. */
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly o: RunnerOptions) {}

  get nodeId(): string {
    return this.o.nodeId;
  }

  /** Sets the observer told about task starts and outcomes (replacing any given in the options). */
  observe(observer: RunnerObserver | undefined): void {
    this.observer = observer;
  }

  private observer: RunnerObserver | undefined;

  /** Calls an observer hook, never letting it fail the runner. */
  private tell<K extends keyof RunnerObserver>(hook: K, ...args: Parameters<NonNullable<RunnerObserver[K]>>): void {
    const observer = this.observer ?? this.o.observer;
    const fn = observer?.[hook] as ((...a: unknown[]) => void) | undefined;
    if (!fn) return;
    try {
      fn.apply(observer, args);
    } catch {
      // metrics must never break a task
    }
  }

  register(kind: JobKind): void {
    for (const t of kind.taskTypes) this.kinds.set(t, kind);
  }

  /** Jobs running on this node now. */
  get active(): number {
    return this.running.size;
  }

  start(): void {
    this.stopped = false;
    this.kick();
    this.timer = setInterval(() => this.kick(), this.o.pollMs);
    this.timer.unref();
  }

  /** Looks for work now (after queueing a task here). */
  kick(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.pump()
      .catch((err: unknown) => this.o.logger.warn({ err }, "task runner pass failed; retrying on the next one"))
      .finally(() => {
        this.pumping = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async pump(): Promise<void> {
    try {
      this.o.housekeeping?.();
    } catch {
      // best effort
    }
    await this.flushPending();
    await this.recoverLapsed();
    if (!this.o.takeQueued) return;
    for (const pool of ["redis", "files"] as const) {
      const types = [...this.kinds.entries()].filter(([, k]) => k.pool === pool).map(([t]) => t);
      while (!this.stopped && this.inPool(pool) < this.o.concurrency[pool]) {
        const now = this.o.clock.now();
        const task = await this.o.catalog.claimTask(this.o.nodeId, types, now + this.o.leaseMs, now);
        if (!task) break;
        this.launch(task);
      }
    }
  }

  private inPool(pool: "redis" | "files"): number {
    let n = 0;
    for (const r of this.running.values()) if (this.kinds.get(r.task.taskType)?.pool === pool) n++;
    return n;
  }

  /**
   * Runs a task this process queued, here, whatever the pools' room (the CLI): claims it by id. When another
   * node claimed it first, waits for that node's outcome instead.
   */
  async runHere(taskId: number, local?: LocalHooks): Promise<TaskResult> {
    const now = this.o.clock.now();
    if (await this.o.catalog.claimTaskById(taskId, this.o.nodeId, now + this.o.leaseMs, now)) {
      const task = await this.o.catalog.task(taskId);
      if (task) return this.launch(task, local).done;
    }
    return this.waitFor(taskId);
  }

  /** Resolves when a task ends, wherever it runs (in-process at once; another node's by polling the catalogue). */
  waitFor(taskId: number, pollMs = 200): Promise<TaskResult> {
    const here = this.running.get(taskId);
    if (here) return here.done;
    return new Promise<TaskResult>((resolve) => {
      const list = this.waiters.get(taskId) ?? [];
      list.push(resolve);
      this.waiters.set(taskId, list);
      const poll = async (): Promise<void> => {
        while (this.waiters.has(taskId)) {
          try {
            const t = await this.o.catalog.task(taskId);
            if (!t) return this.settle(taskId, { ok: false, task: { taskId } as Task, message: `task ${taskId} no longer exists` });
            if (t.status === "succeed") return this.settle(taskId, { ok: true, task: t });
            if (t.status === "failed") return this.settle(taskId, { ok: false, task: t, message: t.message });
          } catch {
            // The catalogue is briefly unreachable: keep waiting.
          }
          await sleep(pollMs);
        }
      };
      void poll();
    });
  }

  private settle(taskId: number, r: TaskResult): void {
    const list = this.waiters.get(taskId);
    this.waiters.delete(taskId);
    for (const w of list ?? []) w(r);
  }

  private launch(task: Task, local?: LocalHooks): Running {
    const kind = this.kinds.get(task.taskType);
    const abort = new AbortController();
    const entry: Running = { task, abort, done: undefined as unknown as Promise<TaskResult> };
    this.running.set(task.taskId, entry);
    entry.done = this.execute(task, kind, abort, local).then((r) => {
      this.running.delete(task.taskId);
      this.settle(task.taskId, r);
      this.kick(); // room for the next one
      return r;
    });
    return entry;
  }

  private async execute(task: Task, kind: JobKind | undefined, abort: AbortController, local?: LocalHooks): Promise<TaskResult> {
    const log = this.o.logger.child({ taskId: task.taskId, taskType: task.taskType, instanceId: task.instanceId, ...(task.backupId ? { backupId: task.backupId } : {}) });
    if (!kind) {
      const message = `this node cannot run tasks of type ${task.taskType}`;
      await this.record(task, log, async (tx) => this.markTask(tx, task, "failed", message)).catch(() => "lost");
      return { ok: false, task, message };
    }
    const lease = this.keepLease(task, abort, log);
    let lastProgress = 0;
    let progressAt = 0;
    const ctx: JobContext = {
      task, nodeId: this.o.nodeId, signal: abort.signal, local,
      progress: (percent) => {
        const p = Math.max(0, Math.min(99, Math.floor(percent)));
        const now = Date.now();
        if (p === lastProgress || now - progressAt < 500) return;
        lastProgress = p;
        progressAt = now;
        this.o.catalog.updateTask(task.taskId, { progress: p }).catch(() => undefined);
      },
      saveState: async (state) => {
        task.state = { ...(task.state ?? {}), ...state };
        await this.o.catalog.updateTask(task.taskId, { state: task.state });
      },
    };
    log.info("task started");
    const started = Date.now();
    this.tell("taskStarted", task);
    try {
      const success = await kind.run(ctx);
      lease.stop();
      const message = success.message ?? "";
      const committed = await this.record(task, log, async (tx) => {
        if (!(await this.stillOurs(tx, task))) return false;
        await success.commit?.(tx);
        await this.markTask(tx, task, "succeed", message);
        return true;
      });
      if (committed === "done") {
        log.info({ ms: Date.now() - started, message: message || undefined }, "task succeeded");
        this.tell("taskSucceeded", task, Date.now() - started, success.result);
        try {
          success.committed?.();
        } catch (err) {
          log.warn({ err }, "the follow-up of a succeeded task failed");
        }
        return { ok: true, task: { ...task, status: "succeed", progress: 100, message }, result: success.result };
      }
      // The commit could not be written in time (or another node took the task over): what it made is undone.
      const lost = committed === "lost"
        ? "the task was taken over by another node before its outcome was recorded"
        : "the work was done but the catalogue refused to record it until the task's lease lapsed, so it was undone";
      await kind.undo(task, "interrupted").catch(() => undefined);
      // Still ours in the catalogue, but refusing writes: the failure is reported from memory and retried.
      if (committed === "deferred") this.defer(task, kind, lost, log);
      this.tell("taskFailed", task, Date.now() - started, undefined, lost, true);
      return { ok: false, task: { ...task, status: "failed", message: lost }, message: lost };
    } catch (err) {
      lease.stop();
      let message = err instanceof Error ? err.message : String(err);
      if (abort.signal.aborted && abort.signal.reason instanceof Error) message = `${abort.signal.reason.message}: ${message}`;
      // Known now: reported failed by the API from here on, whatever the catalogue's disk says.
      const entry: Pending = { task, kind, message, endTime: this.o.clock.now(), deferred: false };
      this.pending.set(task.taskId, entry);
      const undone = await kind.undo(task, "failed").catch((e: unknown) => ({ note: `cleaning up failed too: ${(e as Error).message}` }) as Undone);
      if (undone.note) message = `${message}; ${undone.note}`;
      entry.message = message;
      try {
        const recorded = await this.record(task, log, async (tx) => {
          if (!(await this.stillOurs(tx, task))) return false;
          await kind.failed(tx, task);
          await this.markTask(tx, task, "failed", message, entry.endTime);
          return true;
        }, this.o.inlineRetryMs ?? Math.min(this.o.leaseMs, 2000));
        if (recorded === "deferred") this.defer(task, kind, message, log, entry.endTime);
        else this.pending.delete(task.taskId);
      } catch (recordErr) {
        // Left running: its lease lapses and recovery records the failure.
        this.pending.delete(task.taskId);
        log.error({ err: recordErr }, "the task's failure could not be recorded; it is recovered once its lease lapses");
      }
      log.warn({ ms: Date.now() - started, message }, "task failed");
      this.tell("taskFailed", task, Date.now() - started, err, message, abort.signal.aborted);
      return { ok: false, task: { ...task, status: "failed", message }, message };
    }
  }

  /** Whether this node still owns the task (a lapsed lease may have been taken over by a recovering node). */
  private async stillOurs(tx: CatalogTx, task: Task): Promise<boolean> {
    const now = await tx.task(task.taskId);
    return now?.status === "running" && now.owner === this.o.nodeId;
  }

  private async markTask(tx: CatalogTx, task: Task, status: "succeed" | "failed", message: string, endTime = this.o.clock.now()): Promise<void> {
    await tx.updateTask(task.taskId, { status, message, endTime, ...(status === "succeed" ? { progress: 100 } : {}), leaseUntil: undefined });
  }

  /**
   * Writes a task's outcome, retrying while the catalogue refuses (disk full, unreachable) for up to `budgetMs`
   * (default: the lease). A full disk first releases the reserve and retries at once. "done" when written,
   * "lost" when the write found the task no longer ours, "deferred" when it gave up retrying.
   */
  private async record(task: Task, log: Logger, write: (tx: CatalogTx) => Promise<boolean | void>, budgetMs = this.o.leaseMs): Promise<"done" | "lost" | "deferred"> {
    const deadline = Date.now() + budgetMs;
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await this.o.catalog.transaction(write);
        return r === false ? "lost" : "done";
      } catch (err) {
        if (!isTransientCatalogError(err)) throw err;
        if (attempt === 1) log.error({ err }, "recording the task's outcome failed; retrying");
        if (err instanceof CatalogFullError && this.releaseReserve()) continue;
        if (Date.now() + delay > deadline || this.stoppedHard) {
          log.error({ err }, "giving up recording the task's outcome in line; it is retried until the catalogue accepts writes");
          return "deferred";
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  private releaseReserve(): boolean {
    try {
      return this.o.onCatalogFull?.() === true;
    } catch {
      return false;
    }
  }

  /** Keeps a failure the catalogue refused in memory: reported by the API, retried by every pass until durable. */
  private defer(task: Task, kind: JobKind | undefined, message: string, log: Logger, endTime = this.o.clock.now()): void {
    const entry = this.pending.get(task.taskId) ?? { task, kind, message, endTime, deferred: true };
    Object.assign(entry, { message, deferred: true });
    this.pending.set(task.taskId, entry);
    log.warn({ message }, "the task's failure is kept in memory and reported from there until the catalogue accepts it");
  }

  /** What this node knows of a task's outcome that the catalogue may not have yet (the API's overlay). */
  outcomeOf(taskId: number): { status: "failed"; message: string; endTime: number } | undefined {
    const p = this.pending.get(taskId);
    return p ? { status: "failed", message: p.message, endTime: p.endTime } : undefined;
  }

  /** Failures this node knows that are not durable yet (newest last). */
  pendingFailures(): PendingFailure[] {
    return [...this.pending.values()].map((p) => ({ task: p.task, message: p.message, endTime: p.endTime }));
  }

  /**
   * Retries writing the failures kept in memory (of one instance, when given). Resolves true when none of them
   * is left; with `instanceId`, rejects with the catalogue's error when one of its failures still cannot be
   * written (a new backup of it would be refused for the same reason).
   */
  async flushPending(instanceId?: string): Promise<boolean> {
    const mine = [...this.pending.values()].filter((p) => p.deferred && (instanceId === undefined || p.task.instanceId === instanceId));
    const results = await Promise.all(mine.map((p) => this.flushOne(p)));
    const failed = mine.find((_, i) => !results[i]);
    if (failed && instanceId !== undefined && failed.lastError) throw failed.lastError;
    return !failed;
  }

  private flushOne(p: Pending): Promise<boolean> {
    p.flushing ??= (async () => {
      const log = this.o.logger.child({ taskId: p.task.taskId, taskType: p.task.taskType, instanceId: p.task.instanceId, ...(p.task.backupId ? { backupId: p.task.backupId } : {}) });
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          const ours = await this.o.catalog.transaction(async (tx) => {
            if (!(await this.stillOurs(tx, p.task))) return false;
            await p.kind?.failed(tx, p.task);
            await this.markTask(tx, p.task, "failed", p.message, p.endTime);
            return true;
          });
          this.pending.delete(p.task.taskId);
          if (ours) log.warn({ message: p.message }, "recorded a task's failure that the catalogue had refused");
          else log.warn("a task whose failure was kept in memory was recovered by another node meanwhile");
          return true;
        } catch (err) {
          p.lastError = err;
          if (!isTransientCatalogError(err)) {
            // Left to the recovery path, which needs no memory of it.
            this.pending.delete(p.task.taskId);
            log.error({ err }, "recording a task's failure kept in memory was refused; it is recovered as interrupted");
            return true;
          }
          if (!(err instanceof CatalogFullError && attempt === 0 && this.releaseReserve())) return false;
        }
      }
      return false;
    })().finally(() => (p.flushing = undefined));
    return p.flushing;
  }

  private stoppedHard = false;

  /** Renews the task's lease every third of its length; aborts the job when the lease is lost. */
  private keepLease(task: Task, abort: AbortController, log: Logger): { stop(): void } {
    let leaseEnd = task.leaseUntil ?? this.o.clock.now() + this.o.leaseMs;
    const timer = setInterval(() => {
      const until = this.o.clock.now() + this.o.leaseMs;
      this.o.catalog.renewLease(task.taskId, this.o.nodeId, until).then((ok) => {
        if (ok) leaseEnd = until;
        else if (!abort.signal.aborted) {
          log.warn("task lease lost (taken over by another node); stopping it");
          abort.abort(new Error("the task's lease was lost"));
        }
      }, (err: unknown) => {
        if (this.o.clock.now() > leaseEnd && !abort.signal.aborted) {
          log.error({ err }, "task lease could not be renewed before it lapsed; stopping it");
          abort.abort(new Error("the task's lease could not be renewed"));
        }
      });
    }, Math.max(50, Math.floor(this.o.leaseMs / 3)));
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }

  /**
   * Recovers running tasks whose owner is gone: leases that lapsed, or (at start) tasks of owners this node
   * knows to be dead. Each is taken over with one conditional write, so only one node recovers it.
   */
  async recoverLapsed(deadOwners: (owner: string | undefined) => boolean = () => false): Promise<number> {
    const now = this.o.clock.now();
    // A failure kept in memory here is written by flushPending(), with its real message.
    const candidates = (await this.o.catalog.tasksInStatus(["running"])).filter((t) =>
      !this.running.has(t.taskId) && !this.recovering.has(t.taskId) && !this.pending.has(t.taskId) && (t.leaseUntil === undefined || t.leaseUntil < now || deadOwners(t.owner)));
    let n = 0;
    for (const t of candidates) {
      const dead = deadOwners(t.owner) ? t.owner : undefined;
      if (!(await this.o.catalog.takeOver(t.taskId, t.owner, this.o.nodeId, now + this.o.leaseMs, now, dead))) continue;
      this.recovering.add(t.taskId);
      try {
        await this.recoverOne({ ...t, owner: this.o.nodeId }, t.owner, deadOwners(t.owner));
        n++;
      } finally {
        this.recovering.delete(t.taskId);
      }
    }
    return n;
  }

  private async recoverOne(task: Task, previousOwner: string | undefined, knownDead: boolean): Promise<void> {
    const log = this.o.logger.child({ taskId: task.taskId, taskType: task.taskType, instanceId: task.instanceId, ...(task.backupId ? { backupId: task.backupId } : {}) });
    const kind = this.kinds.get(task.taskType);
    let undone: Undone = {};
    if (kind) {
      try {
        undone = await kind.undo(task, "interrupted");
      } catch (err) {
        // Leave it to a later pass (the lease we took lapses and someone tries again).
        log.error({ err }, "recovering an interrupted task failed; it will be retried");
        return;
      }
    }
    const succeeded = undone.outcome === "succeed";
    // Named, so an operator can tell a restart of this server (known dead at start) from a node whose lease lapsed.
    const who = `${previousOwner ?? "unknown"}${knownDead ? ", a previous run of this server" : ", whose lease lapsed"}`;
    const message = `interrupted: the node running it (${who}) stopped${undone.note ? `; ${undone.note}` : ""}`;
    try {
      await this.record(task, log, async (tx) => {
        if (!(await this.stillOurs(tx, task))) return false;
        if (succeeded) await kind?.recovered?.(tx, task);
        else if (kind) await kind.failed(tx, task);
        await this.markTask(tx, task, succeeded ? "succeed" : "failed", message);
        return true;
      });
    } catch (err) {
      log.error({ err }, "recording a recovered task failed; it will be retried");
      return;
    }
    log.warn({ outcome: succeeded ? "succeed" : "failed", message }, "recovered an interrupted task");
    this.tell("taskRecovered", task, succeeded ? "succeed" : "failed");
  }

  /** Stops taking work, aborts running jobs and waits until each has recorded its end. */
  async stop(reason = "the server is shutting down"): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const r of this.running.values()) r.abort.abort(new Error(`cancelled: ${reason}`));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    await this.pumping?.catch(() => undefined);
    // A last try for failures kept in memory; those still refused are recovered as interrupted at the next start.
    await this.flushPending().catch(() => false);
    this.stoppedHard = true;
    for (const id of [...this.waiters.keys()]) this.settle(id, { ok: false, task: { taskId: id } as Task, message: `stopped waiting: ${reason}` });
  }
}
