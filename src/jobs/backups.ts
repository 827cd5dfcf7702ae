// Backups as jobs: a backup record (Status 1) and a task are written together, the capture streams each
// shard into blob storage, and the outcome is recorded in one transaction. A failed attempt leaves no file and
// no listed backup; an interrupted one is cleaned up at the next start.
import crypto from "node:crypto";
import type { Catalog } from "../catalog/sqlite/sqlite";
import type { Backup, Instance, StoredFile } from "../catalog/types";
import type { Clock } from "../services";
import { captureRdb, CaptureError, discoverShards } from "../redis/capture";
import { fileTypeFor, instanceTypeFor } from "../redis/rdb";
import { parseRedisUrl } from "../redis/resp";
import type { BlobStore } from "../storage/blob-store";
import { TASK } from "./tasks";

export const DAY_MS = 86_400_000;

export class InstanceBusyError extends Error {
  override name = "InstanceBusyError";
}

export interface BackupProgress {
  shard: number;
  shards: number;
  bytes: number;
}

export interface StartBackupOptions {
  remark?: string;
  /** Retention in days; 0 or absent = the instance's own (default 7). */
  storageDays?: number;
  automatic?: boolean;
  onProgress?: (p: BackupProgress) => void;
}

export interface StartedBackup {
  taskId: number;
  backupId: string;
  /** Settles when the job ends: the finished backup, or the failure's message. */
  done: Promise<{ ok: true; backup: Backup } | { ok: false; message: string }>;
}

export interface BackupServiceOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  log?: (line: string) => void;
  /** Stall timeout of a capture. */
  captureTimeoutMs?: number;
}

export function blobKey(backupId: string, shard: number): string {
  return `backups/${backupId}/shard-${shard}.rdb.gz`;
}

/** Where the plain (downloadable) RDB file of an export of one shard lives; removed with the backup. */
export function exportKey(backupId: string, shard: number): string {
  return `exports/${backupId}/shard-${shard}.rdb`;
}

function describe(err: unknown): string {
  if (err instanceof CaptureError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

export class BackupService {
  private readonly running = new Map<number, { abort: AbortController; done: Promise<unknown> }>();

  constructor(private readonly o: BackupServiceOptions) {}

  private get catalog(): Catalog {
    return this.o.catalog;
  }

  /** Registers the backup (Status 1) and its task and starts the capture; throws InstanceBusyError if one runs. */
  start(instance: Instance, opts: StartBackupOptions = {}): StartedBackup {
    if (!instance.redisUrl) throw new Error(`instance ${instance.instanceId} has no Redis connection registered`);
    const endpoint = parseRedisUrl(instance.redisUrl);
    const now = this.o.clock.now();
    const days = opts.storageDays && opts.storageDays > 0 ? opts.storageDays : instance.backupStorageDays;
    const backup: Backup = {
      backupId: crypto.randomUUID(), instanceId: instance.instanceId, startTime: now, backupType: opts.automatic ? "1" : "0", status: 1,
      remark: opts.remark ?? "", locked: 0, backupSize: 0, fullBackup: 0, instanceType: instance.instanceType,
      fileType: instance.redisVersion ? fileTypeFor(instance.redisVersion) : "", expireTime: now + days * DAY_MS, encrypted: false, files: [],
    };
    const taskId = this.catalog.beginBackup(backup, {
      instanceId: instance.instanceId, accountId: instance.accountId, taskType: opts.automatic ? TASK.autoBackup : TASK.backup,
      status: "preparing", progress: 0, startTime: now, message: "",
    });
    if (taskId === undefined) throw new InstanceBusyError(`instance ${instance.instanceId} already has a backup in progress`);
    const abort = new AbortController();
    const done = this.run(backup, taskId, endpoint, abort.signal, opts.onProgress);
    this.running.set(taskId, { abort, done });
    done.finally(() => this.running.delete(taskId)).catch(() => undefined);
    return { taskId, backupId: backup.backupId, done };
  }

  private async run(backup: Backup, taskId: number, endpoint: ReturnType<typeof parseRedisUrl>, signal: AbortSignal, onProgress?: (p: BackupProgress) => void): Promise<{ ok: true; backup: Backup } | { ok: false; message: string }> {
    const { catalog, store } = this.o;
    const files: StoredFile[] = [];
    try {
      catalog.updateTask(taskId, { status: "running" });
      const topology = await discoverShards(endpoint, this.o.captureTimeoutMs ?? 10_000);
      let total = 0;
      let redisVersion: string | undefined;
      for (const [shard, ep] of topology.masters.entries()) {
        if (signal.aborted) throw new CaptureError("ABORTED", "the backup was cancelled");
        const key = blobKey(backup.backupId, shard);
        const writer = store.createWriter(key, { compress: true });
        try {
          const result = await captureRdb(ep, writer, {
            timeoutMs: this.o.captureTimeoutMs, signal,
            onProgress: (bytes) => onProgress?.({ shard, shards: topology.masters.length, bytes: total + bytes }),
          });
          const committed = await writer.commit();
          files.push({ key, bytes: committed.bytes, sha256: committed.sha256, shard });
          total += committed.bytes;
          redisVersion ??= result.rdb.redisVersion;
          // Recorded per shard, so a crash part-way leaves a list of what to remove.
          catalog.updateBackup(backup.backupId, { files });
          catalog.updateTask(taskId, { progress: Math.floor(((shard + 1) / topology.masters.length) * 99) });
        } catch (err) {
          await writer.abort();
          throw err;
        }
      }
      const end = this.o.clock.now();
      const version = redisVersion ?? "0.0.0";
      const instanceType = instanceTypeFor(version, topology.cluster);
      const finished: Backup = { ...backup, status: 2, endTime: end, backupSize: total, fileType: fileTypeFor(version), instanceType, files };
      catalog.transaction(() => {
        catalog.updateBackup(backup.backupId, { status: 2, endTime: end, backupSize: total, fileType: finished.fileType, instanceType, files });
        catalog.updateInstance(backup.instanceId, { redisVersion: version, instanceType, shardNum: topology.masters.length });
        catalog.updateTask(taskId, { status: "succeed", progress: 100, endTime: end });
      });
      this.o.log?.(`backup ${backup.backupId} of ${backup.instanceId}: ${total} bytes in ${files.length} shard(s), ${end - backup.startTime} ms`);
      return { ok: true, backup: finished };
    } catch (err) {
      const message = describe(err);
      for (const f of files) await store.remove(f.key).catch(() => undefined);
      catalog.transaction(() => {
        catalog.deleteBackupRecord(backup.backupId);
        catalog.updateTask(taskId, { status: "failed", endTime: this.o.clock.now(), message });
      });
      this.o.log?.(`backup ${backup.backupId} of ${backup.instanceId} failed: ${message}`);
      return { ok: false, message };
    }
  }

  /**
   * Ends a backup's life: its files are removed and it becomes Status -1 (expired, task 046) or -2 (deleted,
   * task 014); the record stays for the audit trail. A locked backup (export, restore) is refused.
   */
  async retire(given: Backup, status: -1 | -2, accountId: string): Promise<void> {
    const { catalog, store } = this.o;
    // The caller's copy may be stale: an export or a restore may have locked it since.
    const backup = catalog.backup(given.backupId) ?? given;
    if (backup.locked) throw new InstanceBusyError(`backup ${backup.backupId} is locked by an export or a restore`);
    if (backup.status === 1) throw new InstanceBusyError(`backup ${backup.backupId} is still being taken`);
    const now = this.o.clock.now();
    const taskId = catalog.insertTask({
      instanceId: backup.instanceId, accountId, taskType: status === -1 ? TASK.removeBackupFile : TASK.deleteBackup,
      status: "running", progress: 0, startTime: now, message: "", backupId: backup.backupId,
    });
    for (const f of backup.files) {
      await store.remove(f.key);
      await store.remove(exportKey(backup.backupId, f.shard));
    }
    catalog.transaction(() => {
      catalog.updateBackup(backup.backupId, { status, files: [], locked: 0, ...(status === -2 ? { deletedAt: now } : {}) });
      catalog.updateTask(taskId, { status: "succeed", progress: 100, endTime: this.o.clock.now() });
    });
  }

  /** Removes an instance: its backups become Status -2 with their files gone; records stay for the audit trail. */
  async removeInstance(instance: Instance): Promise<number> {
    const backups = this.o.catalog.backupsOfInstance(instance.instanceId);
    const busy = backups.find((b) => b.status === 1 || b.locked);
    if (busy) throw new InstanceBusyError(`instance ${instance.instanceId} has backup ${busy.backupId} in progress or locked`);
    let n = 0;
    for (const b of backups) {
      if (b.status === -2) continue;
      await this.retire(b, -2, instance.accountId);
      n++;
    }
    this.o.catalog.updateInstance(instance.instanceId, { deletedAt: this.o.clock.now() });
    return n;
  }

  /**
   * After a crash or restart: tasks that were running are failed, their backups removed with their files,
   * and leftover temporary files deleted.
   */
  async recover(): Promise<{ tasks: number; backups: number; tempFiles: number }> {
    const { catalog, store } = this.o;
    const now = this.o.clock.now();
    const tasks = catalog.tasksInStatus(["preparing", "running"]).filter((t) => !this.running.has(t.taskId));
    // Only the backups of interrupted capture tasks: a Status 1 fixture record has no task and stays as given.
    const orphans = tasks
      .filter((t) => (t.taskType === TASK.backup || t.taskType === TASK.autoBackup) && t.backupId !== undefined)
      .map((t) => catalog.backup(t.backupId!))
      .filter((b): b is Backup => b !== undefined && b.status === 1);
    for (const b of orphans) for (const f of b.files) await store.remove(f.key).catch(() => undefined);
    catalog.transaction(() => {
      for (const t of tasks) catalog.updateTask(t.taskId, { status: "failed", endTime: now, message: "interrupted: the server stopped while the task was running" });
      for (const b of orphans) catalog.deleteBackupRecord(b.backupId);
      // Locks are held by running jobs only; after a restart none is running.
      for (const b of catalog.lockedBackups()) catalog.updateBackup(b.backupId, { locked: 0 });
    });
    const tempFiles = (await store.removeStale?.()) ?? 0;
    return { tasks: tasks.length, backups: orphans.length, tempFiles };
  }

  /** Cancels running captures and waits for them to record their end. */
  async shutdown(): Promise<void> {
    for (const job of this.running.values()) job.abort.abort();
    await Promise.allSettled([...this.running.values()].map((j) => j.done));
  }
}
