// Restores as jobs (task 010): the backup is locked and the task queued together — refused while another restore
// into the same instance is queued or running, the catalogue being the one place that knows. This file is the
// task's lifecycle: the checks and locks at enqueue, the run's hooks (progress, the state recovery needs, the
// message), the outcome and the unlock. The restore itself — the path chosen (replication or commands, named in
// the task's message), run, verified against the backup — is src/redis/restore/run.ts, which reads the backup's
// files as streams this file opens through their integrity check.
//
// A verification "different" fails the task: the target does not hold what the backup holds.
//
// Recovery: the replication path records our replication endpoint (and a target setting it changes for the
// load) in the task before touching the target. If the node dies, the recovering node makes the target a
// master again if it still follows the dead endpoint, puts the setting back, and reports what the target holds.
// An interrupted command restore leaves the keys written so far: nothing to switch back, the note says so.
import type { Readable } from "node:stream";
import type { Catalog, CatalogTx } from "../catalog/catalog";
import type { Backup, Instance, StoredFile, Task } from "../catalog/types";
import type { Logger } from "../log";
import { interruptedNote, needsRecovery, recoverTarget, resolveTarget, RestoreReport, RestoreState, runRestore } from "../redis/restore/run";
import { checkRestoreRequest, DEFAULT_RESTORE, RestoreRequest, restoreRequestOf, restoreRequestParams } from "../redis/restore/request";
import type { BlobStore } from "../storage/blob-store";
import { verifiedRead } from "../storage/integrity";
import type { Clock } from "../config";
import { backupFiles } from "./backups";
import { BackupUnavailableError, InstanceBusyError } from "./errors";
import type { JobContext, JobKind, JobQueue, JobSuccess, Undone } from "../queue";
import { TASK } from "./tasks";
import { attachDigests, BackupDigests, digestStoredFile } from "./digests";

/** What a finished restore reports (JobSuccess.result; the CLI prints it): src/redis/restore/run.ts. */
export type { RestoreReport };

export interface RestoreJobsOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  logger: Logger;
  /** The queue this kind's tasks go to (kicked after queueing, waited on). */
  queue: JobQueue;
  /** The address target Redis servers connect back to (this node's short-lived replication endpoint). */
  advertiseHost: string;
  /** Hosts a cluster target may announce nodes on besides the registered one (as for backups). */
  clusterHosts?: readonly string[];
  /** This node's digests still being computed after their backups' transfer (a restore waits for its own). */
  digests?: BackupDigests;
}

export class RestoreJobs implements JobKind {
  readonly taskTypes = [TASK.restore];
  readonly pool = "redis" as const;

  constructor(private readonly o: RestoreJobsOptions) {}

  /** Checks, locks the backup and queues the restore of `backup` into `target`. */
  async enqueue(backup: Backup, target: Instance, request: RestoreRequest = DEFAULT_RESTORE): Promise<{ taskId: number }> {
    if (backup.status === 3 || backup.locked) throw new BackupUnavailableError("locked", `backup ${backup.backupId} is locked by another operation`, backup.backupId);
    if (backup.status !== 2 && backup.status !== 4) {
      throw new BackupUnavailableError("status", `backup ${backup.backupId} has Status ${backup.status}; only a kept backup (2) or an exported one (4) can be restored`, backup.backupId);
    }
    if (backup.files.length === 0) throw new BackupUnavailableError("status", `backup ${backup.backupId} has no stored file (a catalogue-only record)`, backup.backupId);
    checkRestoreRequest(request, { backupId: backup.backupId, shards: backup.files.length });
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
        backupId: backup.backupId,
        params: { sourceInstanceId: backup.instanceId, ...restoreRequestParams(request) },
      });
    });
    this.o.queue.kick();
    return { taskId };
  }

  private async parts(task: Task): Promise<{ backup: Backup; target: Instance }> {
    const backup = task.backupId ? await this.o.catalog.backup(task.backupId) : undefined;
    if (!backup || (backup.status !== 2 && backup.status !== 4) || backup.files.length === 0) throw new Error(`backup ${task.backupId} can no longer be restored`);
    const target = await this.o.catalog.instance(task.instanceId);
    if (!target?.redisUrl || target.deletedAt !== undefined) throw new Error(`instance ${task.instanceId} was removed or has no Redis server registered`);
    // Encrypted backups' files carry the data key they are read with.
    return { backup: { ...backup, files: backupFiles(backup) }, target };
  }

  private open(file: StoredFile): Promise<Readable> {
    return verifiedRead(this.o.store, file, { decompress: true });
  }

  /** Shows the chosen path while the task runs (DescribeTaskInfo); the final message replaces it. */
  private async announce(ctx: JobContext, text: string): Promise<void> {
    await this.o.catalog.updateTask(ctx.task.taskId, { message: text }).catch(() => undefined);
  }

  async run(ctx: JobContext): Promise<JobSuccess> {
    const startedAt = Date.now();
    const { backup, target } = await this.parts(ctx.task);
    const label = `into ${target.instanceId}`;
    const report = await runRestore({
      // A Sentinel URL is resolved to the current master at every restore.
      target: await resolveTarget(target.redisUrl!, this.o.clusterHosts),
      request: restoreRequestOf(ctx.task.params),
      sources: backup.files.map((f) => ({ shard: f.shard, bytes: f.bytes, name: `backup file ${f.key}`, open: () => this.open(f) })),
      advertiseHost: this.o.advertiseHost,
      clusterHosts: this.o.clusterHosts,
      signal: ctx.signal,
      startedAt,
      progress: (percent) => ctx.progress(percent),
      onBytes: (done, total) => ctx.local?.onProgress?.(done, total, label),
      saveState: (state) => ctx.saveState({ ...state }),
      announce: (text) => this.announce(ctx, text),
      onFallback: (err) => this.o.logger.info({ taskId: ctx.task.taskId, err }, "replication refused by the restore target; restoring by commands"),
      recordedDigest: (shard) => this.recordedDigest(backup.backupId, backup.files.find((f) => f.shard === shard)!),
      computedDigest: async (d) => {
        await attachDigests(this.o.catalog, backup.backupId, new Map([[d.shard, { digest: d.digest, keys: d.keys }]]));
      },
    });
    if (report.verification.outcome === "different") throw new Error(report.message);
    return { message: report.message, result: report, commit: (tx) => tx.updateBackup(backup.backupId, { locked: 0 }) };
  }

  /** The backup's recorded digest of `file`, after this node's digest of it still being computed, if any. */
  private async recordedDigest(backupId: string, file: StoredFile): Promise<string | undefined> {
    if (file.digest) return file.digest;
    const settled = await this.o.digests?.settled(backupId);
    if (settled) return settled.find((f) => f.shard === file.shard)?.digest;
    return (await this.o.catalog.backup(backupId))?.files.find((f) => f.shard === file.shard)?.digest;
  }

  // ---------------------------------------------------------------------------------------- recovery

  /** What a failed or interrupted run left on the target, put back (src/redis/restore/run.ts, recoverTarget). */
  async undo(task: Task, why: "failed" | "interrupted"): Promise<Undone> {
    const state = (task.state ?? {}) as RestoreState;
    if (!needsRecovery(state, why)) return interruptedNote(state, why);
    const target = await this.o.catalog.instance(task.instanceId);
    if (!target?.redisUrl) return { ...interruptedNote(state, why), note: "the target instance is no longer registered, so it was not checked" };
    return recoverTarget(state, why, {
      redisUrl: target.redisUrl, clusterHosts: this.o.clusterHosts,
      digest: async () => {
        const backup = task.backupId ? await this.o.catalog.backup(task.backupId) : undefined;
        return backup?.files[0] ? this.digestForRecovery(backup.backupId, backupFiles(backup)[0]!) : undefined;
      },
    });
  }

  /**
   * The digest an interrupted restore's target is checked against: the recorded one (after this node's pending
   * digest of the backup, if any), else computed from the stored file now and attached to the backup.
   */
  private async digestForRecovery(backupId: string, file: StoredFile): Promise<string | undefined> {
    const recorded = await this.recordedDigest(backupId, file);
    if (recorded) return recorded;
    const computed = await digestStoredFile(this.o.store, file);
    if (computed.digest) await attachDigests(this.o.catalog, backupId, new Map([[file.shard, computed]])).catch(() => undefined);
    return computed.digest;
  }

  async failed(tx: CatalogTx, task: Task): Promise<void> {
    if (task.backupId) await tx.updateBackup(task.backupId, { locked: 0 });
  }

  async recovered(tx: CatalogTx, task: Task): Promise<void> {
    if (task.backupId) await tx.updateBackup(task.backupId, { locked: 0 });
  }
}
