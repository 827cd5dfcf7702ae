// Restores as jobs (task 010): the backup is locked and the task queued together — refused while another restore
// into the same instance is queued or running, the catalogue being the one place that knows.
//
// Two paths, chosen by the node that runs the task (redis/restore/plan.ts) and named in the task's message:
//  - replication (redis/restore/replication.ts): the target loads the RDB natively through the replication protocol; the
//    fastest, and its data set is replaced as a whole. Taken when the mode allows it, the backup has one shard,
//    no keys are selected (filters, keep-existing), and the target is a standalone master that loads the RDB's
//    version. In auto mode a target that refuses it before anything changed (REPLICAOF renamed or denied,
//    INFO refused) gets the command path instead.
//  - commands (redis/restore/commands.ts): every key rebuilt by commands (RESTORE or plain writes), into any
//    Redis, Valkey or Redis Cluster; keys are merged into what the target holds. Every cluster backup (all of its
//    shards' files as sources), cluster targets, targets too old for the RDB, and filtered restores.
//
// After the restore the target is compared with the backup (redis/restore/verify.ts): DEBUG DIGEST where a
// standalone target received the whole backup, key by key otherwise. A difference fails the task: the target
// does not hold what the backup holds. A target refusing DEBUG is "not verified".
//
// Recovery: the replication path records our replication endpoint (and a target setting it changes for the
// load) in the task before touching the target. If the node dies, the recovering node makes the target a
// master again if it still follows the dead endpoint, puts the setting back, and reports what the target holds.
// An interrupted command restore leaves the keys written so far: nothing to switch back, the note says so.
import type { Catalog, CatalogTx } from "../catalog/catalog";
import type { Backup, Instance, StoredFile, Task } from "../catalog/types";
import type { Logger } from "../log";
import { RdbReader } from "../redis/rdb/reader";
import type { RedisEndpoint } from "../redis/client/resp";
import { resolveInstance } from "../redis/client/sentinel";
import { parseRedisUrl } from "../redis/client/url";
import { ConfigChange, restoreRdb, RestoreError, restoreTargetConfig } from "../redis/restore/replication";
import { restoreByCommands } from "../redis/restore/commands";
import { CommandRestoreError, describeDrops, RestoreSummary, summaryNotes } from "../redis/restore/command-summary";
import { checkClusterHosts, expectedDigestAfterLoad, isEmptyTarget, planRestore, RdbHead, refusedBeforeChange, RestorePlan, scoreFormatOf, targetDigest } from "../redis/restore/plan";
import { checkRestoreRequest, DEFAULT_RESTORE, RestoreRequest, restoreRequestOf, restoreRequestParams, selective } from "../redis/restore/request";
import { probeTarget, releaseTarget } from "../redis/restore/target";
import { describeVerification, KeySelection, restoredKeyFilter, SelectedDigest, Verification, verifyRestore } from "../redis/restore/verify";
import type { BlobStore } from "../storage/blob-store";
import { verifiedRead } from "../storage/integrity";
import type { Clock } from "../config";
import { backupFiles } from "./backups";
import { BackupUnavailableError, InstanceBusyError } from "./errors";
import type { JobContext, JobKind, JobQueue, JobSuccess, Undone } from "../queue";
import { TASK } from "./tasks";
import { attachDigests, BackupDigests } from "./digests";
import { digestStoredFile } from "../redis/capture/digest";
import { formatBytes } from "../units";

/** What a finished restore reports (JobSuccess.result; the CLI prints it). */
export interface RestoreReport {
  path: "replication" | "commands";
  /** Why that path. */
  reason: string;
  /** Keys loaded (replication: all keys the target holds) or written (commands). */
  keys: number;
  skipped: number;
  failed: number;
  /** Keys not selected by the filters, and keys whose TTL had passed (not written). */
  filtered: number;
  expired: number;
  /** RDB bytes read. */
  bytes: number;
  ms: number;
  /** What was dropped as asked (--drop-field-ttls, --drop-stream-idmp), if anything. */
  dropped?: string;
  verification: Verification;
  /** The task's message. */
  message: string;
}

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

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;

/** A stream opened only when first read: a cluster backup's shards are read one after the other. */
async function* lazily(open: () => Promise<AsyncIterable<Buffer>>, tap?: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  for await (const chunk of await open()) {
    tap?.(chunk);
    yield chunk;
  }
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

  private open(file: StoredFile): Promise<AsyncIterable<Buffer>> {
    return verifiedRead(this.o.store, file, { decompress: true });
  }

  /** Shows the chosen path while the task runs (DescribeTaskInfo); the final message replaces it. */
  private async announce(ctx: JobContext, text: string): Promise<void> {
    await this.o.catalog.updateTask(ctx.task.taskId, { message: text }).catch(() => undefined);
  }

  async run(ctx: JobContext): Promise<JobSuccess> {
    const t0 = Date.now();
    const { backup, target } = await this.parts(ctx.task);
    const request = restoreRequestOf(ctx.task.params);
    // A Sentinel URL is resolved to the current master at every restore.
    const { endpoint: ep } = await resolveInstance(parseRedisUrl(target.redisUrl!), { allowedHosts: this.o.clusterHosts });
    let plan = await planRestore(request, backup.files.length, ep, () => this.open(backup.files[0]!), `backup file ${backup.files[0]!.key}`);
    await this.announce(ctx, `restoring by ${plan.path}: ${plan.reason}`);
    let report: RestoreReport | undefined;
    if (plan.path === "replication") {
      try {
        report = await this.byReplication(ctx, backup, target, ep, plan, t0);
      } catch (err) {
        if (request.mode !== "auto" || !refusedBeforeChange(err)) throw err instanceof RestoreError ? new Error(`replication: ${err.message}`, { cause: err }) : err;
        plan = { path: "commands", reason: `the target refused replication (${(err as Error).message})` };
        this.o.logger.info({ taskId: ctx.task.taskId, err }, "replication refused by the restore target; restoring by commands");
        await this.announce(ctx, `restoring by commands: ${plan.reason}`);
      }
    }
    report ??= await this.byCommands(ctx, backup, target, ep, request, plan, t0);
    if (report.verification.outcome === "different") throw new Error(report.message);
    return { message: report.message, result: report, commit: (tx) => tx.updateBackup(backup.backupId, { locked: 0 }) };
  }

  // ---------------------------------------------------------------------------------------- replication

  private async byReplication(ctx: JobContext, backup: Backup, target: Instance, ep: RedisEndpoint, plan: RestorePlan, t0: number): Promise<RestoreReport> {
    const file = backup.files[0]!;
    const label = `into ${target.instanceId}`;
    const result = await restoreRdb(ep, { size: file.bytes, open: () => verifiedRead(this.o.store, file, { decompress: true }) }, {
      advertiseHost: this.o.advertiseHost, signal: ctx.signal, loadFromSocket: true,
      beforeReplicaOf: (endpoint) => ctx.saveState({ path: "replication", replicaOf: endpoint }),
      beforeConfigChange: (change) => ctx.saveState({ config: change }),
      afterConfigRestore: () => ctx.saveState({ config: null }),
      onProgress: (sent) => {
        ctx.progress((sent / Math.max(1, file.bytes)) * 95);
        ctx.local?.onProgress?.(sent, file.bytes, label);
      },
    });
    ctx.progress(96);
    const verification = await verifyRestore({
      target: ep, cluster: false, selection: {},
      // A failure computing it (the file unreadable a second time) leaves the key-by-key comparison to report.
      expectedDigest: await this.expectedAfterReplication(backup.backupId, file, plan.head!, ep).catch(() => undefined),
      open: async () => [await this.open(file)],
    });
    const parts = [`replication: ${result.keys} keys loaded in ${result.loadMs} ms (${result.load === "socket" ? "from the socket" : "through the target's disk"}, ${formatBytes(file.bytes)}, ${seconds(Date.now() - t0)} in all)`, describeVerification(verification), ...result.warnings];
    return { path: "replication", reason: plan.reason, keys: result.keys, skipped: 0, failed: 0, filtered: 0, expired: 0, bytes: file.bytes, ms: Date.now() - t0, verification, message: parts.join("; ") };
  }

  /** The backup's recorded digest of `file`, after this node's digest of it still being computed, if any. */
  private async recordedDigest(backupId: string, file: StoredFile): Promise<string | undefined> {
    if (file.digest) return file.digest;
    const settled = await this.o.digests?.settled(backupId);
    if (settled) return settled.find((f) => f.shard === file.shard)?.digest;
    return (await this.o.catalog.backup(backupId))?.files.find((f) => f.shard === file.shard)?.digest;
  }

  /**
   * The DEBUG DIGEST the target should report after loading `file` (redis/restore/plan.ts), waiting for the
   * backup's digest when this node is still computing it after the transfer; a digest computed here in the
   * source's format, where the backup had none, is attached to the backup.
   */
  private async expectedAfterReplication(backupId: string, file: StoredFile, head: RdbHead, ep: RedisEndpoint): Promise<string | undefined> {
    const r = await expectedDigestAfterLoad(() => this.recordedDigest(backupId, file), head, ep, () => this.open(file));
    if (r?.computed && r.sourceFormat) await attachDigests(this.o.catalog, backupId, new Map([[file.shard, { digest: r.digest, keys: r.keys }]])).catch(() => undefined);
    return r?.digest;
  }

  // ---------------------------------------------------------------------------------------- commands

  private async byCommands(ctx: JobContext, backup: Backup, target: Instance, ep: RedisEndpoint, r: RestoreRequest, plan: RestorePlan, t0: number): Promise<RestoreReport> {
    // Recorded first: an interrupted run is then known to have written part of the backup, nothing to undo.
    await ctx.saveState({ path: "commands", replicaOf: null });
    const caps = await probeTarget(ep).catch((err: unknown) => {
      throw new CommandRestoreError(`cannot use restore target ${ep.host}:${ep.port}: ${(err as Error).message}`, undefined, { cause: err });
    });
    if (caps.cluster) await checkClusterHosts(ep, this.o.clusterHosts ?? []);
    const selection: KeySelection = { dbs: r.dbs, match: r.match, types: r.types };
    // The data-set digest applies to a standalone target that held nothing and receives the whole backup.
    const whole = !selective(r);
    const digest = !caps.cluster && whole && (await isEmptyTarget(ep)) ? new SelectedDigest({ scoreFormat: scoreFormatOf(caps), ignoreFieldTtls: !caps.hashFieldTtl || caps.server === "valkey" }, restoredKeyFilter(selection)) : undefined;
    const total = backup.files.reduce((n, f) => n + f.bytes, 0);
    const label = `into ${target.instanceId}`;
    const sources = backup.files.map((f) => {
      const reader = digest ? new RdbReader(digest) : undefined;
      return lazily(() => this.open(f), reader && ((chunk) => reader.feed(chunk)));
    });
    let summary: RestoreSummary;
    try {
      summary = await restoreByCommands(sources, {
        target: ep, replace: r.replace, dbs: r.dbs, match: r.match, types: r.types, signal: ctx.signal,
        dropFieldTtls: r.dropFieldTtls, dropStreamIdmp: r.dropStreamIdmp, allowedHosts: this.o.clusterHosts ?? [],
        onProgress: (s) => {
          ctx.progress((s.bytesRead / Math.max(1, total)) * 95);
          ctx.local?.onProgress?.(s.bytesRead, total, label);
        },
      });
    } catch (err) {
      const s = err instanceof CommandRestoreError ? err.summary : undefined;
      throw new Error(`commands: ${(err as Error).message}${s ? ` (${counts(s)})` : ""}; the target keeps the keys written before the failure`, { cause: err });
    }
    ctx.progress(96);
    const head = `commands${plan.reason === "asked for" ? "" : ` (${plan.reason})`}: ${counts(summary)}, ${formatBytes(summary.bytesRead)} in ${seconds(summary.ms)}${summaryNotes(summary)}`;
    const report = (verification: Verification, extra: string[] = []): RestoreReport => ({
      path: "commands", reason: plan.reason, keys: summary.keys, skipped: summary.skipped, failed: summary.failed, filtered: summary.filtered, expired: summary.expired,
      bytes: summary.bytesRead, ms: Date.now() - t0, verification, dropped: describeDrops(summary), message: [head, ...extra, describeVerification(verification)].join("; "),
    });
    if (summary.failed > 0) {
      const f = summary.failures[0];
      const first = f ? `first: ${JSON.stringify(f.key)}${f.db > 0 ? ` (db ${f.db})` : ""}: ${f.error}` : "";
      // Keys the backup holds are not on the target: the restore did not do what was asked.
      throw new Error(report({ outcome: "skipped", reason: `${summary.failed} keys failed` }, [first]).message);
    }
    if (!r.replace && summary.skipped > 0) return report({ outcome: "skipped", reason: `${summary.skipped} existing keys were kept, as asked` });
    const expected = digest?.result();
    const verification = await verifyRestore({
      target: ep, cluster: caps.cluster, selection, ignoreFieldTtls: !caps.hashFieldTtl || caps.server === "valkey", allowedHosts: this.o.clusterHosts ?? [],
      expectedDigest: expected && expected.moduleKeys === 0 ? expected.digest : undefined,
      open: async () => backup.files.map((f) => lazily(() => this.open(f))),
    });
    return report(verification);
  }

  // ---------------------------------------------------------------------------------------- recovery

  /**
   * After a failed run the restore itself already made the target a master again and put its setting back;
   * after an interrupted one the target may still follow our dead endpoint: make it a master, put the setting
   * back, then see whether it holds the backup. An interrupted command restore has nothing to switch back.
   */
  async undo(task: Task, why: "failed" | "interrupted"): Promise<Undone> {
    const st = task.state ?? {};
    const endpoint = st.path !== "commands" ? (st.replicaOf as { host: string; port: number } | undefined | null) : undefined;
    const change = (st.config ?? undefined) as ConfigChange | undefined;
    let undone: Undone = st.path === "commands" && why === "interrupted"
      ? { note: "the restore by commands stopped part-way: the target holds the keys written until then (part of the backup); run it again to complete it" }
      : {};
    if (!(why === "interrupted" && endpoint) && !change) return undone;
    const target = await this.o.catalog.instance(task.instanceId);
    if (!target?.redisUrl) return { ...undone, note: "the target instance is no longer registered, so it was not checked" };
    // The master a Sentinel names, whatever its role: an interrupted restore left it a replica of our endpoint.
    const { endpoint: ep } = await resolveInstance(parseRedisUrl(target.redisUrl), { allowedHosts: this.o.clusterHosts, checkRole: false });
    if (why === "interrupted" && endpoint) undone = await this.releaseAndCheck(task, ep, endpoint);
    if (change) {
      // restoreRdb puts it back itself, and says so in its error when it could not: this is for a crash, or
      // one more try at a target that was away then.
      const problem = await restoreTargetConfig(ep, change).then(() => undefined, (err: unknown) => `${change.parameter} could not be set back to ${change.original} (${(err as Error).message}); run CONFIG SET ${change.parameter} ${change.original} on it`);
      if (problem && why === "interrupted") undone = { ...undone, note: undone.note ? `${undone.note}; ${problem}` : problem };
    }
    return undone;
  }

  private async releaseAndCheck(task: Task, ep: RedisEndpoint, endpoint: { host: string; port: number }): Promise<Undone> {
    let released;
    try {
      released = await releaseTarget(ep, endpoint);
    } catch (err) {
      // Unreachable now: recovery is retried on a later pass rather than leaving it a replica unnoticed.
      throw new RestoreError("connect", `the restore target ${ep.host}:${ep.port} could not be reached to switch it back to master: ${(err as Error).message}`);
    }
    const what = released.released ? "the target was switched back to master (REPLICAOF NO ONE)" : `the target no longer followed our endpoint (role ${released.role}) and was left as it is`;
    const backup = task.backupId ? await this.o.catalog.backup(task.backupId) : undefined;
    const digest = backup?.files[0] ? await this.digestForRecovery(backup.backupId, backupFiles(backup)[0]!) : undefined;
    if (!digest) return { outcome: "failed", note: `${what}; it holds ${released.keys} keys, which could not be verified against the backup (no digest recorded for it, and none could be computed from its file)` };
    const actual = await targetDigest(ep).catch(() => undefined);
    if (actual === undefined) return { outcome: "failed", note: `${what}; it holds ${released.keys} keys (DEBUG DIGEST is not allowed there, so they could not be verified)` };
    return actual === digest
      ? { outcome: "succeed", note: `${what}; its data set is verified equal to the backup (digest ${digest})` }
      : { outcome: "failed", note: `${what}; its data set differs from the backup (digest ${actual}, backup ${digest}): the load did not complete` };
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

function counts(s: RestoreSummary): string {
  const parts = [`${s.keys} written`, `${s.skipped} skipped`, `${s.failed} failed`];
  if (s.filtered) parts.push(`${s.filtered} not selected`);
  if (s.expired) parts.push(`${s.expired} expired`);
  return parts.join(", ");
}
