// The blob store interface every backup file goes through. A blob is either complete under its key or absent:
// writers stream, hash and (optionally) gzip on the way and make the blob visible only in commit(). Backends:
// local.ts (a directory, the embedded default) and s3.ts (any S3-compatible object store).
import path from "node:path";
import type { Readable, Writable } from "node:stream";

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

export interface BlobStore {
  createWriter(key: string, opts?: { compress?: boolean }): BlobWriter;
  /** `start`/`end` are inclusive byte offsets of the STORED bytes (as fs.createReadStream). */
  openRead(key: string, opts?: { decompress?: boolean; start?: number; end?: number }): Promise<Readable>;
  stat(key: string): Promise<{ size: number } | undefined>;
  remove(key: string): Promise<void>;
  /** Committed blobs whose key starts with `prefix`. */
  list(prefix: string): AsyncIterable<{ key: string; size: number }>;
  /** Removes leftover temp files of writers that never committed (e.g. after a crash); returns how many. */
  removeStale?(): Promise<number>;
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

