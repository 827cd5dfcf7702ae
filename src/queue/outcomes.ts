// Writing a task's outcome to the catalogue, and the outcomes this node knows but could not write yet.
//
// A recording refused because the catalogue's disk is full first releases the disk reserve (catalog/reserve.ts)
// and retries at once; other transient refusals are retried with backoff for a budget (retry.ts). A failure that
// still cannot be written (PostgreSQL away, the reserve spent) is kept in memory: from the first refused write the
// API reports it from there (outcomeOf / pendingFailures; while the catalogue accepts writes it alone is the
// truth, for every action), and every pass retries the write until it is durable, or until another node has
// recovered the task. A process that dies with outcomes in memory loses nothing the catalogue relies on: its
// tasks are still running there and are recovered as interrupted.
import { Catalog, CatalogFullError, CatalogTx, isTransientCatalogError } from "../catalog/catalog";
import type { Task, TaskFields } from "../catalog/types";
import type { Logger } from "../log";
import type { QueueClock } from "./clock";
import { BACKOFF, nextDelay } from "./retry";
import { assertTransition } from "./states";
import type { JobKind, PendingFailure } from "./types";

export interface OutcomeOptions {
  catalog: Catalog;
  clock: QueueClock;
  nodeId: string;
  leaseMs: number;
  /** Called when recording an outcome fails for a full disk: frees reserved space; true when it freed some. */
  onCatalogFull?: () => boolean;
}

interface Pending extends PendingFailure {
  kind: JobKind | undefined;
  /** False while the task's own run is still writing it; true once the passes own the retries. */
  deferred: boolean;
  flushing?: Promise<boolean>;
  lastError?: unknown;
}

/** "done" when written, "lost" when the write found the task no longer ours, "deferred" when it gave up retrying. */
export type Recorded = "done" | "lost" | "deferred";

export class Outcomes {
  /** Failures this node knows but the catalogue does not have yet (the overlay the API reports), by task id. */
  private readonly pending = new Map<number, Pending>();
  /** Set once the runner has stopped: a recording gives up at its first refusal. */
  stopped = false;

  constructor(private readonly o: OutcomeOptions) {}

  /**
   * Ends a task this node still owns (a lapsed lease may have been taken over by a recovering node): one write,
   * conditional on the owner and the running status, first in the outcome's transaction so the rest of it is
   * only written when this node still holds the task. False (nothing written) when it does not.
   */
  async endOwn(tx: CatalogTx, task: Task, status: "succeed" | "failed", message: string, endTime = this.o.clock.now()): Promise<boolean> {
    assertTransition("running", status);
    return tx.updateOwnTask(task.taskId, this.o.nodeId, endFields(status, message, endTime));
  }

  /** Ends a running task (the state machine's running -> succeed / failed). */
  async markTask(tx: CatalogTx, task: Task, status: "succeed" | "failed", message: string, endTime = this.o.clock.now()): Promise<void> {
    assertTransition("running", status);
    await tx.updateTask(task.taskId, endFields(status, message, endTime));
  }

  /**
   * Writes a task's outcome, retrying while the catalogue refuses (disk full, unreachable) for up to `budgetMs`
   * of backoff (default: the lease). A full disk first releases the reserve and retries at once.
   */
  async record(log: Logger, write: (tx: CatalogTx) => Promise<boolean | void>, budgetMs = this.o.leaseMs, onRefused?: () => void): Promise<Recorded> {
    let waited = 0;
    let delay: number = BACKOFF.firstMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await this.o.catalog.transaction(write);
        return r === false ? "lost" : "done";
      } catch (err) {
        if (!isTransientCatalogError(err)) throw err;
        if (attempt === 1) {
          log.error({ err }, "recording the task's outcome failed; retrying");
          onRefused?.();
        }
        if (err instanceof CatalogFullError && this.releaseReserve()) continue;
        if (waited + delay > budgetMs || this.stopped) {
          log.error({ err }, "giving up recording the task's outcome in line; it is retried until the catalogue accepts writes");
          return "deferred";
        }
        await this.o.clock.sleep(delay);
        waited += delay;
        delay = nextDelay(delay);
      }
    }
  }

  releaseReserve(): boolean {
    try {
      return this.o.onCatalogFull?.() === true;
    } catch {
      return false;
    }
  }

  /** Known, but refused by the catalogue: reported failed by the API from here on, whatever its disk says. */
  known(task: Task, kind: JobKind | undefined, message: string, endTime: number): { message: string } {
    const entry: Pending = { task, kind, message, endTime, deferred: false };
    this.pending.set(task.taskId, entry);
    return entry;
  }

  forget(taskId: number): void {
    this.pending.delete(taskId);
  }

  has(taskId: number): boolean {
    return this.pending.has(taskId);
  }

  /** Keeps a failure the catalogue refused in memory: reported by the API, retried by every pass until durable. */
  defer(task: Task, kind: JobKind | undefined, message: string, log: Logger, endTime = this.o.clock.now()): void {
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
  async flush(logFor: (task: Task) => Logger, instanceId?: string): Promise<boolean> {
    const mine = [...this.pending.values()].filter((p) => p.deferred && (instanceId === undefined || p.task.instanceId === instanceId));
    const results = await Promise.all(mine.map((p) => this.flushOne(p, logFor(p.task))));
    const failed = mine.find((_, i) => !results[i]);
    if (failed && instanceId !== undefined && failed.lastError) throw failed.lastError;
    return !failed;
  }

  private flushOne(p: Pending, log: Logger): Promise<boolean> {
    p.flushing ??= (async () => {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          const ours = await this.o.catalog.transaction(async (tx) => {
            if (!(await this.endOwn(tx, p.task, "failed", p.message, p.endTime))) return false;
            await p.kind?.failed(tx, p.task);
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
}

/** The fields a task's end writes. */
function endFields(status: "succeed" | "failed", message: string, endTime: number): TaskFields {
  return { status, message, endTime, ...(status === "succeed" ? { progress: 100 } : {}), leaseUntil: undefined };
}
