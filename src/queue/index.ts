// The task queue (see runner.ts, and docs/queue.md for the state machine and the retry policy).
export { TaskRunner } from "./runner";
export type { RunnerOptions } from "./runner";
export { makeNodeId } from "./node-id";
export { TRANSITIONS, canTransition } from "./states";
export type { JobContext, JobKind, JobQueue, JobSuccess, LocalHooks, PendingFailure, Pool, RunnerObserver, TaskResult, Undone } from "./types";
