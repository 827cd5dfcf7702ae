// The task state machine, as a table. A task's status lives in the catalogue; every change below is one
// conditional write (or one transaction), so two nodes never both make it. The runner checks each outcome it
// writes against this table (assertTransition), and docs/queue.md shows the same table.
import type { TaskStatus } from "../catalog/types";

export interface Transition {
  from: TaskStatus | "new";
  to: TaskStatus;
  /** What happens. */
  on: string;
  /** The catalogue write that makes it (the condition that lets only one writer win). */
  write: string;
}

export const TRANSITIONS: readonly Transition[] = [
  { from: "new", to: "preparing", on: "a kind queues work (backup, export, restore)", write: "insertTask, in the kind's own transaction (with its record and lock)" },
  { from: "new", to: "running", on: "work done where it is asked for (a retirement: delete or expiry)", write: "insertTask with owner and lease, in the transaction of the status change" },
  { from: "preparing", to: "running", on: "a node with room claims it (or a CLI claims its own by id)", write: "claimTask / claimTaskById: only a task still preparing and unowned" },
  { from: "running", to: "running", on: "the owner renews its lease; or, once it lapsed, another node takes it over to recover it", write: "renewLease (owner matches) / takeOver (owner and lapsed lease match)" },
  { from: "running", to: "succeed", on: "the run returned and its commit was written; or a recovery found the work done", write: "transaction: still ours, kind's commit (or recovered), status" },
  { from: "running", to: "failed", on: "the run threw, was cancelled, lost its lease, or could not commit in time; or a recovery (interrupted)", write: "transaction: still ours, kind's failed, status" },
];

/** Statuses no transition leaves. */
export const FINAL: readonly TaskStatus[] = ["succeed", "failed"];

export function canTransition(from: TaskStatus | "new", to: TaskStatus): boolean {
  return TRANSITIONS.some((t) => t.from === from && t.to === to);
}

/** Throws for a change the table does not have (a bug in the runner, never bad input). */
export function assertTransition(from: TaskStatus | "new", to: TaskStatus): void {
  if (!canTransition(from, to)) throw new Error(`task state machine: no transition from ${from} to ${to}`);
}
