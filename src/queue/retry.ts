// The queue's retry policy, in one place.
//
// - A job is never re-run. A task runs at most once: a run that fails, or a node that dies while running it,
//   ends the task as failed ("interrupted" for a dead node). A half-taken backup is not resumable and a restore
//   half-loaded must not be loaded twice; whoever asked may ask again, which is a new task.
// - What is retried is the recording of an outcome (and the undoing of a dead node's work):
//   - a transient catalogue error (isTransientCatalogError: disk full, connection lost, lock conflict) is retried
//     with exponential backoff, 100 ms doubling up to 2 s, for a budget: a success's commit for the lease's
//     length (then it is undone and failed), a failure for min(lease, 2 s) in line (inlineRetryMs);
//   - a full disk first releases the disk reserve and retries at once, without waiting;
//   - a failure still refused after its budget is kept in memory (reported by the API from there) and retried by
//     every pass (pollMs) until written, or until another node has recovered the task;
//   - any other catalogue error is not retried: the task stays running in the catalogue, its lease lapses and
//     recovery records it as interrupted;
//   - a recovery whose undo fails (the target unreachable) is left: its lease lapses and the next pass, on any
//     node, tries again. Undo is idempotent, so a recovery repeated after a crash is harmless.
// - A lease is renewed every third of its length; one renewal found lost (taken over) aborts the job at once, a
//   renewal that fails aborts it only once the lease it holds has lapsed.

export const BACKOFF = { firstMs: 100, factor: 2, maxMs: 2_000 } as const;

/** How long a failure's recording is retried in line before it is kept in memory: min(lease, 2 s). */
export function inlineFailureBudget(leaseMs: number): number {
  return Math.min(leaseMs, 2_000);
}

/** The wait before the next attempt, after one of `delay`. */
export function nextDelay(delay: number): number {
  return Math.min(delay * BACKOFF.factor, BACKOFF.maxMs);
}

/** How often a lease is renewed: every third of its length (at least every 50 ms). */
export function renewEvery(leaseMs: number): number {
  return Math.max(50, Math.floor(leaseMs / 3));
}
