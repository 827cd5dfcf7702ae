// Exports (task 009): a kept backup (Status 2) is turned into plain, downloadable RDB files, one per shard. While
// that runs the backup is Status 3 and Locked 1; afterwards Status 4 and unlocked. Each shard's stored gzip blob is
// decompressed into a blob writer at exportKey(); the bytes are checked against the StoredFile's size and sha256
// before the file becomes visible, so an export file is either exactly the RDB Redis sent or absent. A failure
// (or the death of the node running it) removes every export file and puts the backup back to Status 2, unlocked.
// One export per backup at a time: the claim (2 or 4 -> 3) is one conditional write, and a second caller — on
// any node — waits for the task already running.
import { pipeline } from "node:stream/promises";
import type { Catalog, CatalogTx } from "../catalog/catalog";
import type { Backup, Task } from "../catalog/types";
import type { Logger } from "../log";
import type { BlobStore } from "../storage/blob-store";
import { verifiedRead } from "../storage/integrity";
import { storedSize } from "../storage/encryption";
import type { Clock } from "../config";
import { backupFiles, backupKeyOf, exportKey } from "./backups";
import type { JobContext, JobKind, JobQueue, JobSuccess, Undone } from "../queue";
import { BackupUnavailableError, JobFailedError } from "./errors";
import { TASK } from "./tasks";

export interface ExportJobsOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  logger: Logger;
  /** The queue this kind's tasks go to (kicked after queueing, waited on). */
  queue: JobQueue;
}

/** The words for a backup status in messages. */
export function describeStatus(status: number): string {
  switch (status) {
    case 1: return "Status 1: the backup is still being taken";
    case 2: return "Status 2: kept, not exported";
    case 3: return "Status 3: being converted to RDB files";
    case 4: return "Status 4: exported";
    case -1: return "Status -1: expired, its files are gone";
    case -2: return "Status -2: deleted";
    default: return `Status ${status}`;
  }
}

export class ExportJobs implements JobKind {
  readonly taskTypes = [TASK.exportBackup];
  readonly pool = "files" as const;

  constructor(private readonly o: ExportJobsOptions) {}

  /**
   * The backup with its export in place: at once for an exported backup whose files are all present, else
   * after exporting it (shared with a concurrent caller, on this node or another). Throws
   * BackupUnavailableError (status, lock) or JobFailedError.
   */
  async ensureExported(backupId: string): Promise<Backup> {
    const { catalog } = this.o;
    const b = await catalog.backup(backupId);
    if (!b) throw new BackupUnavailableError("missing", `backup ${backupId} does not exist`, backupId);
    if (b.status === 4 && !b.locked && (await this.exportComplete(b))) return b;
    const taskId = (await this.runningExport(b)) ?? (await this.enqueue(backupId));
    const outcome = await this.o.queue.waitFor(taskId);
    if (!outcome.ok) throw new JobFailedError(outcome.message);
    const done = await catalog.backup(backupId);
    if (!done || done.status !== 4) throw new JobFailedError(`backup ${backupId} left Status 4 right after its export (${done ? describeStatus(done.status) : "removed"})`);
    return done;
  }

  private async runningExport(b: Backup): Promise<number | undefined> {
    if (b.status !== 3) return undefined;
    return (await this.o.catalog.activeTasks(b.instanceId, this.taskTypes)).find((t) => t.backupId === b.backupId)?.taskId;
  }

  /** Claims the backup (2 or 4 -> 3, Locked 1) and queues the export, or joins the one already running. */
  private async enqueue(backupId: string): Promise<number> {
    const now = this.o.clock.now();
    const taskId = await this.o.catalog.transaction(async (tx) => {
      const cur = await tx.backup(backupId);
      if (!cur) throw new BackupUnavailableError("missing", `backup ${backupId} does not exist`, backupId);
      if (cur.status === 3) {
        const running = (await tx.activeTasks(cur.instanceId, this.taskTypes)).find((t) => t.backupId === backupId);
        if (running) return running.taskId;
      }
      if (cur.status !== 2 && cur.status !== 4) throw new BackupUnavailableError("status", `backup ${backupId} cannot be exported (${describeStatus(cur.status)})`, backupId);
      if (cur.locked) throw new BackupUnavailableError("locked", `backup ${backupId} is locked by another operation`, backupId);
      if (!cur.files.length) throw new BackupUnavailableError("status", `backup ${backupId} has no stored files (a catalogue-only record)`, backupId);
      if (!(await tx.transitionBackup(backupId, [2, 4], 3, { locked: 1 }))) throw new BackupUnavailableError("locked", `backup ${backupId} is locked by another operation`, backupId);
      const instance = await tx.instance(cur.instanceId);
      return tx.insertTask({
        instanceId: cur.instanceId, accountId: instance?.accountId ?? "", taskType: TASK.exportBackup, status: "preparing", progress: 0, startTime: now, message: "", backupId,
      });
    });
    this.o.queue.kick();
    return taskId;
  }

  /** Whether every shard's export file is present with the captured size. */
  async exportComplete(b: Backup): Promise<boolean> {
    if (!b.files.length) return false;
    const encrypted = backupKeyOf(b) !== undefined;
    for (const f of b.files) {
      const st = await this.o.store.stat(exportKey(b.backupId, f.shard));
      if (!st || st.size !== (encrypted ? storedSize(f.bytes) : f.bytes)) return false;
    }
    return true;
  }

  async run(ctx: JobContext): Promise<JobSuccess> {
    const { catalog, store } = this.o;
    const b = ctx.task.backupId ? await catalog.backup(ctx.task.backupId) : undefined;
    if (!b || b.status !== 3) throw new JobFailedError(`backup ${ctx.task.backupId} is no longer waiting to be exported`);
    const files = backupFiles(b).sort((x, y) => x.shard - y.shard);
    // An encrypted backup's exports are encrypted too (its data key, a salt of their own): nothing plain is stored.
    const encryption = backupKeyOf(b);
    for (const [i, f] of files.entries()) {
      const key = exportKey(b.backupId, f.shard);
      await store.remove(key); // a stale or short file from an earlier export
      const writer = store.createWriter(key, { compress: false, ...(encryption ? { encryption } : {}) });
      try {
        // The stored bytes are checked against what was captured on the way (size and SHA-256).
        await pipeline(await verifiedRead(store, f, { decompress: true }), writer, { signal: ctx.signal });
        const committed = await writer.commit();
        if (committed.bytes !== f.bytes || committed.sha256 !== f.sha256) {
          await store.remove(key);
          throw new JobFailedError(`the export of shard ${f.shard} of backup ${b.backupId} was not written intact`);
        }
      } catch (err) {
        await writer.abort().catch(() => undefined);
        throw err;
      }
      ctx.progress(((i + 1) / files.length) * 99);
    }
    return {
      message: `${files.length} file(s), ${files.reduce((n, f) => n + f.bytes, 0)} bytes`,
      commit: async (tx) => {
        // Only our own claim becomes Status 4: a backup retired meanwhile stays retired.
        if (!(await tx.transitionBackup(b.backupId, [3], 4, { locked: 0 }, 1))) {
          throw new JobFailedError(`backup ${b.backupId} left Status 3 while it was being exported`);
        }
      },
    };
  }

  async undo(task: Task): Promise<Undone> {
    if (!task.backupId) return {};
    const b = await this.o.catalog.backup(task.backupId);
    if (b && b.status === 4) return {}; // exported after all: keep the files
    for (const f of b?.files ?? []) await this.o.store.remove(exportKey(task.backupId, f.shard));
    return {};
  }

  async failed(tx: CatalogTx, task: Task): Promise<void> {
    if (task.backupId) await tx.transitionBackup(task.backupId, [3], 2, { locked: 0 }, 1);
  }
}
