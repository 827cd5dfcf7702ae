// The blob store interface every backup file goes through. A blob is either complete under its key or absent:
// writers stream, hash and (optionally) gzip on the way and make the blob visible only in commit(). Backends:
// local.ts (a directory, the embedded default) and s3.ts (any S3-compatible object store); url.ts picks one
// from a `--storage` URL.
import path from "node:path";
import contentDisposition from "content-disposition";
import { Writable } from "node:stream";
import type { Readable } from "node:stream";
import type { WrappedKey } from "./keys/provider";

export interface BlobCommitResult {
  /** Raw bytes written by the caller (before compression). */
  bytes: number;
  /** Hex sha256 of the raw bytes. */
  sha256: string;
  /** Bytes occupying storage (after compression). */
  storedBytes: number;
}

export interface BlobWriter extends Writable {
  /** Ends the stream if needed, makes the blob durable and visible under its key. */
  commit(): Promise<BlobCommitResult>;
  /** Discards everything written; the key is left untouched. Safe to call more than once or after errors. */
  abort(): Promise<void>;
}

/**
 * An optional operation of a backend (S3's multipart housekeeping): whether the store implements it (undefined
 * until known) and what goes undone without it. Backups never depend on one.
 */
export interface StoreCapability {
  operation: string;
  supported: boolean | undefined;
  without: string;
}

/** A committed blob as listed by {@link BlobStore.list}. */
export interface BlobInfo {
  key: string;
  /** Stored bytes (after compression). */
  size: number;
}

export interface BlobReadOptions {
  decompress?: boolean;
  /** Inclusive byte offsets of the STORED bytes (as fs.createReadStream); of the plain bytes with `encryption`. */
  start?: number;
  end?: number;
  /** The file is encrypted with this backup data key (encrypted.ts); only the EncryptedBlobStore layer takes it. */
  encryption?: WrappedKey;
}

export interface BlobWriterOptions {
  compress?: boolean;
  /** Encrypt (after compressing) with this backup data key; only the EncryptedBlobStore layer takes it. */
  encryption?: WrappedKey;
}

export interface BlobStore {
  createWriter(key: string, opts?: BlobWriterOptions): BlobWriter;
  /** Rejects with an error whose `code` is "ENOENT" when the blob does not exist. */
  openRead(key: string, opts?: BlobReadOptions): Promise<Readable>;
  stat(key: string): Promise<{ size: number } | undefined>;
  /** Removes the blob; an absent blob is fine. */
  remove(key: string): Promise<void>;
  /**
   * Every committed blob whose key starts with `prefix` (a plain string prefix, as in S3; "" for all), in no
   * particular order. Never yields temporary or incomplete uploads.
   */
  list(prefix: string): AsyncIterable<BlobInfo>;
  /**
   * Removes what writers that never committed left behind (a crashed process): temp files of a local store,
   * incomplete multipart uploads of an S3 store. Writers in progress in this process are never touched; those
   * of other processes are protected by `olderThanMs` (only leftovers idle for longer are removed; the default
   * depends on the backend, see there). Returns how many were removed.
   */
  removeStale(olderThanMs?: number): Promise<number>;
  /**
   * Removes the unfinished writes of keys under `prefix` (temp files, incomplete multipart uploads) whatever
   * their age, except writers in progress in this process: for when their writer is known to be dead (a task
   * recovered after its node stopped). Returns how many were removed.
   */
  abortUploads(prefix: string): Promise<number>;
  /** A time-limited URL that downloads the blob straight from the backend (S3 only). */
  presign?(key: string, opts: { expiresInS: number; fileName: string }): Promise<string>;
  /**
   * Checks that blobs can be stored: the directory can be created and written, or the bucket exists and the
   * credentials are accepted. Rejects with a message naming the store and what to fix.
   */
  probe(): Promise<void>;
  /** The optional operations as known so far (S3 only). */
  capabilities?(): StoreCapability[];
  /** Tries each optional operation harmlessly and returns what the store implements (S3 only); never rejects. */
  checkCapabilities?(): Promise<StoreCapability[]>;
  /** Where the blobs live, for messages (`file:/abs/dir`, `s3://bucket/prefix @ endpoint`); never a secret. */
  describe(): string;
}

/** A missing blob, shaped like the fs error callers already test for (`err.code === "ENOENT"`). */
export class BlobNotFoundError extends Error {
  override name = "BlobNotFoundError";
  readonly code = "ENOENT";
  constructor(readonly key: string, where: string) {
    super(`ENOENT: no blob ${JSON.stringify(key)} in ${where}`);
  }
}

/** Backends store bytes as given: encryption is the EncryptedBlobStore layer's (a guard against bypassing it). */
export function refuseEncryption(opts: { encryption?: WrappedKey } | undefined, where: string): void {
  if (opts?.encryption) throw new Error(`${where} cannot encrypt or decrypt by itself: open it through the encryption layer (storage/encrypted.ts)`);
}

/** Validates a relative key like `backups/<id>/shard-0.rdb.gz` and returns its path segments. */
export function checkKey(key: string): string[] {
  if (typeof key !== "string" || key.length === 0) throw new Error("blob key must be a non-empty string");
  if (key.startsWith("/") || path.isAbsolute(key) || key.includes("\\") || key.includes("\0")) {
    throw new Error(`blob key must be a relative path with '/' separators: ${JSON.stringify(key)}`);
  }
  const parts = key.split("/");
  for (const p of parts) {
    // A leading dot also rules out '.', '..' and our own hidden temp names.
    if (p === "" || p.startsWith(".")) throw new Error(`invalid blob key ${JSON.stringify(key)}: empty, '..' or dot-prefixed segment`);
  }
  return parts;
}

/** True when `key` is a valid key (see {@link checkKey}). */
export function isValidKey(key: string): boolean {
  try {
    checkKey(key);
    return true;
  } catch {
    return false;
  }
}

/**
 * Until a writer that was ended has finished (every byte through its _write and _final), or the error that
 * stopped it; a writer destroyed before finishing without an error rejects too. Listeners are removed either
 * way, so a commit awaited many times does not accumulate them.
 */
export function writerFinished(w: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (w.writableFinished) return resolve();
    if (w.destroyed) return reject(w.errored ?? new Error("blob writer was destroyed before commit"));
    const onFinish = (): void => {
      w.off("error", onError);
      w.off("close", onClose);
      resolve();
    };
    const onError = (err: Error): void => {
      w.off("finish", onFinish);
      w.off("close", onClose);
      reject(err);
    };
    const onClose = (): void => {
      if (!w.writableFinished) onError(w.errored ?? new Error("blob writer was destroyed before commit"));
    };
    w.once("finish", onFinish);
    w.once("error", onError);
    w.once("close", onClose);
  });
}

/**
 * The commit/abort protocol both stores' writers share: commit() ends the stream, waits for every byte to have
 * gone through, then publishes; abort() lets a commit in flight win, otherwise destroys the stream and discards.
 * Both are idempotent, and a commit after an abort is refused.
 */
export abstract class CommittableWriter extends Writable implements BlobWriter {
  private committed: Promise<BlobCommitResult> | undefined;
  private aborted: Promise<void> | undefined;

  /** Makes the finished stream's blob durable and visible under its key. */
  protected abstract publish(): Promise<BlobCommitResult>;
  /** Removes whatever this writer left (a temp file, an unfinished upload); the stream is closed by then. */
  protected abstract discardWritten(): Promise<void>;

  commit(): Promise<BlobCommitResult> {
    if (this.aborted) return Promise.reject(new Error("blob writer was aborted"));
    this.committed ??= (async () => {
      if (!this.writableEnded) this.end();
      await writerFinished(this);
      return this.publish();
    })();
    return this.committed;
  }

  abort(): Promise<void> {
    this.aborted ??= (async () => {
      if (this.committed) {
        // A commit in flight wins; nothing to discard if it succeeded.
        try {
          await this.committed;
          return;
        } catch {
          /* fall through to cleanup */
        }
      }
      if (!this.closed) {
        await new Promise<void>((resolve) => {
          this.once("close", () => resolve());
          this.destroy();
        });
      }
      await this.discardWritten();
    })();
    return this.aborted;
  }
}

/**
 * The Content-Disposition of a downloaded blob: `attachment`, the exact name in RFC 5987 form when it is not
 * ISO-8859-1, and an ASCII fallback with `_` for every other character.
 */
export function attachmentDisposition(fileName: string): string {
  return contentDisposition(fileName, { fallback: fileName.replace(/[^\x20-\x7e]/g, "_") });
}
