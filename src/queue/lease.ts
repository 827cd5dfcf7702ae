// Keeping a claimed task: the owner renews its lease (a time in the catalogue) while the job runs. A job whose
// lease cannot be renewed, or was taken over, is aborted: the catalogue, not process memory, says who owns a task.
import type { Catalog } from "../catalog/catalog";
import type { Task } from "../catalog/types";
import type { Logger } from "../log";
import type { QueueClock } from "./clock";
import { renewEvery } from "./retry";

export interface LeaseOptions {
  catalog: Catalog;
  clock: QueueClock;
  nodeId: string;
  leaseMs: number;
}

/** Renews the task's lease every third of its length; aborts the job when the lease is lost. */
export function keepLease(o: LeaseOptions, task: Task, abort: AbortController, log: Logger): { stop(): void } {
  let leaseEnd = task.leaseUntil ?? o.clock.now() + o.leaseMs;
  return o.clock.every(renewEvery(o.leaseMs), () => {
    const until = o.clock.now() + o.leaseMs;
    o.catalog.renewLease(task.taskId, o.nodeId, until).then((ok) => {
      if (ok) leaseEnd = until;
      else if (!abort.signal.aborted) {
        log.warn("task lease lost (taken over by another node); stopping it");
        abort.abort(new Error("the task's lease was lost"));
      }
    }, (err: unknown) => {
      if (o.clock.now() > leaseEnd && !abort.signal.aborted) {
        log.error({ err }, "task lease could not be renewed before it lapsed; stopping it");
        abort.abort(new Error("the task's lease could not be renewed"));
      }
    });
  });
}
