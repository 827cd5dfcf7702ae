// Exports (task 009): a kept backup (Status 2) is turned into plain, downloadable RDB files, one per shard. While
// that runs the backup is Status 3 and Locked 1; afterwards Status 4 and unlocked. Each shard's stored gzip blob is
// decompressed into a blob writer at exportKey(); the bytes are checked against the StoredFile's size and sha256
// before the file becomes visible, so an export file is either exactly the RDB Redis sent or absent. A failure
// removes every export file and puts the backup back to Status 2, unlocked. One export per backup at a time: a
// second caller shares the first one's promise.
import crypto from "node:crypto";
import { Transform, TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Catalog } from "../catalog/sqlite/sqlite";
import type { Backup } from "../catalog/types";
import type { Clock, Services } from "../services";
import { exportKey } from "./backups";
import type { BlobStore } from "../storage/blob-store";
import { TASK } from "./tasks";

/** Why a backup cannot be exported now. */
export class ExportUnavailableError extends Error {
  override name = "ExportUnavailableError";
  constructor(readonly reason: "missing" | "status" | "locked", message: string) {
    super(message);
  }
}

/** The export itself failed (I/O, or the bytes did not match what was captured); the backup is back at Status 2. */
export class ExportFailedError extends Error {
  override name = "ExportFailedError";
}

export interface ExportServiceOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  log?: (line: string) => void;
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

/** Counts and hashes the bytes passing through. */
class Digest extends Transform {
  readonly hash = crypto.createHash("sha256");
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

export class ExportService {
  private readonly inflight = new Map<string, { promise: Promise<Backup>; abort: AbortController }>();

  constructor(private readonly o: ExportServiceOptions) {}

  /**
   * The backup with its export in place: at once for an exported backup whose files are all present, else
   * after exporting it (shared with a concurrent caller). Throws ExportUnavailableError (status, lock) or
   * ExportFailedError.
   */
  async ensureExported(backupId: string): Promise<Backup> {
    const running = this.inflight.get(backupId);
    if (running) return running.promise;
    const b = this.o.catalog.backup(backupId);
    if (!b) throw new ExportUnavailableError("missing", `backup ${backupId} does not exist`);
    if (b.status === 4 && (await this.exportComplete(b))) return b;
    // Re-check after the await: another caller may have started meanwhile.
    const again = this.inflight.get(backupId);
    if (again) return again.promise;
    return this.start(backupId).promise;
  }

  /** Whether every shard's export file is present with the captured size. */
  async exportComplete(b: Backup): Promise<boolean> {
    if (!b.files.length) return false;
    for (const f of b.files) {
      const st = await this.o.store.stat(exportKey(b.backupId, f.shard));
      if (!st || st.size !== f.bytes) return false;
    }
    return true;
  }

  /** Synchronously claims the backup (2 or 4 -> 3, Locked 1) and starts the export. */
  private start(backupId: string): { promise: Promise<Backup>; abort: AbortController } {
    const { catalog } = this.o;
    const now = this.o.clock.now();
    const claimed = catalog.transaction(() => {
      const cur = catalog.backup(backupId);
      if (!cur) throw new ExportUnavailableError("missing", `backup ${backupId} does not exist`);
      if (cur.status !== 2 && cur.status !== 4) throw new ExportUnavailableError("status", `backup ${backupId} cannot be exported (${describeStatus(cur.status)})`);
      if (cur.locked) throw new ExportUnavailableError("locked", `backup ${backupId} is locked by another operation`);
      if (!cur.files.length) throw new ExportUnavailableError("status", `backup ${backupId} has no stored files (a catalogue-only record)`);
      catalog.updateBackup(backupId, { status: 3, locked: 1 });
      const instance = catalog.instance(cur.instanceId);
      const taskId = catalog.insertTask({
        instanceId: cur.instanceId, accountId: instance?.accountId ?? "", taskType: TASK.exportBackup, status: "running", progress: 0, startTime: now, message: "", backupId,
      });
      return { backup: cur, taskId };
    });
    const abort = new AbortController();
    const promise = this.run(claimed.backup, claimed.taskId, abort.signal);
    const entry = { promise, abort };
    this.inflight.set(backupId, entry);
    promise.finally(() => this.inflight.delete(backupId)).catch(() => undefined);
    return entry;
  }

  private async run(b: Backup, taskId: number, signal: AbortSignal): Promise<Backup> {
    const { catalog, store } = this.o;
    const started = this.o.clock.now();
    try {
      const files = [...b.files].sort((x, y) => x.shard - y.shard);
      for (const [i, f] of files.entries()) {
        const key = exportKey(b.backupId, f.shard);
        await store.remove(key); // a stale or short file from an earlier export
        const writer = store.createWriter(key, { compress: false });
        try {
          const source = await store.openRead(f.key, { decompress: true });
          const digest = new Digest();
          await pipeline(source, digest, writer, { signal });
          const sha256 = digest.hash.digest("hex");
          if (digest.bytes !== f.bytes || sha256 !== f.sha256) {
            throw new ExportFailedError(`shard ${f.shard} of backup ${b.backupId} does not match its capture: ${digest.bytes} bytes with sha256 ${sha256}, expected ${f.bytes} bytes with sha256 ${f.sha256}`);
          }
          const committed = await writer.commit();
          if (committed.bytes !== f.bytes || committed.sha256 !== f.sha256) {
            await store.remove(key);
            throw new ExportFailedError(`the export of shard ${f.shard} of backup ${b.backupId} was not written intact`);
          }
        } catch (err) {
          await writer.abort().catch(() => undefined);
          throw err;
        }
        catalog.updateTask(taskId, { progress: Math.floor(((i + 1) / files.length) * 99) });
      }
      const end = this.o.clock.now();
      const kept = catalog.transaction(() => {
        // Only our own claim is turned into Status 4: a backup retired meanwhile stays retired.
        if (catalog.backup(b.backupId)?.status !== 3) return false;
        catalog.updateBackup(b.backupId, { status: 4, locked: 0 });
        catalog.updateTask(taskId, { status: "succeed", progress: 100, endTime: end });
        return true;
      });
      if (!kept) throw new ExportFailedError(`backup ${b.backupId} left Status 3 while it was being exported`);
      this.o.log?.(`export of backup ${b.backupId}: ${files.length} file(s), ${files.reduce((n, f) => n + f.bytes, 0)} bytes, ${end - started} ms`);
      return { ...b, status: 4, locked: 0 };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      for (const f of b.files) await store.remove(exportKey(b.backupId, f.shard)).catch(() => undefined);
      try {
        catalog.transaction(() => {
          if (catalog.backup(b.backupId)?.status === 3) catalog.updateBackup(b.backupId, { status: 2, locked: 0 });
          catalog.updateTask(taskId, { status: "failed", endTime: this.o.clock.now(), message });
        });
      } catch (dbErr) {
        this.o.log?.(`export of backup ${b.backupId}: could not record the failure: ${String(dbErr)}`);
      }
      this.o.log?.(`export of backup ${b.backupId} failed, back to Status 2: ${err instanceof Error ? err.stack ?? message : message}`);
      throw err instanceof ExportFailedError ? err : new ExportFailedError(`the export of backup ${b.backupId} failed: ${message}`);
    }
  }

  /** Cancels running exports and waits until each has put its backup back. */
  async shutdown(): Promise<void> {
    for (const e of this.inflight.values()) e.abort.abort();
    await Promise.allSettled([...this.inflight.values()].map((e) => e.promise));
  }
}

const services = new WeakMap<Services, ExportService>();

/** The export service of a running server (created on first use, sharing the server's catalogue, store and clock). */
export function exportsOf(s: Services, log?: (line: string) => void): ExportService {
  let e = services.get(s);
  if (!e) {
    e = new ExportService({ catalog: s.catalog, store: s.store, clock: s.clock, log });
    services.set(s, e);
  }
  return e;
}

/**
 * After a crash or restart: a (captured) backup left at Status 3 goes back to Status 2, unlocked, without its partial
 * export files (temporary files are removed by the store's removeStale). Returns how many were reset.
 */
export async function recoverExports(o: { catalog: Catalog; store: BlobStore }): Promise<number> {
  const { catalog, store } = o;
  // Only backups with stored files can have been exported; a fixture may list Status 3 on purpose.
  const stuck = catalog.backupsInStatus(3).filter((b) => b.files.length > 0);
  for (const b of stuck) {
    for (const f of b.files) await store.remove(exportKey(b.backupId, f.shard)).catch(() => undefined);
  }
  catalog.transaction(() => {
    for (const b of stuck) catalog.updateBackup(b.backupId, { status: 2, locked: 0 });
  });
  return stuck.length;
}
