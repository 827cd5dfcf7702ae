// The task runner: how a node takes work from the catalogue's queue, runs it, and hands each outcome to the
// outcome book. The state machine is in states.ts, the retry policy in retry.ts, leases in lease.ts, recovery of
// dead nodes' work in recovery.ts, waiting in waiters.ts.
//
// - A task is queued in the catalogue (status preparing, no owner) by whoever asked for it. Each node claims
//   queued tasks of the kinds it runs while it has room (`concurrency` per pool), as one conditional write, so
//   exactly one node runs each task. A node that queues work kicks its own runner, so on one node nothing waits
//   for a poll; on a catalogue that can announce queued work (PostgreSQL LISTEN/NOTIFY, catalog.watchQueue) every
//   other node is woken at the commit too, and the poll remains the fallback.
// - The owner renews its lease while the job runs (lease.ts). On success the kind's commit and the task's end
//   are one transaction; on failure the kind's undo runs first, then its catalogue rollback and the task's end.
// - Every pass (each pollMs, and each kick) retries failures kept in memory and claims; lapsed leases are looked
//   for at most once per pollMs (a lease lapses after leaseMs, which is many polls: the busy node's kicks, one
//   per queued and per ended task, need not each read every running task again).
import type { Catalog, QueueWatch } from "../catalog/catalog";
import type { Task } from "../catalog/types";
import type { Logger } from "../log";
import type { Clock } from "../config";
import { queueClock, QueueClock } from "./clock";
import { keepLease } from "./lease";
import { Outcomes } from "./outcomes";
import { Recovery } from "./recovery";
import { inlineFailureBudget } from "./retry";
import type { JobContext, JobKind, JobQueue, LocalHooks, PendingFailure, Pool, RunnerObserver, TaskResult, Undone } from "./types";
import { POOLS } from "./types";
import { Waiters } from "./waiters";

export interface RunnerOptions {
  catalog: Catalog;
  /** All the queue's time: timestamps, and (when the clock has them) its waits. */
  clock: Clock;
  logger: Logger;
  nodeId: string;
  /** How long a claim holds without renewal. */
  leaseMs: number;
  /** Simultaneous jobs per pool on this node. */
  concurrency: Record<Pool, number>;
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
  /** How long a failure's recording is retried in line before it is kept in memory (default retry.ts). */
  inlineRetryMs?: number;
}

interface Running {
  task: Task;
  abort: AbortController;
  done: Promise<TaskResult>;
}

/** Progress is written at most this often per task. */
const PROGRESS_EVERY_MS = 500;

export class TaskRunner implements JobQueue {
  private readonly kinds = new Map<string, JobKind>();
  /**
   * Kicks so far (each one a sign that work may have been queued), and for each pool the count at the start of
   * its last claim that found nothing: while no kick came since, the queue holds nothing for it, so room freed
   * by an ended task claims nothing (on a busy node, one claim statement less per task).
   */
  private wakes = 0;
  private readonly drained = new Map<Pool, number>();
  /** When a pass last looked for lapsed leases (clock time). */
  private lapsedLookedAt = -Infinity;
  private readonly running = new Map<number, Running>();
  private readonly clock: QueueClock;
  private readonly outcomes: Outcomes;
  private readonly waiters: Waiters;
  private readonly recovery: Recovery;
  private poller: { stop(): void } | undefined;
  private watch: Promise<QueueWatch> | undefined;
  private pumping: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private observer: RunnerObserver | undefined;

  constructor(private readonly o: RunnerOptions) {
    this.clock = queueClock(o.clock);
    this.outcomes = new Outcomes({ catalog: o.catalog, clock: this.clock, nodeId: o.nodeId, leaseMs: o.leaseMs, onCatalogFull: o.onCatalogFull });
    this.waiters = new Waiters(o.catalog, this.clock);
    this.recovery = new Recovery({
      catalog: o.catalog, clock: this.clock, nodeId: o.nodeId, leaseMs: o.leaseMs, outcomes: this.outcomes,
      kindOf: (t) => this.kinds.get(t), runningHere: (id) => this.running.has(id), logFor: (t) => this.logFor(t),
      recovered: (t, outcome) => this.tell("taskRecovered", t, outcome),
    });
  }

  get nodeId(): string {
    return this.o.nodeId;
  }

  claimedAtInsert(now: number): Pick<Task, "status" | "owner" | "leaseUntil"> {
    return { status: "running", owner: this.o.nodeId, leaseUntil: now + this.o.leaseMs };
  }

  async finishInline(task: Task, work: () => Promise<void>): Promise<void> {
    const log = this.logFor(task);
    const abort = new AbortController();
    const lease = keepLease({ catalog: this.o.catalog, clock: this.clock, nodeId: this.o.nodeId, leaseMs: this.o.leaseMs }, task, abort, log);
    try {
      await work();
    } finally {
      lease.stop();
    }
    // Not ours any more (recovered meanwhile, which did the same work): nothing left to write.
    await this.outcomes.record(log, async (tx) => {
      return this.outcomes.endOwn(tx, task, "succeed", "");
    });
  }

  /** Sets the observer told about task starts and outcomes (replacing any given in the options). */
  observe(observer: RunnerObserver | undefined): void {
    this.observer = observer;
  }

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

  private logFor(task: Task): Logger {
    return this.o.logger.child({ taskId: task.taskId, taskType: task.taskType, instanceId: task.instanceId, ...(task.backupId ? { backupId: task.backupId } : {}) });
  }

  register(kind: JobKind): void {
    for (const t of kind.taskTypes) {
      if (this.kinds.has(t)) throw new Error(`task type ${t} is registered twice`);
      this.kinds.set(t, kind);
    }
  }

  /** Jobs running on this node now. */
  get active(): number {
    return this.running.size;
  }

  start(): void {
    this.stopped = false;
    this.kick();
    this.poller = this.clock.every(this.o.pollMs, () => this.kick());
    // Work queued by another node wakes this one at once where the catalogue can say so (PostgreSQL NOTIFY);
    // the poll stays, for lapsed leases and for when that connection is down.
    if (this.o.takeQueued && this.o.catalog.watchQueue && !this.watch) {
      const watching = this.o.catalog.watchQueue(() => this.kick());
      this.watch = watching;
      watching.catch((err: unknown) => {
        if (this.watch === watching) this.watch = undefined;
        this.o.logger.warn({ err }, "cannot watch the queue for other nodes' work; it is found by the poll");
      });
    }
  }

  /** Looks for work now (after queueing a task here, or told of one queued elsewhere, or at each poll). */
  kick(): void {
    this.wakes++;
    this.pump();
  }

  /** Runs a pass (or one more after the current one); a pass alone claims only from pools not known drained. */
  private pump(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.pass()
      .catch((err: unknown) => this.o.logger.warn({ err }, "task runner pass failed; retrying on the next one"))
      .finally(() => {
        this.pumping = undefined;
        if (this.again) {
          this.again = false;
          this.pump();
        }
      });
  }

  /** One pass: housekeeping, failures kept in memory, lapsed leases, then claims while there is room. */
  private async pass(): Promise<void> {
    try {
      this.o.housekeeping?.();
    } catch {
      // best effort
    }
    await this.flushPending();
    const now = this.clock.now();
    if (now - this.lapsedLookedAt >= this.o.pollMs || now < this.lapsedLookedAt) {
      this.lapsedLookedAt = now;
      await this.recoverLapsed();
    }
    if (!this.o.takeQueued) return;
    for (const pool of POOLS) {
      const types = [...this.kinds.entries()].filter(([, k]) => k.pool === pool).map(([t]) => t);
      while (!this.stopped && this.drained.get(pool) !== this.wakes && this.inPool(pool) < this.o.concurrency[pool]) {
        const now = this.clock.now();
        const wakes = this.wakes;
        const task = await this.o.catalog.claimTask(this.o.nodeId, types, now + this.o.leaseMs, now);
        if (!task) {
          this.drained.set(pool, wakes);
          break;
        }
        this.launch(task);
      }
    }
  }

  private inPool(pool: Pool): number {
    let n = 0;
    for (const r of this.running.values()) if (this.kinds.get(r.task.taskType)?.pool === pool) n++;
    return n;
  }

  /**
   * Runs a task this process queued, here, whatever the pools' room (the CLI): claims it by id. When another
   * node claimed it first, waits for that node's outcome instead.
   */
  async runHere(taskId: number, local?: LocalHooks): Promise<TaskResult> {
    const now = this.clock.now();
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
    return this.waiters.wait(taskId, pollMs);
  }

  private launch(task: Task, local?: LocalHooks): Running {
    const kind = this.kinds.get(task.taskType);
    const abort = new AbortController();
    const entry: Running = { task, abort, done: undefined as unknown as Promise<TaskResult> };
    this.running.set(task.taskId, entry);
    entry.done = this.execute(task, kind, abort, local).then((r) => {
      this.running.delete(task.taskId);
      this.waiters.settle(task.taskId, r);
      this.pump(); // room for the next one (claimed if the queue may have one: see `drained`)
      return r;
    });
    return entry;
  }

  private context(task: Task, abort: AbortController, local?: LocalHooks): JobContext {
    let lastProgress = 0;
    let progressAt: number | undefined;
    return {
      task, nodeId: this.o.nodeId, signal: abort.signal, local,
      progress: (percent) => {
        const p = Math.max(0, Math.min(99, Math.floor(percent)));
        const now = this.clock.now();
        if (p === lastProgress || (progressAt !== undefined && now - progressAt < PROGRESS_EVERY_MS)) return;
        lastProgress = p;
        progressAt = now;
        this.o.catalog.updateTask(task.taskId, { progress: p }).catch(() => undefined);
      },
      saveState: async (state) => {
        task.state = { ...(task.state ?? {}), ...state };
        await this.o.catalog.updateTask(task.taskId, { state: task.state });
      },
    };
  }

  private async execute(task: Task, kind: JobKind | undefined, abort: AbortController, local?: LocalHooks): Promise<TaskResult> {
    const log = this.logFor(task);
    const outcomes = this.outcomes;
    if (!kind) {
      const message = `this node cannot run tasks of type ${task.taskType}`;
      await outcomes.record(log, async (tx) => outcomes.markTask(tx, task, "failed", message)).catch(() => "lost");
      return { ok: false, task, message };
    }
    const lease = keepLease({ catalog: this.o.catalog, clock: this.clock, nodeId: this.o.nodeId, leaseMs: this.o.leaseMs }, task, abort, log);
    const ctx = this.context(task, abort, local);
    log.info("task started");
    const started = this.clock.now();
    const elapsed = (): number => this.clock.now() - started;
    this.tell("taskStarted", task);
    try {
      const success = await kind.run(ctx);
      lease.stop();
      const message = success.message ?? "";
      const committed = await outcomes.record(log, async (tx) => {
        if (!(await outcomes.endOwn(tx, task, "succeed", message))) return false;
        await success.commit?.(tx);
        return true;
      });
      if (committed === "done") {
        log.info({ ms: elapsed(), message: message || undefined }, "task succeeded");
        this.tell("taskSucceeded", task, elapsed(), success.result);
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
      if (committed === "deferred") outcomes.defer(task, kind, lost, log);
      this.tell("taskFailed", task, elapsed(), undefined, lost, true);
      return { ok: false, task: { ...task, status: "failed", message: lost }, message: lost };
    } catch (err) {
      lease.stop();
      let message = err instanceof Error ? err.message : String(err);
      if (abort.signal.aborted && abort.signal.reason instanceof Error) message = `${abort.signal.reason.message}: ${message}`;
      const endTime = this.clock.now();
      const undone = await kind.undo(task, "failed").catch((e: unknown) => ({ note: `cleaning up failed too: ${(e as Error).message}` }) as Undone);
      if (undone.note) message = `${message}; ${undone.note}`;
      try {
        // While the catalogue accepts writes it alone is the truth, so every action reports the same state; from
        // the first refused write (a full disk) the failure is reported from memory meanwhile.
        const recorded = await outcomes.record(log, async (tx) => {
          if (!(await outcomes.endOwn(tx, task, "failed", message, endTime))) return false;
          await kind.failed(tx, task);
          return true;
        }, this.o.inlineRetryMs ?? inlineFailureBudget(this.o.leaseMs), () => outcomes.known(task, kind, message, endTime));
        if (recorded === "deferred") outcomes.defer(task, kind, message, log, endTime);
        else outcomes.forget(task.taskId);
      } catch (recordErr) {
        // Left running: its lease lapses and recovery records the failure.
        outcomes.forget(task.taskId);
        log.error({ err: recordErr }, "the task's failure could not be recorded; it is recovered once its lease lapses");
      }
      log.warn({ ms: elapsed(), message }, "task failed");
      this.tell("taskFailed", task, elapsed(), err, message, abort.signal.aborted);
      return { ok: false, task: { ...task, status: "failed", message }, message };
    }
  }

  /** What this node knows of a task's outcome that the catalogue may not have yet (the API's overlay). */
  outcomeOf(taskId: number): { status: "failed"; message: string; endTime: number } | undefined {
    return this.outcomes.outcomeOf(taskId);
  }

  /** Failures this node knows that are not durable yet (newest last). */
  pendingFailures(): PendingFailure[] {
    return this.outcomes.pendingFailures();
  }

  /**
   * Retries writing the failures kept in memory (of one instance, when given). Resolves true when none of them
   * is left; with `instanceId`, rejects with the catalogue's error when one of its failures still cannot be
   * written (a new backup of it would be refused for the same reason).
   */
  flushPending(instanceId?: string): Promise<boolean> {
    return this.outcomes.flush((t) => this.logFor(t), instanceId);
  }

  /**
   * Recovers running tasks whose owner is gone: leases that lapsed, or (at start) tasks of owners this node
   * knows to be dead. Each is taken over with one conditional write, so only one node recovers it.
   */
  recoverLapsed(deadOwners?: (owner: string | undefined) => boolean): Promise<number> {
    return this.recovery.recoverLapsed(deadOwners);
  }

  /** Stops taking work, aborts running jobs and waits until each has recorded its end. */
  async stop(reason = "the server is shutting down"): Promise<void> {
    this.stopped = true;
    this.poller?.stop();
    this.poller = undefined;
    const watch = this.watch;
    this.watch = undefined;
    await watch?.then((w) => w.stop(), () => undefined);
    for (const r of this.running.values()) r.abort.abort(new Error(`cancelled: ${reason}`));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    await this.pumping?.catch(() => undefined);
    // A last try for failures kept in memory; those still refused are recovered as interrupted at the next start.
    await this.flushPending().catch(() => false);
    this.outcomes.stopped = true;
    this.waiters.settleAll(`stopped waiting: ${reason}`);
  }
}
