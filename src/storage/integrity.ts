// Reads a blob and checks it against what its writer recorded: every export and restore verifies the plain
// bytes' count and SHA-256, so a file damaged at rest (disk, object store, someone's hand) never reaches a user
// or a Redis as if it were the backup. The check costs one hashing pass on the way; nothing is buffered.
import crypto from "node:crypto";
import { pipeline, Readable, Transform, TransformCallback } from "node:stream";
import type { BlobStore } from "./blob-store";
import type { WrappedKey } from "./keys/provider";

export interface RecordedBlob {
  key: string;
  /** Plain (decompressed) bytes, as BlobCommitResult.bytes. */
  bytes: number;
  /** Hex SHA-256 of the plain bytes, as BlobCommitResult.sha256. */
  sha256: string;
  /** The data key of an encrypted file (its backup's; see jobs/backups.ts backupFiles). */
  encryption?: WrappedKey;
}

/** The blob's content differs from its record. */
export class BlobIntegrityError extends Error {
  override name = "BlobIntegrityError";
  readonly code = "EINTEGRITY";
  constructor(readonly key: string, readonly expected: { bytes: number; sha256: string }, readonly actual: { bytes: number; sha256?: string }) {
    super(actual.sha256 === undefined
      ? `blob ${key} is longer than recorded: more than ${expected.bytes} bytes`
      : `blob ${key} does not match its record: ${actual.bytes} bytes with sha256 ${actual.sha256}, expected ${expected.bytes} bytes with sha256 ${expected.sha256}`);
  }
}

class Verifier extends Transform {
  private readonly hash = crypto.createHash("sha256");
  private seen = 0;
  constructor(private readonly file: RecordedBlob) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    // Fail as soon as it is too long rather than streaming an unbounded damaged file to the end.
    if (this.seen > this.file.bytes) return cb(new BlobIntegrityError(this.file.key, this.file, { bytes: this.seen }));
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    const sha256 = this.hash.digest("hex");
    if (this.seen !== this.file.bytes || sha256 !== this.file.sha256) return cb(new BlobIntegrityError(this.file.key, this.file, { bytes: this.seen, sha256 }));
    cb();
  }
}

/**
 * Opens `file.key` (decompressing when asked) and returns a stream of its plain bytes that fails with a
 * BlobIntegrityError instead of ending when their count or SHA-256 differ from the record. The consumer must
 * treat the data as good only once the stream has ended without error (pipeline() does).
 */
export async function verifiedRead(store: BlobStore, file: RecordedBlob, opts: { decompress?: boolean } = {}): Promise<Readable> {
  const source = await store.openRead(file.key, { decompress: opts.decompress === true, ...(file.encryption ? { encryption: file.encryption } : {}) });
  const verifier = new Verifier(file);
  pipeline(source, verifier, () => undefined); // a source error surfaces on the verifier
  return verifier;
}
