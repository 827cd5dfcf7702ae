// Finishing the work of a node that died: any node looks for running tasks whose lease has lapsed and recovers
// them. It takes the task over (one conditional write, so only one node recovers it), undoes what the dead owner
// left outside the catalogue (partial files, a Redis left as our replica) and records the outcome together with
// the job's own catalogue rollback, in one transaction. Recovery is idempotent: if the recovering node dies too,
// the next one repeats it.
import type { Catalog } from "../catalog/catalog";
import type { Task } from "../catalog/types";
import type { Logger } from "../log";
import type { QueueClock } from "./clock";
import type { Outcomes } from "./outcomes";
import type { JobKind, Undone } from "./types";

export interface RecoveryOptions {
  catalog: Catalog;
  clock: QueueClock;
  nodeId: string;
  leaseMs: number;
  outcomes: Outcomes;
  kindOf(taskType: string): JobKind | undefined;
  /** Tasks this node runs now: never recovered from under itself. */
  runningHere(taskId: number): boolean;
  logFor(task: Task): Logger;
  recovered(task: Task, outcome: "succeed" | "failed"): void;
}

export class Recovery {
  private readonly recovering = new Set<number>();

  constructor(private readonly o: RecoveryOptions) {}

  /**
   * Recovers running tasks whose owner is gone: leases that lapsed, or (at start) tasks of owners this node
   * knows to be dead. Returns how many were recovered.
   */
  async recoverLapsed(deadOwners: (owner: string | undefined) => boolean = () => false): Promise<number> {
    const { catalog, clock, nodeId, leaseMs, outcomes } = this.o;
    const now = clock.now();
    // A failure kept in memory here is written by the outcome book's flush, with its real message.
    const candidates = (await catalog.tasksInStatus(["running"])).filter((t) =>
      !this.o.runningHere(t.taskId) && !this.recovering.has(t.taskId) && !outcomes.has(t.taskId) && (t.leaseUntil === undefined || t.leaseUntil < now || deadOwners(t.owner)));
    let n = 0;
    for (const t of candidates) {
      const dead = deadOwners(t.owner) ? t.owner : undefined;
      if (!(await catalog.takeOver(t.taskId, t.owner, nodeId, now + leaseMs, now, dead))) continue;
      this.recovering.add(t.taskId);
      try {
        if (await this.recoverOne({ ...t, owner: nodeId }, t.owner, deadOwners(t.owner))) n++;
      } finally {
        this.recovering.delete(t.taskId);
      }
    }
    return n;
  }

  private async recoverOne(task: Task, previousOwner: string | undefined, knownDead: boolean): Promise<boolean> {
    const log = this.o.logFor(task);
    const kind = this.o.kindOf(task.taskType);
    const outcomes = this.o.outcomes;
    let undone: Undone = {};
    if (kind) {
      try {
        undone = await kind.undo(task, "interrupted");
      } catch (err) {
        // Leave it to a later pass (the lease we took lapses and someone tries again).
        log.error({ err }, "recovering an interrupted task failed; it will be retried");
        return false;
      }
    }
    const succeeded = undone.outcome === "succeed";
    // Named, so an operator can tell a restart of this server (known dead at start) from a node whose lease lapsed.
    const who = `${previousOwner ?? "unknown"}${knownDead ? ", a previous run of this server" : ", whose lease lapsed"}`;
    const message = `interrupted: the node running it (${who}) stopped${undone.note ? `; ${undone.note}` : ""}`;
    try {
      await outcomes.record(log, async (tx) => {
        if (!(await outcomes.endOwn(tx, task, succeeded ? "succeed" : "failed", message))) return false;
        if (succeeded) await kind?.recovered?.(tx, task);
        else if (kind) await kind.failed(tx, task);
        return true;
      });
    } catch (err) {
      log.error({ err }, "recording a recovered task failed; it will be retried");
      return false;
    }
    log.warn({ outcome: succeeded ? "succeed" : "failed", message }, "recovered an interrupted task");
    this.o.recovered(task, succeeded ? "succeed" : "failed");
    return true;
  }
}
