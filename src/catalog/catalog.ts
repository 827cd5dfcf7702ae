// The catalogue as every caller sees it: an asynchronous interface over credentials, instances, backups,
// tasks and settings. Two implementations stand behind it — sqlite/ (better-sqlite3, the embedded default) and
// postgres/ (pg, for several nodes) — and one contract suite (test/catalog-contract.test.ts) runs against both.
//
// Reads and single-row writes are plain methods. Anything that must see and change several rows atomically
// runs in `transaction(fn)`, whose callback gets a `CatalogTx` (the same methods, bound to the transaction) and
// must use only it: a call on the outer catalogue from inside the callback throws CatalogMisuseError on both
// engines, and no other I/O belongs inside, because the embedded backend serialises every catalogue call behind
// an open transaction. Both engines stand behind one cache (cached.ts). Row-level claims that several nodes
// race for (a task from the queue, a lease, an automatic backup window, a backup's lock) are single conditional
// statements that report whether this caller won.
import type { ProvisionedCatalog } from "./provisioned";
import type { StreamCatalog } from "./streams";
import type { Backup, BackupQuery, BackupStatus, Credential, Instance, InstanceFields, Task, TaskFields, TaskQuery, TaskStatus } from "./types";

/**
 * Every catalogue operation; the second-level backup tables' methods are in StreamCatalog (streams.ts), the
 * provisioned instances' in ProvisionedCatalog (provisioned.ts).
 */
export interface CatalogTx extends StreamCatalog, ProvisionedCatalog {
  // --- credentials ---
  credential(secretId: string): Promise<Credential | undefined>;
  credentials(accountId?: string): Promise<Credential[]>;
  credentialCount(): Promise<number>;
  putCredential(c: Credential): Promise<void>;
  /** Removes a key; true when it existed. */
  deleteCredential(secretId: string): Promise<boolean>;

  // --- instances ---
  instance(instanceId: string): Promise<Instance | undefined>;
  /** Instances, by instance id; of one account when given. Removed instances are included (deletedAt set). */
  instances(accountId?: string): Promise<Instance[]>;
  /** Inserts, or updates the registration (never the backups or schedule state) of an existing instance. */
  upsertInstance(i: Instance): Promise<void>;
  updateInstance(instanceId: string, fields: InstanceFields): Promise<void>;
  /**
   * Serialises work on one instance inside a transaction (PostgreSQL: a row lock; SQLite: every write
   * transaction is already exclusive). Returns the instance as locked.
   */
  lockInstance(instanceId: string): Promise<Instance | undefined>;

  // --- backups ---
  backup(backupId: string): Promise<Backup | undefined>;
  insertBackup(b: Backup): Promise<void>;
  /** Replaces a backup record by id (fixtures). */
  upsertBackup(b: Backup): Promise<void>;
  updateBackup(backupId: string, fields: Partial<Omit<Backup, "backupId" | "instanceId">>): Promise<void>;
  deleteBackupRecord(backupId: string): Promise<void>;
  /** One page of an instance's backups, newest first (ties by BackupId ascending), and the filter's total. */
  listBackups(q: BackupQuery): Promise<{ total: number; rows: Backup[] }>;
  backupsOfInstance(instanceId: string): Promise<Backup[]>;
  backupsInStatus(status: BackupStatus): Promise<Backup[]>;
  /** Locked backups (Status 2 or 4) that are not fixtures: few, found through the partial index on locked. */
  lockedBackups(): Promise<Backup[]>;
  /** Backups whose ExpireTime has passed (Status 2 or 4, unlocked, not fixtures), up to `limit`. */
  expiredBackups(now: number, limit?: number): Promise<Backup[]>;
  /** Ends the audit trail: drops records of backups deleted or expired before `before`; returns how many. */
  purgeRetired(before: number): Promise<number>;
  /** Locks a kept or exported backup (Status 2/4, unlocked) for one holder; false when someone else won. */
  lockBackup(backupId: string): Promise<boolean>;
  /**
   * Moves a backup from one of `from` to `to` (and sets `fields`) only if it is in one of `from` and unlocked
   * (unless `locked` is given: then only with that lock state). True when this caller made the change.
   */
  transitionBackup(backupId: string, from: readonly BackupStatus[], to: BackupStatus, fields?: Partial<Omit<Backup, "backupId" | "instanceId" | "status">>, locked?: number): Promise<boolean>;

  // --- tasks ---
  insertTask(t: Omit<Task, "taskId">): Promise<number>;
  task(taskId: number): Promise<Task | undefined>;
  updateTask(taskId: number, fields: TaskFields): Promise<void>;
  /**
   * Sets `fields` on a task only while it is running and owned by `nodeId` (how a node records the outcome of
   * a task it holds: one conditional write, no read before it); true when it did.
   */
  updateOwnTask(taskId: number, nodeId: string, fields: TaskFields): Promise<boolean>;
  tasksInStatus(statuses: TaskStatus[]): Promise<Task[]>;
  /** Active (preparing or running) tasks of given types on an instance. */
  activeTasks(instanceId: string, taskTypes: readonly string[]): Promise<Task[]>;
  listTasks(q: TaskQuery): Promise<{ total: number; rows: Array<Task & { instanceName: string }> }>;

  // --- settings (signing secrets, download restrictions) ---
  setting(name: string): Promise<string | undefined>;
  putSetting(name: string, value: string): Promise<void>;
  /** Stores `value` unless the setting exists; returns the value in force (a race between nodes keeps one). */
  settingOnce(name: string, value: string): Promise<string>;
}

/** The task queue and its leases: how several nodes share the work without running anything twice. */
export interface TaskQueue {
  /**
   * Claims the oldest queued task (status preparing, no owner) of one of `taskTypes` for `nodeId` until
   * `leaseUntil`, making it running. Undefined when there is none. Exactly one caller gets each task.
   */
  claimTask(nodeId: string, taskTypes: readonly string[], leaseUntil: number, now: number): Promise<Task | undefined>;
  /** Claims one queued task by id (the CLI runs the task it created); false when another node took it. */
  claimTaskById(taskId: number, nodeId: string, leaseUntil: number, now: number): Promise<boolean>;
  /** Extends a lease this node holds; false when the task is no longer ours (reaped) or no longer running. */
  renewLease(taskId: number, nodeId: string, leaseUntil: number): Promise<boolean>;
  /**
   * Takes a running task over for recovery when its lease has lapsed (or its owner is `deadOwner`, known to be
   * dead); true when this caller won it.
   */
  takeOver(taskId: number, previousOwner: string | undefined, nodeId: string, leaseUntil: number, now: number, deadOwner?: string): Promise<boolean>;
  /**
   * Calls `onQueued` soon after any node commits a queued task, so an idle node need not wait for its poll
   * (PostgreSQL: LISTEN/NOTIFY on a connection of its own, re-established after a loss; `onQueued` is also
   * called after each (re)start, for what was queued meanwhile). Absent where one process owns the catalogue
   * (SQLite): that process wakes its own runner.
   */
  watchQueue?(onQueued: () => void): Promise<QueueWatch>;
}

/** A running watchQueue(): stop() ends it (no call after it resolves). */
export interface QueueWatch {
  stop(): Promise<void>;
}

export interface CatalogStats {
  instances: number;
  backups: number;
  backupsByStatus: Record<string, number>;
  tasksRunning: number;
  tasksQueued: number;
  storedBytes: number;
}

export interface Catalog extends CatalogTx, TaskQueue {
  /** `sqlite` or `postgres`. */
  readonly kind: "sqlite" | "postgres";
  /** Where it lives, without secrets (for messages). */
  describe(): string;
  /** Runs `fn` atomically; rolled back if it throws. `fn` must use only the CatalogTx it is given. */
  transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T>;
  /** Applies pending migrations; returns the versions applied now. Called when a catalogue is opened. */
  migrate(): Promise<number[]>;
  /** Versions not yet applied (readiness: 0 once migrated). */
  pendingMigrations(): Promise<number[]>;
  /** Checks that the catalogue answers (readiness). */
  ping(): Promise<void>;
  stats(): Promise<CatalogStats>;
  close(): Promise<void>;
}

/** Why a catalogue write failed, when the engine tells us the disk is full (SQLite FULL, PostgreSQL 53100). */
export class CatalogFullError extends Error {
  override name = "CatalogFullError";
}

/**
 * The outer catalogue was called inside its own `transaction()` callback. That call would not be part of the
 * transaction (PostgreSQL: another connection, outside it; SQLite: it would wait for the transaction it runs in),
 * so it is refused on every engine: use the `tx` the callback is given.
 */
export class CatalogMisuseError extends Error {
  override name = "CatalogMisuseError";
}

/** The catalogue cannot be reached (PostgreSQL down, connection refused). */
export class CatalogUnavailableError extends Error {
  override name = "CatalogUnavailableError";
}

/**
 * Whether a catalogue error may go away by itself (disk full, connection lost, a lock or serialisation
 * conflict): worth retrying a write that records an outcome. Anything else is a real refusal.
 */
export function isTransientCatalogError(err: unknown): boolean {
  if (err instanceof CatalogFullError || err instanceof CatalogUnavailableError) return true;
  const code = String((err as { code?: unknown } | undefined)?.code ?? "");
  return /^SQLITE_(BUSY|LOCKED|FULL|IOERR)/.test(code)
    || /^(08|53|57P0|40001|40P01)/.test(code) // PostgreSQL: connection, resources, shutdown, serialisation, deadlock
    || ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOSPC"].includes(code);
}
