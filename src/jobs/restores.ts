// Restores as jobs (task 010): the backup is locked and the task queued together — refused while another restore
// into the same instance is queued or running, the catalogue being the one place that knows. The node that runs
// it makes the target load the RDB through the master side of the replication protocol (redis/restore.ts),
// recording our replication endpoint in the task before the target is told to follow it. If that node dies, the
// recovering node finds the target by that record, makes it a master again if it still follows the dead
// endpoint, and reports what the target really holds (verified against the backup's digest when one exists).
import type { Catalog, CatalogTx } from "../catalog/catalog";
import type { Backup, Instance, Task } from "../catalog/types";
import type { Logger } from "../log";
import { RedisReplyError, RespConnection, parseRedisUrl } from "../redis/resp";
import { restoreRdb, RestoreError } from "../redis/restore";
import { releaseTarget } from "../redis/restore-target";
import type { BlobStore } from "../storage/blob-store";
import { verifiedRead } from "../storage/verify";
import type { Clock } from "../config";
import { BackupUnavailableError, InstanceBusyError } from "./errors";
import type { JobContext, JobKind, JobSuccess, TaskRunner, Undone } from "./runner";
import { TASK } from "./tasks";

export interface RestoreJobsOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  logger: Logger;
  runner: TaskRunner;
  /** The address target Redis servers connect back to (this node's short-lived replication endpoint). */
  advertiseHost: string;
}

export class RestoreJobs implements JobKind {
  readonly taskTypes = [TASK.restore];
  readonly pool = "redis" as const;

  constructor(private readonly o: RestoreJobsOptions) {}

  /** Checks, locks the backup and queues the restore of `backup` into `target`. */
  async enqueue(backup: Backup, target: Instance): Promise<{ taskId: number }> {
    if (backup.status === 3 || backup.locked) throw new BackupUnavailableError("locked", `backup ${backup.backupId} is locked by another operation`, backup.backupId);
    if (backup.status !== 2 && backup.status !== 4) {
      throw new BackupUnavailableError("status", `backup ${backup.backupId} has Status ${backup.status}; only a kept backup (2) or an exported one (4) can be restored`, backup.backupId);
    }
    if (backup.files.length === 0) throw new BackupUnavailableError("status", `backup ${backup.backupId} has no stored file (a catalogue-only record)`, backup.backupId);
    if (backup.files.length !== 1) {
      throw new BackupUnavailableError("shards", `backup ${backup.backupId} has ${backup.files.length} shards; restoring a cluster backup is not supported yet`, backup.backupId);
    }
    if (!target.redisUrl) throw new InstanceBusyError(target.instanceId, `instance ${target.instanceId} has no Redis server registered`);
    const now = this.o.clock.now();
    const taskId = await this.o.catalog.transaction(async (tx) => {
      // The target's row lock serialises two restores into one instance asked for on two nodes at once.
      await tx.lockInstance(target.instanceId);
      if (!(await tx.lockBackup(backup.backupId))) throw new BackupUnavailableError("locked", `backup ${backup.backupId} is locked by another operation`, backup.backupId);
      // Inside the transaction, so a refusal here also rolls the lock back.
      if ((await tx.activeTasks(target.instanceId, this.taskTypes)).length) throw new InstanceBusyError(target.instanceId, `instance ${target.instanceId} is already being restored`);
      return tx.insertTask({
        instanceId: target.instanceId, accountId: target.accountId, taskType: TASK.restore, status: "preparing", progress: 0, startTime: now, message: "",
        backupId: backup.backupId, params: { sourceInstanceId: backup.instanceId },
      });
    });
    this.o.runner.kick();
    return { taskId };
  }

  private async parts(task: Task): Promise<{ backup: Backup; target: Instance }> {
    const backup = task.backupId ? await this.o.catalog.backup(task.backupId) : undefined;
    if (!backup || (backup.status !== 2 && backup.status !== 4) || backup.files.length !== 1) throw new Error(`backup ${task.backupId} can no longer be restored`);
    const target = await this.o.catalog.instance(task.instanceId);
    if (!target?.redisUrl || target.deletedAt !== undefined) throw new Error(`instance ${task.instanceId} was removed or has no Redis server registered`);
    return { backup, target };
  }

  async run(ctx: JobContext): Promise<JobSuccess> {
    const { backup, target } = await this.parts(ctx.task);
    const file = backup.files[0]!;
    const label = `into ${target.instanceId}`;
    const result = await restoreRdb(parseRedisUrl(target.redisUrl!), { size: file.bytes, open: () => verifiedRead(this.o.store, file, { decompress: true }) }, {
      advertiseHost: this.o.advertiseHost, signal: ctx.signal,
      beforeReplicaOf: (endpoint) => ctx.saveState({ replicaOf: endpoint }),
      onProgress: (sent) => {
        ctx.progress((sent / Math.max(1, file.bytes)) * 95);
        ctx.local?.onProgress?.(sent, file.bytes, label);
      },
    });
    return {
      message: `${result.keys} keys loaded in ${result.loadMs} ms (replication)`,
      result,
      commit: (tx) => tx.updateBackup(backup.backupId, { locked: 0 }),
    };
  }

  /**
   * After a failed run the restore itself already made the target a master again; after an interrupted one the
   * target may still follow our dead endpoint: make it a master, then see whether it holds the backup.
   */
  async undo(task: Task, why: "failed" | "interrupted"): Promise<Undone> {
    const endpoint = task.state?.replicaOf as { host: string; port: number } | undefined;
    if (why === "failed" || !endpoint) return {};
    const target = await this.o.catalog.instance(task.instanceId);
    if (!target?.redisUrl) return { note: "the target instance is no longer registered, so it was not checked" };
    const ep = parseRedisUrl(target.redisUrl);
    let released;
    try {
      released = await releaseTarget(ep, endpoint);
    } catch (err) {
      // Unreachable now: recovery is retried on a later pass rather than leaving it a replica unnoticed.
      throw new RestoreError("connect", `the restore target ${ep.host}:${ep.port} could not be reached to switch it back to master: ${(err as Error).message}`);
    }
    const what = released.released ? "the target was switched back to master (REPLICAOF NO ONE)" : `the target no longer followed our endpoint (role ${released.role}) and was left as it is`;
    const backup = task.backupId ? await this.o.catalog.backup(task.backupId) : undefined;
    const digest = backup?.files[0]?.digest;
    if (!digest) return { outcome: "failed", note: `${what}; it holds ${released.keys} keys, which could not be verified against the backup (no digest recorded for it)` };
    const actual = await targetDigest(ep).catch(() => undefined);
    if (actual === undefined) return { outcome: "failed", note: `${what}; it holds ${released.keys} keys (DEBUG DIGEST is not allowed there, so they could not be verified)` };
    return actual === digest
      ? { outcome: "succeed", note: `${what}; its data set is verified equal to the backup (digest ${digest})` }
      : { outcome: "failed", note: `${what}; its data set differs from the backup (digest ${actual}, backup ${digest}): the load did not complete` };
  }

  async failed(tx: CatalogTx, task: Task): Promise<void> {
    if (task.backupId) await tx.updateBackup(task.backupId, { locked: 0 });
  }

  async recovered(tx: CatalogTx, task: Task): Promise<void> {
    if (task.backupId) await tx.updateBackup(task.backupId, { locked: 0 });
  }
}

/** The target's DEBUG DIGEST (40 hex digits); rejects where DEBUG is not allowed. */
export async function targetDigest(ep: ReturnType<typeof parseRedisUrl>): Promise<string> {
  const conn = await RespConnection.connect(ep, 10_000);
  try {
    const reply = await conn.command("DEBUG", "DIGEST");
    if (reply instanceof RedisReplyError) throw reply;
    return Buffer.isBuffer(reply) ? reply.toString("latin1") : String(reply);
  } finally {
    conn.close();
  }
}
