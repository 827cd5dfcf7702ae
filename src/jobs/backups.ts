// Backups as jobs (tasks 012 manual, 017 automatic). Asking for one records the backup (Status 1) and a queued
// task together, unless the instance already has a backup task in progress — that task is the instance's lock,
// in the catalogue, for every node and process. A node's runner then claims the task and streams each shard
// into blob storage; the backup becomes Status 2 in the same transaction that marks the task succeeded. A failed
// or interrupted attempt leaves no file and no listed backup (undo + failed below).
//
// Retirement (tasks 014 delete, 046 expire) ends a backup's life: one conditional write moves it to -2 or -1
// (so two nodes never both retire it) and records a task holding the list of files; then the files go. If the
// node dies in between, recovery finishes removing them.
import crypto from "node:crypto";
import type { Catalog, CatalogTx } from "../catalog/catalog";
import type { Backup, Instance, StoredFile, Task } from "../catalog/types";
import type { Logger } from "../log";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { captureRaw, captureRdb, CaptureError, commandWithin, connectForCapture, discoverShards } from "../redis/capture/capture";
import { RdbInspector, type RdbInfo } from "../redis/rdb/header";
import { RdbParseError } from "../redis/rdb/errors";
import type { SpoolDir } from "../storage/spool";
import { formatBytes } from "../units";
import type { RedisEndpoint, RespConnection } from "../redis/client/resp";
import { fileTypeFor, instanceTypeFor, serverOfType } from "../protocol/instance-types";
import { masterSwitch, resolveInstance, ResolvedInstance } from "../redis/client/sentinel";
import { parseRedisUrl } from "../redis/client/url";
import { chooseSource } from "../redis/capture/source";
import type { SnapshotSource } from "../records";
import type { BlobCommitResult, BlobStore } from "../storage/blob-store";
import { KeyProvider, KeyUnavailableError, WrappedKey } from "../storage/keys/provider";
import type { RecordedBlob } from "../storage/integrity";
import type { Clock } from "../config";
import type { JobContext, JobKind, JobQueue, JobSuccess, Undone } from "../queue";
import { BackupUnavailableError, InstanceBusyError } from "./errors";
import { DiskSpaceError, SpaceGuard } from "./disk-space";
import { BackupDigests, DIGEST_PENDING } from "./digests";
import { TASK } from "./tasks";
import { testFlag, testHook } from "../test-hooks";

export const DAY_MS = 86_400_000;

export interface StartBackupOptions {
  remark?: string;
  /** Retention in days; 0 or absent = the instance's own (default 7). */
  storageDays?: number;
  automatic?: boolean;
}

export interface BackupJobsOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  logger: Logger;
  /** The queue this kind's tasks go to (kicked after queueing, waited on). */
  queue: JobQueue;
  /** Stall timeout of a capture. */
  captureTimeoutMs?: number;
  /** Hosts a cluster may announce its nodes on besides the registered one (never sent credentials otherwise). */
  clusterHosts?: readonly string[];
  /** Computes each backup's data-set digest after its transfer (absent: none; `--capture-digest off`). */
  digests?: BackupDigests;
  /** The free space a backup needs (absent: not checked). */
  space?: SpaceGuard;
  /** Master keys for encrypted backups (absent: no keyring configured). */
  keys?: KeyProvider;
  /** Encrypt the backups of instances that do not choose for themselves (--encrypt-backups). */
  encryptByDefault?: boolean;
  /**
   * Where captures spool the raw snapshot before storing it (--capture-mode spool, the default; docs/storage.md
   * "The spool"); absent: direct, everything on the socket's path.
   */
  spool?: SpoolDir;
}

/** A spool file is AES-256-GCM: one key and IV encrypt at most 2^39 - 256 bits; bigger snapshots go direct. */
const SPOOL_MAX_BYTES = 60 * 1024 ** 3;

/** What storing one shard took: the result, and for the task's message how (spool timings or why not). */
interface StoredShard {
  committed: BlobCommitResult;
  rdb: RdbInfo;
  spooled?: { linkMs: number; storeMs: number; bytes: number };
  note?: string;
}

export function blobKey(backupId: string, shard: number): string {
  return `backups/${backupId}/shard-${shard}.rdb.gz`;
}

/** Where the plain (downloadable) RDB file of an export of one shard lives; removed with the backup. */
export function exportKey(backupId: string, shard: number): string {
  return `exports/${backupId}/shard-${shard}.rdb`;
}

/** The data key an encrypted backup's files are encrypted with (undefined for a plain backup or a fixture). */
export function backupKeyOf(b: Pick<Backup, "kmsKeyId" | "wrappedKey">): WrappedKey | undefined {
  return b.kmsKeyId && b.wrappedKey ? { keyId: b.kmsKeyId, wrappedKey: b.wrappedKey } : undefined;
}

/** A backup's stored files as readers need them: with the backup's data key when it is encrypted. */
export function backupFiles(b: Backup): Array<StoredFile & RecordedBlob> {
  const encryption = backupKeyOf(b);
  return encryption ? b.files.map((f) => ({ ...f, encryption })) : b.files;
}

/** Whether an instance's new backups are encrypted: its own choice, else the server's. */
export function encryptsBackups(instance: Instance, byDefault: boolean | undefined): boolean {
  return instance.encryptBackups ?? byDefault === true;
}

/** Every blob of a backup, recorded or not (a crash can leave a committed shard the record does not list yet). */
export async function removeBackupBlobs(store: BlobStore, backupId: string, known: readonly StoredFile[] = []): Promise<void> {
  const keys = new Set<string>();
  for (const f of known) {
    keys.add(f.key);
    keys.add(exportKey(backupId, f.shard));
  }
  for (const prefix of [`backups/${backupId}/`, `exports/${backupId}/`]) {
    for await (const blob of store.list(prefix)) keys.add(blob.key);
  }
  for (const key of keys) await store.remove(key);
  // A dead writer's unfinished upload (an S3 multipart upload, a local temp file) goes too.
  for (const prefix of [`backups/${backupId}/`, `exports/${backupId}/`]) await store.abortUploads(prefix);
}

/** "replica 10.0.0.5:6380 (offset 1234), master 10.0.0.6:6379 (offset 99)" */
export function describeSources(sources: readonly SnapshotSource[]): string {
  return sources.map((s) => `${s.role} ${s.node}${s.offset !== undefined ? ` (offset ${s.offset})` : ""}`).join(", ");
}

export interface SpoolCaptureOptions {
  endpoint: RedisEndpoint;
  spool: SpoolDir;
  store: BlobStore;
  backupId: string;
  shard: number;
  /** The blob the snapshot is stored as. */
  key: string;
  encryption?: WrappedKey;
  timeoutMs?: number;
  signal?: AbortSignal;
  connection?: RespConnection;
  onProgress?: (bytes: number) => void;
}

/**
 * The spool: the socket's bytes go to a local file as fast as the disk takes them (only counted and framed on
 * the way), the replication link is closed, and only then are they checked (RDB header, CRC-64), compressed,
 * hashed, encrypted and stored. The spool file is removed whatever happens. `linkMs`: the socket's time (connect
 * until the link closed); `storeMs`: from then until the blob was committed.
 */
export async function captureViaSpool(o: SpoolCaptureOptions): Promise<{ committed: BlobCommitResult; rdb: RdbInfo; bytes: number; linkMs: number; storeMs: number }> {
  const ep = o.endpoint;
  const file = o.spool.create(o.backupId, o.shard, { encrypt: o.encryption !== undefined });
  try {
    let first = true;
    const raw = await captureRaw(ep, file.writer(), {
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}), ...(o.signal ? { signal: o.signal } : {}), ...(o.connection ? { connection: o.connection } : {}),
      onProgress: (bytes) => {
        if (first) {
          first = false;
          testHook("backup-spooling");
        }
        o.onProgress?.(bytes);
      },
    });
    testHook("backup-spooled");
    const storing = performance.now();
    const inspector = new RdbInspector();
    let seen = false;
    const check = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        try {
          inspector.update(chunk);
        } catch (err) {
          return cb(err as Error);
        }
        if (!seen) {
          seen = true;
          testHook("backup-spool-storing");
        }
        cb(null, chunk);
      },
    });
    const writer = o.store.createWriter(o.key, { compress: true, ...(o.encryption ? { encryption: o.encryption } : {}) });
    let rdb: RdbInfo;
    let committed: BlobCommitResult;
    try {
      await pipeline(file.reader(), check, writer, ...(o.signal ? [{ signal: o.signal }] : []));
      try {
        rdb = inspector.end();
      } catch (err) {
        throw corrupt(ep, err);
      }
      committed = await writer.commit();
    } catch (err) {
      await writer.abort();
      if (err instanceof CaptureError) throw err;
      if (err instanceof RdbParseError) throw corrupt(ep, err);
      if ((err as Error).name === "AbortError") throw new CaptureError("ABORTED", "the backup was cancelled while its spooled snapshot was being stored");
      throw new CaptureError("STORAGE", `storing the spooled snapshot failed: ${(err as Error).message}`);
    }
    return { committed, rdb, bytes: raw.bytes, linkMs: raw.linkMs, storeMs: performance.now() - storing };
  } finally {
    file.remove();
  }
}

function corrupt(ep: RedisEndpoint, err: unknown): CaptureError {
  return new CaptureError("CORRUPT", `corrupt snapshot from ${ep.host}:${ep.port}: ${(err as Error).message}`);
}

/** "spooled 38.8 MB in 0.9 s, link closed; stored in 1.6 s" (summed over the spooled shards). */
export function describeSpool(s: { bytes: number; linkMs: number; storeMs: number; shards: number }, shards: number): string {
  const sec = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const which = s.shards === shards ? "" : ` (${s.shards} of ${shards} shards)`;
  return `spooled ${formatBytes(s.bytes)} in ${sec(s.linkMs)}${which}, link closed; stored in ${sec(s.storeMs)}`;
}

/** A backup's shard sizes, as the next backup's task carries them (params.estimate) for the spool's decision. */
interface SizeEstimate {
  backupId: string;
  /** Plain bytes by shard number. */
  shards: Record<number, number>;
}

function estimateOf(b: Backup): SizeEstimate {
  return { backupId: b.backupId, shards: Object.fromEntries(b.files.map((f) => [f.shard, f.bytes])) };
}

function isEstimate(v: unknown): v is SizeEstimate {
  return typeof v === "object" && v !== null && typeof (v as SizeEstimate).backupId === "string" && typeof (v as SizeEstimate).shards === "object";
}

/** Whether two endpoints name the same server (host and port; the credentials are the instance's either way). */
function sameNode(a: RedisEndpoint, b: RedisEndpoint): boolean {
  return a.port === b.port && a.host.toLowerCase() === b.host.toLowerCase();
}

export class BackupJobs implements JobKind {
  readonly taskTypes = [TASK.backup, TASK.autoBackup];
  readonly pool = "redis" as const;
  /** Told about each backup refused for free space (metrics); must not throw. */
  onRefused: ((instanceId: string, automatic: boolean, err: DiskSpaceError) => void) | undefined;

  constructor(private readonly o: BackupJobsOptions) {}

  /** The instance's newest kept backup (Status 2 or 4): the size the next one is expected to have. */
  private async newestKept(instanceId: string): Promise<Backup | undefined> {
    return (await this.o.catalog.listBackups({ instanceId, statuses: [2, 4], limit: 1, offset: 0 })).rows[0];
  }

  /**
   * Refuses a backup up front (DiskSpaceError) when a disk it writes to has less free space than the watermark:
   * 1.2x the instance's newest kept backup (`newest`), at least the configured floor.
   */
  private checkSpace(instance: Instance, newest: Backup | undefined, automatic: boolean): void {
    const space = this.o.space;
    if (!space) return;
    try {
      space.check(newest?.backupSize ?? 0);
    } catch (err) {
      if (err instanceof DiskSpaceError) {
        try {
          this.onRefused?.(instance.instanceId, automatic, err);
        } catch {
          // metrics must never change the answer
        }
      }
      throw err;
    }
  }

  /**
   * Records the backup (Status 1) and its queued task in one transaction and wakes the runner; throws
   * DiskSpaceError when there is not enough free space (checkSpace), InstanceBusyError when a backup of the
   * instance is already queued or running. With `window`, also marks
   * that automatic-backup window as served — unless another node already did (then returns undefined).
   */
  async enqueue(instance: Instance, opts: StartBackupOptions = {}, window?: number): Promise<{ taskId: number; backupId: string } | undefined> {
    if (!instance.redisUrl) throw new Error(`instance ${instance.instanceId} has no Redis connection registered`);
    // Read once for both: the free-space check now, the spool's decision when the task runs (carried in its params).
    const newest = this.o.space || this.o.spool ? await this.newestKept(instance.instanceId) : undefined;
    this.checkSpace(instance, newest, opts.automatic === true);
    // A failure of this instance that this node knows but could not write yet (a full disk) still holds the
    // instance's lock in the catalogue: written now, so a backup asked once space is back starts at once.
    await this.o.queue.flushPending(instance.instanceId);
    // An encrypted backup's data key is made now and recorded with it from Status 1 on, so key-rotation sees
    // (and re-wraps, or refuses to retire the key of) a backup still being taken.
    let sealed: WrappedKey | undefined;
    if (encryptsBackups(instance, this.o.encryptByDefault)) {
      if (!this.o.keys) throw new KeyUnavailableError("", `the backups of instance ${instance.instanceId} are to be encrypted, but no keyring is configured: start with --encryption-keys FILE (CRS_ENCRYPTION_KEYS)`);
      const { keyId, wrappedKey } = await this.o.keys.generateDataKey();
      sealed = { keyId, wrappedKey };
    }
    const now = this.o.clock.now();
    const days = opts.storageDays && opts.storageDays > 0 ? opts.storageDays : instance.backupStorageDays;
    const backup: Backup = {
      backupId: crypto.randomUUID(), instanceId: instance.instanceId, startTime: now, backupType: opts.automatic ? "1" : "0", status: 1,
      remark: opts.remark ?? "", locked: 0, backupSize: 0, fullBackup: 0, instanceType: instance.instanceType,
      fileType: instance.redisVersion ? fileTypeFor(instance.redisVersion, serverOfType(instance.instanceType)) : "", expireTime: now + days * DAY_MS, encrypted: sealed !== undefined, files: [],
      ...(sealed ? { kmsKeyId: sealed.keyId, wrappedKey: sealed.wrappedKey } : {}),
    };
    const taskId = await this.o.catalog.transaction(async (tx) => {
      const locked = await tx.lockInstance(instance.instanceId);
      if (!locked || locked.deletedAt !== undefined) throw new InstanceBusyError(instance.instanceId, `instance ${instance.instanceId} was removed`);
      if (window !== undefined && locked.lastAutoWindow >= window) return undefined; // another node served it
      if ((await tx.activeTasks(instance.instanceId, this.taskTypes)).length) throw new InstanceBusyError(instance.instanceId, `instance ${instance.instanceId} already has a backup in progress`);
      await tx.insertBackup(backup);
      if (window !== undefined) await tx.updateInstance(instance.instanceId, { lastAutoWindow: window });
      return tx.insertTask({
        instanceId: instance.instanceId, accountId: instance.accountId, taskType: opts.automatic ? TASK.autoBackup : TASK.backup,
        status: "preparing", progress: 0, startTime: now, message: "", backupId: backup.backupId,
        ...(newest ? { params: { estimate: estimateOf(newest) } } : {}),
      });
    });
    if (taskId === undefined) return undefined;
    this.o.queue.kick();
    return { taskId, backupId: backup.backupId };
  }

  async run(ctx: JobContext): Promise<JobSuccess> {
    const { catalog } = this.o;
    const task = ctx.task;
    const backup = task.backupId ? await catalog.backup(task.backupId) : undefined;
    if (!backup || backup.status !== 1) throw new Error(`backup ${task.backupId} is no longer waiting to be taken`);
    const instance = await catalog.instance(task.instanceId);
    if (!instance?.redisUrl || instance.deletedAt !== undefined) throw new Error(`instance ${task.instanceId} was removed or has no Redis server registered`);
    const timeoutMs = this.o.captureTimeoutMs ?? 10_000;
    // A Sentinel URL is resolved to the current master at every backup: a failover between two backups is followed.
    const resolved = await resolveInstance(parseRedisUrl(instance.redisUrl), { timeoutMs, allowedHosts: this.o.clusterHosts });
    try {
      return await this.capture(ctx, backup, instance, resolved);
    } catch (err) {
      if (err instanceof CaptureError && err.code === "FAILOVER") throw err;
      // A failover while the snapshot was taken: the backup is discarded, named for the switch (the next one follows it).
      const switched = await masterSwitch(resolved, timeoutMs);
      if (switched) throw new CaptureError("FAILOVER", `${switched}; this backup was discarded and the next one is taken from the new master (${(err as Error).message})`);
      throw err;
    }
  }

  private async capture(ctx: JobContext, backup: Backup, instance: Instance, resolved: ResolvedInstance): Promise<JobSuccess> {
    const { catalog } = this.o;
    const task = ctx.task;
    const timeoutMs = this.o.captureTimeoutMs ?? 10_000;
    const files: StoredFile[] = [];
    // Where a backup's time goes (debug log "backup phases"): what a small backup's fixed cost is made of.
    const phases = { readMs: 0, discoverMs: 0, captureMs: 0, commitMs: 0, recordMs: 0 };
    let mark = performance.now();
    const lap = (phase: keyof typeof phases): void => {
      const now = performance.now();
      phases[phase] += now - mark;
      mark = now;
    };
    lap("readMs");
    const sources: SnapshotSource[] = [];
    const notes: string[] = [];
    // One connection (connect + AUTH) serves the discovery, the first shard's INFO replication and, when that
    // shard is taken from the node discovered through (a standalone server's master), its snapshot too.
    let spare: RespConnection | undefined = await connectForCapture(resolved.endpoint, timeoutMs);
    const release = (): void => {
      spare?.close();
      spare = undefined;
    };
    const reusable = (ep: RedisEndpoint): RespConnection | undefined => (spare && !spare.socket.destroyed && sameNode(ep, resolved.endpoint) ? spare : undefined);
    const topology = await discoverShards(resolved.endpoint, timeoutMs, { allowedHosts: this.o.clusterHosts, registeredHosts: resolved.registeredHosts, connection: spare }).catch((err: unknown) => {
      release();
      throw err;
    });
    lap("discoverMs");
    let total = 0;
    const spooled = { bytes: 0, linkMs: 0, storeMs: 0, shards: 0 };
    let server: { name: "redis" | "valkey"; version: string } | undefined;
    for (const [shard, info] of topology.shards.entries()) {
      if (ctx.signal.aborted) {
        release();
        throw new CaptureError("ABORTED", "the backup was cancelled");
      }
      const chosen = await chooseSource(info, shard, instance.backupSource ?? "master", { timeoutMs, masterConnection: reusable(info.endpoint) }).catch((err: unknown) => {
        release();
        throw err;
      });
      // Handed to this shard's capture (which closes it), or closed: only the first shard can use it.
      const connection = reusable(chosen.endpoint);
      if (connection) spare = undefined;
      else release();
      if (chosen.fallback) {
        notes.push(chosen.fallback);
        this.o.logger.warn({ taskId: task.taskId, backupId: backup.backupId, shard, reason: chosen.fallback }, "backup from a replica fell back to the master");
      }
      const ep = chosen.endpoint;
      const key = blobKey(backup.backupId, shard);
      const onProgress = (bytes: number): void => ctx.local?.onProgress?.(total + bytes, undefined, `shard ${shard + 1}/${topology.masters.length}`);
      const spoolTo = this.o.spool ? await this.spoolDecision(backup, shard, ep, connection, timeoutMs, task.params?.estimate) : undefined;
      if (spoolTo?.note) notes.push(spoolTo.note);
      const stored = spoolTo?.use
        ? await this.spoolShard(ctx, backup, shard, ep, spoolTo.connection, onProgress)
        : await this.directShard(ctx, backup, shard, ep, spoolTo ? spoolTo.connection : connection, onProgress);
      lap("captureMs");
      const committed = stored.committed;
      testHook("backup-shard-committed");
      files.push({ key, bytes: committed.bytes, sha256: committed.sha256, shard, storedBytes: committed.storedBytes, ...(topology.cluster ? { slots: info.slots } : {}) });
      total += committed.bytes;
      server ??= stored.rdb.server;
      sources.push(chosen.source);
      if (stored.spooled) {
        spooled.bytes += stored.spooled.bytes;
        spooled.linkMs += stored.spooled.linkMs;
        spooled.storeMs += stored.spooled.storeMs;
        spooled.shards++;
      }
      // Recorded per shard, so a crash part-way leaves a list of what to remove; the last shard's record is the
      // outcome's own (commit below; a crash before it leaves a blob that undo finds by its backup's prefix).
      if (shard < topology.shards.length - 1) {
        await catalog.updateBackup(backup.backupId, { files, source: sources });
        ctx.progress(((shard + 1) / topology.masters.length) * 99);
      }
      lap("recordMs");
    }
    const switched = await masterSwitch(resolved, timeoutMs);
    if (switched) throw new CaptureError("FAILOVER", `${switched}; this backup was discarded and the next one is taken from the new master`);
    const end = this.o.clock.now();
    this.o.logger.debug({ taskId: task.taskId, instanceId: backup.instanceId, backupId: backup.backupId, ...Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v * 10) / 10])) }, "backup phases");
    const version = server?.version ?? "0.0.0";
    const instanceType = instanceTypeFor(version, topology.cluster, server?.name);
    const finished: Backup = { ...backup, status: 2, endTime: end, backupSize: total, fileType: fileTypeFor(version, server?.name), instanceType, files, source: sources };
    const digests = this.o.digests;
    const from = instance.backupSource || resolved.sentinel ? `; from ${describeSources(sources)}` : "";
    const how = spooled.shards ? `; ${describeSpool(spooled, files.length)}` : "";
    const message = `${total} bytes in ${files.length} shard(s)${from}${how}${notes.length ? `; ${notes.join("; ")}` : ""}${digests ? `; ${DIGEST_PENDING}` : ""}`;
    const transferredAt = Date.now();
    return {
      message,
      result: finished,
      committed: digests && (() => void digests.schedule(backup.backupId, files, { taskId: task.taskId, instanceId: backup.instanceId, message, transferredAt, plain: !backupKeyOf(backup), committed: true })),
      commit: async (tx) => {
        await tx.updateBackup(backup.backupId, { status: 2, endTime: end, backupSize: total, fileType: finished.fileType, instanceType, files, source: sources });
        // What the instance is, as this backup found it: written when it changed (one backup task per instance at
        // a time, so the row read when the task started is the latest these fields can be).
        const shardNum = topology.masters.length;
        if (instance.redisVersion !== version || instance.instanceType !== instanceType || instance.shardNum !== shardNum) {
          await tx.updateInstance(backup.instanceId, { redisVersion: version, instanceType, shardNum });
        }
      },
    };
  }

  async undo(task: Task): Promise<Undone> {
    if (!task.backupId) return {};
    // A spool file of this backup (a capture interrupted while spooling or storing) is never kept.
    this.o.spool?.removeBackup(task.backupId);
    const b = await this.o.catalog.backup(task.backupId);
    // Only an unfinished backup's files: a backup that reached Status 2 is kept.
    if (b && b.status !== 1) return {};
    await removeBackupBlobs(this.o.store, task.backupId, b?.files ?? []);
    return {};
  }

  /** Removes the spool files no capture of this process is using (start-up, when no backup task is running). */
  removeStaleSpool(): number {
    return this.o.spool?.removeStale() ?? 0;
  }

  /**
   * Whether one shard is spooled: only when the snapshot fits on the spool's disk (estimated from this shard's
   * file in the instance's newest kept backup, else from the server's INFO used_memory, with 20% to spare).
   * The connection the capture will use is opened here (the INFO needs one anyway) and handed over.
   */
  private async spoolDecision(backup: Backup, shard: number, ep: RedisEndpoint, given: RespConnection | undefined, timeoutMs: number, carried: unknown): Promise<{ use: boolean; note?: string; connection: RespConnection }> {
    const spool = this.o.spool!;
    const connection = given ?? (await connectForCapture(ep, timeoutMs));
    try {
      // The newest kept backup as enqueue() read it (a task queued by an older build has none: read it now).
      const known = isEstimate(carried) ? carried : await this.newestKept(backup.instanceId).then((b) => (b ? estimateOf(b) : undefined));
      let estimate = known?.shards[shard];
      let basis = `its size in backup ${known?.backupId ?? ""}`;
      if (estimate === undefined) {
        const info = await commandWithin(connection, ep, timeoutMs, "INFO", "memory");
        const m = /^used_memory:(\d+)/m.exec(Buffer.isBuffer(info) ? info.toString("latin1") : String(info));
        estimate = m ? Number(m[1]) : 0;
        basis = "the server's used_memory";
      }
      const needed = Math.ceil(estimate * 1.2);
      const free = testFlag("spool-disk-full") ? 0 : spool.free();
      const shardName = `shard ${shard + 1}`;
      if (needed > SPOOL_MAX_BYTES) {
        return { use: false, connection, note: `${shardName} streamed directly to storage, not spooled: its snapshot is estimated at ${formatBytes(estimate)} (${basis}), beyond the spool's ${formatBytes(SPOOL_MAX_BYTES)}` };
      }
      if (free !== undefined && free < needed) {
        this.o.logger.warn({ backupId: backup.backupId, shard, free, needed, spool: spool.dir }, "the spool's disk is too full: the capture streams directly to storage");
        return { use: false, connection, note: `${shardName} streamed directly to storage, not spooled: the spool ${spool.dir} has ${formatBytes(free)} free, less than 1.2x the snapshot's estimated ${formatBytes(estimate)} (${basis})` };
      }
      return { use: true, connection };
    } catch (err) {
      connection.close();
      throw err instanceof CaptureError ? err : new CaptureError("CONNECT", `reading INFO memory of ${ep.host}:${ep.port} failed: ${(err as Error).message}`);
    }
  }

  /** Today's path: the socket's bytes go through the RDB check, gzip, SHA-256 (and AES-GCM) into the store. */
  private async directShard(ctx: JobContext, backup: Backup, shard: number, ep: RedisEndpoint, connection: RespConnection | undefined, onProgress: (bytes: number) => void): Promise<StoredShard> {
    const encryption = backupKeyOf(backup);
    const writer = this.o.store.createWriter(blobKey(backup.backupId, shard), { compress: true, ...(encryption ? { encryption } : {}) });
    try {
      const result = await captureRdb(ep, writer, { timeoutMs: this.o.captureTimeoutMs, signal: ctx.signal, ...(connection ? { connection } : {}), onProgress });
      return { committed: await writer.commit(), rdb: result.rdb };
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  /**
   * The spool: the socket's bytes go to a local file as fast as the disk takes them (only counted and framed on
   * the way), the replication link is closed, and only then are they checked (RDB header, CRC-64), compressed,
   * hashed, encrypted and stored. The spool file is removed whatever happens.
   */
  private async spoolShard(ctx: JobContext, backup: Backup, shard: number, ep: RedisEndpoint, connection: RespConnection, onProgress: (bytes: number) => void): Promise<StoredShard> {
    const encryption = backupKeyOf(backup);
    const r = await captureViaSpool({
      endpoint: ep, spool: this.o.spool!, store: this.o.store, backupId: backup.backupId, shard, key: blobKey(backup.backupId, shard),
      ...(encryption ? { encryption } : {}), timeoutMs: this.o.captureTimeoutMs, signal: ctx.signal, connection, onProgress,
    });
    return { committed: r.committed, rdb: r.rdb, spooled: { linkMs: r.linkMs, storeMs: r.storeMs, bytes: r.bytes } };
  }

  async failed(tx: CatalogTx, task: Task): Promise<void> {
    if (!task.backupId) return;
    const b = await tx.backup(task.backupId);
    if (b?.status === 1) await tx.deleteBackupRecord(task.backupId);
  }

  /**
   * Ends a backup's life: Status -1 (expired, task 046) or -2 (deleted, task 014), files removed, the record kept
   * for the audit trail. A locked backup (export, restore) or one still being taken is refused; one already
   * retired (by another node) is left as is.
   */
  async retire(given: Backup, status: -1 | -2, accountId: string): Promise<boolean> {
    const { catalog } = this.o;
    const now = this.o.clock.now();
    const task = await catalog.transaction(async (tx) => {
      const b = await tx.backup(given.backupId);
      if (!b || b.status === status || b.status === -2) return undefined;
      if (b.locked || b.status === 3) throw new BackupUnavailableError("locked", `backup ${b.backupId} is locked by an export or a restore`, b.backupId);
      if (b.status === 1) throw new BackupUnavailableError("status", `backup ${b.backupId} is still being taken (Status 1)`, b.backupId);
      // An expired backup can still be deleted (its record then carries the deletion); files are gone already.
      const from = status === -2 ? ([2, 4, -1] as const) : ([2, 4] as const);
      if (!(await tx.transitionBackup(b.backupId, from, status, { files: [], ...(status === -2 ? { deletedAt: now } : {}) }))) return undefined;
      // Claimed at insert: the files are removed here, now; if this node dies first, RetireJobs.undo finishes.
      const fields: Omit<Task, "taskId"> = {
        instanceId: b.instanceId, accountId, taskType: status === -1 ? TASK.removeBackupFile : TASK.deleteBackup, progress: 0,
        startTime: now, message: "", backupId: b.backupId, params: { files: b.files }, ...this.o.queue.claimedAtInsert(now),
      };
      return { ...fields, taskId: await tx.insertTask(fields) };
    });
    if (task === undefined) return false;
    await this.o.queue.finishInline(task, () => removeBackupBlobs(this.o.store, given.backupId, given.files));
    return true;
  }

  /** Removes an instance: its backups become Status -2 with their files gone; records stay for the audit trail. */
  async removeInstance(instance: Instance): Promise<number> {
    const backups = await this.o.catalog.backupsOfInstance(instance.instanceId);
    const active = await this.o.catalog.activeTasks(instance.instanceId, [...this.taskTypes, TASK.restore, TASK.exportBackup]);
    const busy = backups.find((b) => (b.status === 1 && !b.fixture) || b.status === 3 || (b.locked && !b.fixture));
    if (active.length || busy) throw new InstanceBusyError(instance.instanceId, `instance ${instance.instanceId} has ${busy ? `backup ${busy.backupId}` : `task ${active[0]!.taskId}`} in progress or locked`);
    let n = 0;
    for (const b of backups) {
      if (b.status === -2) continue;
      // Fixture records are static data: those that could not be retired (in progress, locked) are left as given.
      if (b.fixture && (b.locked || b.status === 1 || b.status === 3)) continue;
      if (await this.retire(b, -2, instance.accountId)) n++;
    }
    await this.o.catalog.updateInstance(instance.instanceId, { deletedAt: this.o.clock.now() });
    return n;
  }
}

/** Retirement tasks (014, 046) are run where they are asked for; this kind only finishes those whose node died. */
export class RetireJobs implements JobKind {
  readonly taskTypes = [TASK.deleteBackup, TASK.removeBackupFile];
  readonly pool = "files" as const;

  constructor(private readonly store: BlobStore) {}

  async run(ctx: JobContext): Promise<JobSuccess> {
    await this.undo(ctx.task);
    return {};
  }

  /** The backup is already -1/-2 (the transition came first): removing its files finishes the job. */
  async undo(task: Task): Promise<Undone> {
    if (task.backupId) await removeBackupBlobs(this.store, task.backupId, (task.params?.files as StoredFile[] | undefined) ?? []);
    return { outcome: "succeed", note: "its files were removed by the recovery" };
  }

  async failed(): Promise<void> {
    // Nothing to roll back: the status change is the retirement itself.
  }
}
