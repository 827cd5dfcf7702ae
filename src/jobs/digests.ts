// The data-set digests of backups, computed after their transfer. A backup succeeds as soon as its files are
// stored; its digest (the `DEBUG DIGEST` the source would report, which restores compare against) is computed
// afterwards from the stored files, one backup at a time, in a worker process at the lowest CPU priority
// (redis/capture/digest.ts), and attached to the backup's files when ready; the backup task's message then says
// what happened. Nothing here can slow a capture's socket, which is what the master's copy-on-write memory pays
// for.
//
// The attachment is one conditional write (the backup's status and lock as they were read), so a backup retired,
// locked or exported meanwhile by any node is never overwritten: the write is retried against what is there now,
// and a retired backup (files gone) simply gets no digest. A restore on this node that needs a digest still
// pending waits for it (`settled`); elsewhere, or after this node died before attaching it, a restore computes
// the expected digest from the file it reads anyway.
import type { Catalog } from "../catalog/catalog";
import type { Backup, StoredFile } from "../catalog/types";
import type { Logger } from "../log";
import { CapturedDigest, digestCompressedRdb } from "../redis/capture/digest";
import type { BlobStore } from "../storage/blob-store";
import { BlobIntegrityError, RecordedBlob } from "../storage/integrity";

export interface BackupDigestsOptions {
  catalog: Catalog;
  store: BlobStore;
  logger: Logger;
}

interface Job {
  backupId: string;
  files: StoredFile[];
  taskId?: number;
  /** The backup's instance (named in the log lines, as every task line is). */
  instanceId?: string;
  /** The task's message at success, extended with the digest's outcome. */
  message: string;
  /** When the transfer ended (Date.now()). */
  transferredAt: number;
  /** The backup is known to be plain (not encrypted): its files are read without reading its record first. */
  plain: boolean;
  /** `files` are the backup's as its task just committed them (Status 2, unlocked): attached without a read first. */
  committed: boolean;
  done: Promise<StoredFile[]>;
  resolve(files: StoredFile[]): void;
}

/** What a pending digest says in the backup task's message until it is attached. */
export const DIGEST_PENDING = "its data-set digest is computed from the stored file next, at low priority";

const KEPT_STATUSES = new Set([2, 3, 4]);
const ATTACH_ATTEMPTS = 5;

export class BackupDigests {
  private readonly queue: Job[] = [];
  private readonly jobs = new Map<string, Job>();
  private running: Promise<void> | undefined;
  private readonly abort = new AbortController();
  /** Awaited before each digest starts: tests hold digests back to prove what waits for them. */
  hold: ((backupId: string) => Promise<void>) | undefined;

  constructor(private readonly o: BackupDigestsOptions) {}

  /**
   * Queues the digests of a committed backup's files. `message` is the task's message at success (the
   * outcome is appended). The promise gives the files as attached (with `digest`), or as they were if none.
   */
  schedule(backupId: string, files: readonly StoredFile[], opts: { taskId?: number; instanceId?: string; message?: string; transferredAt?: number; plain?: boolean; committed?: boolean } = {}): Promise<StoredFile[]> {
    const existing = this.jobs.get(backupId);
    if (existing) return existing.done;
    let resolve!: (files: StoredFile[]) => void;
    const done = new Promise<StoredFile[]>((r) => (resolve = r));
    const job: Job = { backupId, files: [...files], taskId: opts.taskId, instanceId: opts.instanceId, message: opts.message ?? "", transferredAt: opts.transferredAt ?? Date.now(), plain: opts.plain === true, committed: opts.committed === true, done, resolve };
    if (this.abort.signal.aborted) {
      resolve(job.files);
      return done;
    }
    this.jobs.set(backupId, job);
    this.queue.push(job);
    this.running ??= this.drain().finally(() => (this.running = undefined));
    return done;
  }

  /** The files of a backup once this node's pending digest of it is attached; undefined if none is pending here. */
  settled(backupId: string): Promise<StoredFile[]> | undefined {
    return this.jobs.get(backupId)?.done;
  }

  /** How many backups wait for (or are in) a digest on this node. */
  get pending(): number {
    return this.jobs.size;
  }

  /** Stops: the digest in progress is abandoned, queued ones are dropped (their backups keep no digest). */
  async close(): Promise<void> {
    this.abort.abort();
    for (const job of this.queue.splice(0)) this.finish(job, job.files);
    await this.running;
  }

  private finish(job: Job, files: StoredFile[]): void {
    this.jobs.delete(job.backupId);
    job.resolve(files);
  }

  private async drain(): Promise<void> {
    for (let job = this.queue.shift(); job; job = this.queue.shift()) {
      let files = job.files;
      try {
        files = await this.digest(job);
      } catch (err) {
        this.o.logger.warn({ backupId: job.backupId, err }, "the backup's digest could not be attached");
      }
      this.finish(job, files);
    }
  }

  private async digest(job: Job): Promise<StoredFile[]> {
    await this.hold?.(job.backupId);
    const t0 = Date.now();
    const computed = new Map<number, CapturedDigest>();
    // An encrypted backup's files are read with its data key (decrypted here, gunzipped in the worker), read
    // from its record now: a key rotation may have re-wrapped it since the transfer.
    const b = job.plain ? undefined : await this.o.catalog.backup(job.backupId);
    const encryption = b?.kmsKeyId && b.wrappedKey ? { keyId: b.kmsKeyId, wrappedKey: b.wrappedKey } : undefined;
    for (const f of job.files) {
      if (this.abort.signal.aborted) return job.files;
      computed.set(f.shard, f.digest ? { digest: f.digest, keys: f.keys } : await digestStoredFile(this.o.store, { ...f, ...(encryption ? { encryption } : {}) }, this.abort.signal));
    }
    if (this.abort.signal.aborted) return job.files;
    const ms = Date.now() - t0;
    const missing = [...computed.values()].find((d) => d.missing)?.missing;
    const attached = await attachDigests(this.o.catalog, job.backupId, computed, job.committed ? job.files : undefined);
    const log = { backupId: job.backupId, taskId: job.taskId, instanceId: job.instanceId, ms, afterTransferMs: Date.now() - job.transferredAt };
    let note: string;
    if (!attached) {
      note = "it was retired before its data-set digest was ready, so it has none";
      this.o.logger.info(log, "backup retired before its digest was attached");
    } else if (missing) {
      note = `it has no data-set digest: ${missing}`;
      this.o.logger.warn({ ...log, reason: missing }, "backup kept without a digest");
    } else {
      const digests = attached.map((f) => f.digest).join(", ");
      note = `data-set digest ${digests} computed from the stored file in ${ms} ms, attached ${Date.now() - job.transferredAt} ms after the transfer`;
      this.o.logger.info({ ...log, digest: digests }, "backup digest attached");
    }
    if (job.taskId !== undefined) {
      const message = job.message.includes(DIGEST_PENDING) ? job.message.replace(DIGEST_PENDING, note) : [job.message, note].filter(Boolean).join("; ");
      await this.o.catalog.updateTask(job.taskId, { message }).catch((err: unknown) => this.o.logger.warn({ taskId: job.taskId, instanceId: job.instanceId, err }, "the backup task's message could not be updated"));
    }
    return attached ?? job.files;
  }

  /** Attaches digests computed elsewhere (a restore that computed one from the file); see attachDigests. */
  attach(backupId: string, computed: ReadonlyMap<number, CapturedDigest>): Promise<StoredFile[] | undefined> {
    return attachDigests(this.o.catalog, backupId, computed);
  }
}

/**
 * The digest of a stored backup file (src/redis/capture/digest.ts), read compressed from the store and checked
 * against its record. Never rejects: a failure is the `missing` reason.
 */
export function digestStoredFile(store: BlobStore, file: RecordedBlob, signal?: AbortSignal): Promise<CapturedDigest> {
  return digestCompressedRdb({
    open: () => store.openRead(file.key, { decompress: false, ...(file.encryption ? { encryption: file.encryption } : {}) }),
    check: (plain) => {
      if (plain.bytes !== file.bytes || plain.sha256 !== file.sha256) throw new BlobIntegrityError(file.key, file, plain);
    },
  }, signal);
}

/**
 * Writes digests into a backup's file list (only where a file has none) with a write conditional on the status
 * and lock read just before, so a concurrent retirement, export or restore lock on any node makes it retry
 * against the new state rather than overwrite it. Returns the files as written, or undefined when the backup is
 * no longer kept (its files are gone).
 */
export async function attachDigests(catalog: Catalog, backupId: string, computed: ReadonlyMap<number, CapturedDigest>, committed?: readonly StoredFile[]): Promise<StoredFile[] | undefined> {
  // A backup just taken (`committed`: its files as its task recorded them) is most often still as it was: Status
  // 2, unlocked, those files (only a capture, a retirement or this attachment change them; a retirement changes
  // the status too). So the first write assumes that state, and only when it fails is the record read.
  if (committed?.length) {
    const files = withDigests(committed, computed);
    if (files && (await catalog.transitionBackup(backupId, [2], 2, { files }, 0))) return files;
  }
  for (let attempt = 0; attempt < ATTACH_ATTEMPTS; attempt++) {
    const b: Backup | undefined = await catalog.backup(backupId);
    if (!b || !KEPT_STATUSES.has(b.status) || !b.files.length) return undefined;
    const files = withDigests(b.files, computed);
    if (!files) return b.files;
    if (await catalog.transitionBackup(backupId, [b.status], b.status, { files }, b.locked)) return files;
  }
  throw new Error(`backup ${backupId} changed under each of ${ATTACH_ATTEMPTS} attempts to attach its digest`);
}

/** The files with the computed digests where they have none; undefined when that changes nothing. */
function withDigests(given: readonly StoredFile[], computed: ReadonlyMap<number, CapturedDigest>): StoredFile[] | undefined {
  let changed = false;
  const files = given.map((f) => {
    const d = computed.get(f.shard);
    if (!d || f.digest || (!d.digest && d.keys === undefined)) return f;
    changed = true;
    return { ...f, ...(d.digest ? { digest: d.digest } : {}), ...(d.keys !== undefined ? { keys: d.keys } : {}) };
  });
  return changed ? files : undefined;
}
