// The writer of S3BlobStore: streams a blob into a multipart upload (lib-storage's Upload) that completes only
// in commit().
import crypto from "node:crypto";
import { PassThrough, Writable } from "node:stream";
import zlib from "node:zlib";
import { AbortMultipartUploadCommand, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { BlobCommitResult, CommittableWriter } from "./blob-store";
import type { S3StorageError } from "./s3-errors";

export interface WriterInit {
  client: S3Client;
  bucket: string;
  objectKey: string;
  compress: boolean;
  partSize: number;
  queueSize: number;
  /** Called once the writer no longer uploads (committed, failed or aborted). */
  release: () => void;
  mapError: (err: unknown, op: string) => S3StorageError;
  /** False once the store is known not to implement AbortMultipartUpload. */
  abortSupported: () => boolean;
  /** Told whether an AbortMultipartUpload worked (true) or is not implemented (false). */
  noteAbort: (supported: boolean) => void;
}

/**
 * Hashes and counts the plain bytes, gzips them (level 1, as the local store) when asked, and feeds the result
 * into an Upload through a PassThrough. The body is ended only by commit(): lib-storage sends the last part
 * (or the single PutObject of a small blob) only when its body ends, so nothing is visible before commit(),
 * even after 'finish'. A failed or discarded upload's multipart upload is aborted here rather than by Upload
 * (leavePartsOnError), so that a store without AbortMultipartUpload (s3rver) neither hides the real failure
 * behind the abort's error nor fails anything: the parts are then left for removeStale or a lifecycle rule.
 */
export class S3BlobWriter extends CommittableWriter {
  private readonly hash = crypto.createHash("sha256");
  private bytes = 0;
  private storedBytes = 0;
  private readonly body = new PassThrough({ highWaterMark: 1 << 20 });
  private readonly gzip: zlib.Gzip | undefined;
  private readonly upload: Upload;
  private readonly uploadDone: Promise<unknown>;
  private aborting: Promise<void> | undefined;
  private discarded: Promise<void> | undefined;
  private released = false;

  constructor(private readonly o: WriterInit) {
    super({ highWaterMark: 1 << 20 });
    // Failures are reported by commit() (and to pipeline()/other listeners); an 'error' nobody listens to
    // (e.g. after captureRdb destroyed the writer because the source failed) must not crash the process.
    this.on("error", () => undefined);
    this.body.on("error", () => undefined); // Upload sees body errors through its iterator
    const upload = (this.upload = new Upload({
      client: o.client,
      params: { Bucket: o.bucket, Key: o.objectKey, Body: this.body, ContentType: o.compress ? "application/gzip" : "application/octet-stream" },
      partSize: o.partSize,
      queueSize: o.queueSize,
      leavePartsOnError: true,
    }));
    this.uploadDone = upload.done();
    // An upload that fails while we are still writing (access denied, bucket missing, network) stops consuming
    // the body; fail the writer so the producer is not left waiting for 'drain' forever.
    this.uploadDone.catch((err: unknown) => {
      if (!this.destroyed && !this.body.writableEnded) this.destroy(this.o.mapError(err, "upload"));
    });
    if (o.compress) {
      // Level 1: capture speed matters more than the last few percent of size; 64 KiB output chunks.
      this.gzip = zlib.createGzip({ level: 1, chunkSize: 64 * 1024 });
      this.gzip.on("error", (err) => this.destroy(err));
      this.gzip.on("data", (c: Buffer) => (this.storedBytes += c.length));
      this.gzip.pipe(this.body, { end: false });
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    let target: Writable;
    if (this.gzip) target = this.gzip;
    else {
      target = this.body;
      this.storedBytes += chunk.length;
    }
    // Backpressure: don't accept more until the next stage has room.
    if (target.write(chunk)) cb();
    else target.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    // Flush gzip's tail into the body but keep the body open: ending it would complete the upload.
    if (!this.gzip) return cb();
    this.gzip.once("end", () => cb());
    this.gzip.end();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // autoDestroy after a clean 'finish': the blob waits for commit() or abort(), leave the upload pending.
    if (!err && this.writableFinished) return cb(null);
    this.gzip?.destroy();
    this.discard(err ?? new Error("blob writer destroyed")).then(() => cb(err), () => cb(err));
  }

  /** Fails the body (unless commit() already ended it), waits for Upload to stop and aborts its multipart upload. */
  private discard(reason: Error): Promise<void> {
    this.discarded ??= (async () => {
      if (!this.body.writableEnded) this.body.destroy(reason);
      try {
        await this.uploadDone;
      } catch {
        /* expected: the upload failed */
        await this.abortUpload();
      }
      this.release();
    })();
    return this.discarded;
  }

  /**
   * Aborts the multipart upload of a failed Upload (none for a single PutObject). Never rejects: a store without
   * AbortMultipartUpload is recorded, any other failure leaves the parts for removeStale.
   */
  private abortUpload(): Promise<void> {
    this.aborting ??= (async () => {
      const uploadId = this.upload.uploadId;
      if (!uploadId || !this.o.abortSupported()) return;
      try {
        await this.o.client.send(new AbortMultipartUploadCommand({ Bucket: this.o.bucket, Key: this.o.objectKey, UploadId: uploadId }));
        this.o.noteAbort(true);
      } catch (err) {
        const mapped = this.o.mapError(err, "AbortMultipartUpload");
        if (mapped.code === "Unsupported") this.o.noteAbort(false);
      }
    })();
    return this.aborting;
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.o.release();
  }

  protected async publish(): Promise<BlobCommitResult> {
    if (this.body.destroyed) {
      // The upload failed after the last write (its error destroyed us, or is about to): report that.
      try {
        await this.uploadDone;
      } catch (err) {
        await this.abortUpload();
        throw this.o.mapError(err, "upload");
      }
      throw new Error("blob writer was destroyed before commit");
    }
    this.body.end();
    try {
      await this.uploadDone;
    } catch (err) {
      await this.abortUpload();
      throw this.o.mapError(err, "upload");
    } finally {
      this.release();
    }
    return { bytes: this.bytes, sha256: this.hash.digest("hex"), storedBytes: this.storedBytes };
  }

  protected discardWritten(): Promise<void> {
    return this.discard(new Error("blob writer aborted"));
  }
}
