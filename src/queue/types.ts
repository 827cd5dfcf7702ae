// What the queue runs (JobKind) and what a kind sees of the queue (JobQueue). Adding a kind of work: implement
// JobKind in src/jobs/, give it task type codes (src/jobs/tasks.ts), register it with the runner in
// src/services.ts; queue its tasks with catalog.insertTask (status preparing) in the transaction that records
// whatever the task works on, then call JobQueue.kick().
import type { CatalogTx } from "../catalog/catalog";
import type { Task } from "../catalog/types";

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

/** Concurrency pools: long Redis-facing work, or short file work (each with its own room per node). */
export type Pool = "redis" | "files";
export const POOLS: readonly Pool[] = ["redis", "files"];

export interface JobKind {
  /** Task type codes this kind runs (e.g. 012 and 017). */
  readonly taskTypes: readonly string[];
  /** Concurrency pool. */
  readonly pool: Pool;
  run(ctx: JobContext): Promise<JobSuccess>;
  /** Undoes what a failed or dead run left outside the catalogue; idempotent, never throws for "already gone". */
  undo(task: Task, why: "failed" | "interrupted"): Promise<Undone>;
  /** The catalogue side of a failure (e.g. drop the unfinished backup record); idempotent. */
  failed(tx: CatalogTx, task: Task): Promise<void>;
  /** The catalogue side of a recovery that found the work done (see Undone.outcome). */
  recovered?(tx: CatalogTx, task: Task): Promise<void>;
}

export type TaskResult = { ok: true; task: Task; result?: unknown } | { ok: false; task: Task; message: string };

/** What a job kind's own methods (enqueue, retire) need of the queue — not the runner itself. */
export interface JobQueue {
  /** This node's name in leases. */
  readonly nodeId: string;
  /** Looks for work now (after queueing a task). */
  kick(): void;
  /**
   * The fields of a task inserted already claimed by this node (running, owned, leased): work done where it is
   * asked for, in line, by `finishInline`.
   */
  claimedAtInsert(now: number): Pick<Task, "status" | "owner" | "leaseUntil">;
  /**
   * Does the work of a task claimed at insert, in line, keeping its lease, and marks it succeeded. When `work`
   * throws (or this process dies), the task stays running: its lease lapses and recovery (the kind's undo)
   * finishes it on some node.
   */
  finishInline(task: Task, work: () => Promise<void>): Promise<void>;
  /** Resolves when a task ends, wherever it runs. */
  waitFor(taskId: number): Promise<TaskResult>;
  /**
   * Writes the failures of an instance this node knows but the catalogue refused (they still hold the
   * instance's lock there); rejects with the catalogue's error when one still cannot be written.
   */
  flushPending(instanceId: string): Promise<boolean>;
}

/** A failure this node knows and the catalogue does not have yet. */
export interface PendingFailure {
  task: Task;
  message: string;
  endTime: number;
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
