// Restores as jobs (task 010): the backup is locked while a registered instance loads it through the master
// side of the replication protocol (restore.ts), and released whatever happens.
import type { Catalog } from "../catalog/sqlite/sqlite";
import type { Backup, Instance } from "../catalog/types";
import type { Clock } from "../services";
import { restoreRdb, RestoreError } from "../redis/restore";
import { parseRedisUrl } from "../redis/resp";
import { InstanceBusyError } from "./backups";
import type { BlobStore } from "../storage/blob-store";
import { TASK } from "./tasks";

export class BackupUnavailableError extends Error {
  override name = "BackupUnavailableError";
  constructor(readonly reason: "status" | "locked" | "shards", message: string) {
    super(message);
  }
}

export interface RestoreServiceOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  /** The address target Redis servers connect back to (our short-lived replication endpoint). */
  advertiseHost: string;
  log?: (line: string) => void;
}

export interface StartedRestore {
  taskId: number;
  done: Promise<{ ok: true; keys: number } | { ok: false; message: string; kind?: string }>;
}

export class RestoreService {
  private readonly targets = new Set<string>();
  private readonly running = new Map<number, { abort: AbortController; done: Promise<unknown> }>();

  constructor(private readonly o: RestoreServiceOptions) {}

  /** Checks and locks, records the task and starts loading `backup` into `target`. */
  start(backup: Backup, target: Instance, onProgress?: (sent: number, total: number) => void): StartedRestore {
    const { catalog } = this.o;
    if (backup.status === 3 || backup.locked) throw new BackupUnavailableError("locked", `backup ${backup.backupId} is locked by another operation`);
    if (backup.status !== 2 && backup.status !== 4) {
      throw new BackupUnavailableError("status", `backup ${backup.backupId} has Status ${backup.status}; only a kept backup (2) or an exported one (4) can be restored`);
    }
    if (backup.files.length === 0) throw new BackupUnavailableError("status", `backup ${backup.backupId} has no stored file (a catalogue-only record)`);
    if (backup.files.length !== 1) {
      throw new BackupUnavailableError("shards", `backup ${backup.backupId} has ${backup.files.length} shards; restoring a cluster backup is not supported yet`);
    }
    if (!target.redisUrl) throw new InstanceBusyError(`instance ${target.instanceId} has no Redis server registered`);
    const now = this.o.clock.now();
    const taskId = catalog.transaction(() => {
      if (!catalog.lockBackup(backup.backupId)) throw new BackupUnavailableError("locked", `backup ${backup.backupId} is locked by another operation`);
      // Inside the transaction, so a refusal here also rolls the lock back.
      if (this.targets.has(target.instanceId)) throw new InstanceBusyError(`instance ${target.instanceId} is already being restored`);
      return catalog.insertTask({
        instanceId: target.instanceId, accountId: target.accountId, taskType: TASK.restore, status: "preparing", progress: 0, startTime: now, message: "", backupId: backup.backupId,
      });
    });
    this.targets.add(target.instanceId);
    const abort = new AbortController();
    const file = backup.files[0]!;
    const done = (async (): Promise<{ ok: true; keys: number } | { ok: false; message: string; kind?: string }> => {
      try {
        catalog.updateTask(taskId, { status: "running" });
        const result = await restoreRdb(parseRedisUrl(target.redisUrl!), { size: file.bytes, open: () => this.o.store.openRead(file.key, { decompress: true }) }, {
          advertiseHost: this.o.advertiseHost, signal: abort.signal,
          onProgress: (sent) => {
            onProgress?.(sent, file.bytes);
          },
        });
        catalog.updateTask(taskId, { status: "succeed", progress: 100, endTime: this.o.clock.now() });
        this.o.log?.(`restore of backup ${backup.backupId} into ${target.instanceId}: ${result.keys} keys, loaded in ${result.loadMs} ms`);
        return { ok: true, keys: result.keys };
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        catalog.updateTask(taskId, { status: "failed", endTime: this.o.clock.now(), message });
        this.o.log?.(`restore of backup ${backup.backupId} into ${target.instanceId} failed: ${message}`);
        return { ok: false, message, kind: err instanceof RestoreError ? err.kind : undefined };
      } finally {
        try {
          catalog.updateBackup(backup.backupId, { locked: 0 });
        } catch (err) {
          this.o.log?.(`could not release backup ${backup.backupId} (released at the next start): ${(err as Error).message}`);
        }
        this.targets.delete(target.instanceId);
        this.running.delete(taskId);
      }
    })();
    done.catch(() => undefined);
    this.running.set(taskId, { abort, done });
    return { taskId, done };
  }

  async shutdown(): Promise<void> {
    for (const r of this.running.values()) r.abort.abort();
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }
}
