// The S3 blob store: backups in any S3-compatible object store (AWS S3, Tencent COS's S3 endpoint, MinIO,
// Ceph RGW). A writer streams through lib-storage's Upload (multipart, no temporary file): memory stays near
// partSize * (queueSize + 2) whatever the blob's size, and the object becomes visible only in commit(), when the
// body ends and Upload sends the single PutObject or the CompleteMultipartUpload (both atomic). A process killed
// mid-upload leaves at most an incomplete multipart upload, invisible to readers and listings, which
// removeStale() aborts later. That housekeeping uses ListMultipartUploads, ListParts and AbortMultipartUpload,
// which some S3-compatible stores lack (s3rver); without them it is skipped with one warning (onUnsupported),
// never failing a start or a backup, and capabilities() says what is missing for /metrics and `storage check`.
import { pipeline, Readable } from "node:stream";
import zlib from "node:zlib";
import {
  AbortMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand,
  ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand, S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { attachmentDisposition, BlobInfo, BlobNotFoundError, BlobReadOptions, BlobStore, BlobWriter, BlobWriterOptions, checkKey, isValidKey, refuseEncryption, StoreCapability } from "./blob-store";
import { mapS3Error, S3StorageError } from "./s3-errors";
import { S3BlobWriter } from "./s3-writer";

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ("" or ending in "/"; a missing trailing "/" is added). */
  prefix?: string;
  /** Default us-east-1. */
  region?: string;
  /** e.g. http://127.0.0.1:9000 or https://cos.ap-guangzhou.myqcloud.com; AWS's own endpoints when absent. */
  endpoint?: string;
  /** https://endpoint/bucket/key instead of https://bucket.endpoint/key (MinIO, Ceph and IP endpoints need it). */
  forcePathStyle?: boolean;
  credentials: S3Credentials;
  /** Multipart part size; default 8 MiB (5 MiB minimum). 10,000 parts make the largest blob 78 GiB stored. */
  partSizeBytes?: number;
  /** Parts uploaded concurrently; default 3. Memory is about partSize * (queueSize + 2). */
  queueSize?: number;
  /** removeStale()'s default grace; default 1 hour (see there). */
  staleGraceMs?: number;
  /** Told once per operation the first time the store turns out not to implement an optional one. */
  onUnsupported?: (c: StoreCapability) => void;
}

/** The optional operations (multipart housekeeping), and what goes undone in a store that lacks each. */
export const OPTIONAL_OPERATIONS = {
  ListMultipartUploads: "incomplete multipart uploads left by interrupted writers (a killed process, a failed or deleted backup) are not found, so not swept: their parts keep taking (billed) space until a bucket lifecycle rule (AbortIncompleteMultipartUpload) or an operator removes them",
  ListParts: "the age of an incomplete upload is judged by its start alone, so only uploads started more than 24 hours ago are swept (one still being written by another node after 24 hours would be cut)",
  AbortMultipartUpload: "the parts of failed, interrupted or stale uploads are not removed: they keep taking (billed) space until a bucket lifecycle rule or an operator removes them",
} as const;
export type OptionalOperation = keyof typeof OPTIONAL_OPERATIONS;

/** Without ListParts an upload's newest part is unknown: only uploads started longer ago than this are stale. */
export const STALE_BY_START_ONLY_MS = 24 * 60 * 60 * 1000;

export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 3;
/**
 * Another node sharing the bucket may be uploading right now; its multipart upload is indistinguishable from a
 * dead one except by age. An upload counts as stale only when both its start and its newest part are older
 * than this: a live writer adds a part every few seconds (8 MiB of a stream), while a capture may run for hours.
 */
export const DEFAULT_STALE_GRACE_MS = 60 * 60 * 1000;
/** SigV4 pre-signed URLs live at most 7 days. */
const MAX_PRESIGN_S = 7 * 24 * 3600;

export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  private readonly endpoint: string | undefined;
  private readonly region: string;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly staleGraceMs: number;
  /** Full object keys with a writer in progress in this process (a count per key); removeStale skips them. */
  private readonly active = new Map<string, number>();
  /** Whether each optional operation worked (true) or is not implemented (false); absent until tried. */
  private readonly support = new Map<OptionalOperation, boolean>();
  private readonly onUnsupported: ((c: StoreCapability) => void) | undefined;

  constructor(opts: S3StoreOptions) {
    this.bucket = opts.bucket;
    this.prefix = normalizePrefix(opts.prefix ?? "");
    this.region = opts.region ?? "us-east-1";
    this.endpoint = opts.endpoint;
    this.partSize = opts.partSizeBytes ?? DEFAULT_PART_SIZE;
    this.queueSize = opts.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.staleGraceMs = opts.staleGraceMs ?? DEFAULT_STALE_GRACE_MS;
    this.onUnsupported = opts.onUnsupported;
    if (!Number.isInteger(this.partSize) || this.partSize < 5 * 1024 * 1024) throw new Error(`S3 part size must be an integer of at least 5 MiB, got ${opts.partSizeBytes}`);
    if (!Number.isInteger(this.queueSize) || this.queueSize < 1) throw new Error(`S3 upload queue size must be a positive integer, got ${opts.queueSize}`);
    this.client = new S3Client({
      region: this.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle === true,
      credentials: opts.credentials,
      // The SDK's default CRC32 checksums on every request are not understood by every S3-compatible store
      // (older MinIO, Ceph, COS); we keep our own SHA-256 of the plain bytes and verify it on every read.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: 3,
      requestHandler: {
        connectionTimeout: 10_000,
        // Last resort against a black-holed connection (a stalled capture is also caught by captureRdb).
        socketTimeout: 300_000,
        httpAgent: { keepAlive: true, maxSockets: 32 },
        httpsAgent: { keepAlive: true, maxSockets: 32 },
      },
    });
  }

  /** The object key of a blob key. */
  objectKey(key: string): string {
    checkKey(key);
    return this.prefix + key;
  }

  describe(): string {
    return `s3://${this.bucket}/${this.prefix}${this.endpoint ? ` @ ${safeEndpoint(this.endpoint)}` : ` (${this.region})`}`;
  }

  private what(objectKey: string): string {
    return `s3://${this.bucket}/${objectKey}`;
  }

  /** Checks that the bucket exists and the credentials are accepted (HeadBucket). */
  async probe(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      throw mapS3Error(err, "HeadBucket", `s3://${this.bucket}`, this.describe(), "NoSuchBucket");
    }
  }

  /** Records what an optional operation's outcome says about the store; warns the first time one is missing. */
  private note(op: OptionalOperation, supported: boolean): void {
    const before = this.support.get(op);
    if (before === false) return; // once missing, it stays so (and is not tried again)
    this.support.set(op, supported);
    if (!supported) {
      try {
        this.onUnsupported?.({ operation: op, supported: false, without: OPTIONAL_OPERATIONS[op] });
      } catch {
        // a listener must not break housekeeping
      }
    }
  }

  /** True when a failure of `op` means the store lacks it (recorded); false for any other failure. */
  private unsupported(op: OptionalOperation, mapped: S3StorageError): boolean {
    if (mapped.code !== "Unsupported") return false;
    this.note(op, false);
    return true;
  }

  capabilities(): StoreCapability[] {
    return (Object.keys(OPTIONAL_OPERATIONS) as OptionalOperation[]).map((op) => ({ operation: op, supported: this.support.get(op), without: OPTIONAL_OPERATIONS[op] }));
  }

  /**
   * Tries each optional operation in a way that changes nothing: lists at most one upload, and lists the parts
   * of and aborts an upload id that does not exist (a store that implements them answers NoSuchUpload). Another
   * failure (a refused key, the network) leaves the operation unknown.
   */
  async checkCapabilities(): Promise<StoreCapability[]> {
    const probeKey = `${this.prefix}crs-backup-capability-probe`;
    const tries: Array<[OptionalOperation, () => Promise<unknown>]> = [
      ["ListMultipartUploads", () => this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix || undefined, MaxUploads: 1 }))],
      ["ListParts", () => this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: probeKey, UploadId: "crs-backup-no-such-upload" }))],
      ["AbortMultipartUpload", () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: probeKey, UploadId: "crs-backup-no-such-upload" }))],
    ];
    for (const [op, send] of tries) {
      try {
        await send();
        this.note(op, true);
      } catch (err) {
        const mapped = mapS3Error(err, op, this.what(probeKey), this.describe());
        if (mapped.code === "NoSuchUpload" || mapped.code === "ENOENT") this.note(op, true);
        else this.unsupported(op, mapped);
      }
    }
    return this.capabilities();
  }

  createWriter(key: string, opts: BlobWriterOptions = {}): BlobWriter {
    refuseEncryption(opts, this.describe());
    const objectKey = this.objectKey(key);
    this.active.set(objectKey, (this.active.get(objectKey) ?? 0) + 1);
    const release = (): void => {
      const n = (this.active.get(objectKey) ?? 1) - 1;
      if (n > 0) this.active.set(objectKey, n);
      else this.active.delete(objectKey);
    };
    return new S3BlobWriter({
      client: this.client, bucket: this.bucket, objectKey, compress: opts.compress === true, partSize: this.partSize, queueSize: this.queueSize,
      release, mapError: (err, op) => mapS3Error(err, op, this.what(objectKey), this.describe()),
      abortSupported: () => this.support.get("AbortMultipartUpload") !== false,
      noteAbort: (supported) => this.note("AbortMultipartUpload", supported),
    });
  }

  async openRead(key: string, opts: BlobReadOptions = {}): Promise<Readable> {
    refuseEncryption(opts, this.describe());
    const objectKey = this.objectKey(key);
    const ranged = opts.start !== undefined || opts.end !== undefined;
    const start = opts.start ?? 0;
    let raw: Readable;
    let contentRange: string | undefined;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range: ranged ? `bytes=${start}-${opts.end ?? ""}` : undefined }));
      raw = res.Body as Readable;
      contentRange = res.ContentRange;
    } catch (err) {
      const mapped = mapS3Error(err, "GetObject", this.what(objectKey), this.describe());
      if (mapped.code === "ENOENT") throw new BlobNotFoundError(key, this.describe());
      throw mapped;
    }
    if (ranged) raw = this.exactRange(raw, contentRange, start, opts.end, objectKey);
    if (!opts.decompress) return raw;
    // 256 KiB inflate chunks, as the local store: restores and exports stream hundreds of MB.
    const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
    pipeline(raw, gunzip, () => undefined); // errors surface on gunzip
    return gunzip;
  }

  /**
   * HTTP lets a server ignore Range (200 with the whole object) or answer a wider one; some S3 emulators
   * read "bytes=0-0" as "from 0". Cut what came to exactly the bytes asked for.
   */
  private exactRange(raw: Readable, contentRange: string | undefined, start: number, end: number | undefined, objectKey: string): Readable {
    const m = /^bytes (\d+)-(\d+)\/(?:\d+|\*)$/.exec(contentRange ?? "");
    const gotStart = m ? Number(m[1]) : 0;
    const gotEnd = m ? Number(m[2]) : undefined;
    if (gotStart > start) {
      raw.destroy();
      throw new S3StorageError("S3Error", `GetObject ${this.what(objectKey)} at ${this.describe()}: asked for bytes from ${start}, got ${contentRange}`);
    }
    const exact = gotStart === start && (end === undefined ? true : gotEnd === end);
    return exact ? raw : sliceStream(raw, start - gotStart, end === undefined ? Infinity : end - start + 1);
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    const objectKey = this.objectKey(key);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      return { size: res.ContentLength ?? 0 };
    } catch (err) {
      const mapped = mapS3Error(err, "HeadObject", this.what(objectKey), this.describe());
      if (mapped.code === "ENOENT") return undefined;
      throw mapped;
    }
  }

  async remove(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }));
    } catch (err) {
      const mapped = mapS3Error(err, "DeleteObject", this.what(objectKey), this.describe());
      if (mapped.code !== "ENOENT") throw mapped;
    }
  }

  async *list(prefix: string): AsyncIterable<BlobInfo> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }));
      } catch (err) {
        throw mapS3Error(err, "ListObjectsV2", this.what(this.prefix + prefix), this.describe(), "NoSuchBucket");
      }
      for (const o of page.Contents ?? []) {
        const key = o.Key?.slice(this.prefix.length);
        // Objects that no writer of ours can have made (folder markers "x/", foreign names) are not blobs.
        if (key && o.Key!.startsWith(this.prefix) && isValidKey(key)) yield { key, size: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Multipart uploads under the store's prefix that were started and neither completed nor aborted. */
  async *incompleteUploads(): AsyncIterable<{ objectKey: string; uploadId: string; initiated: Date | undefined }> {
    // A store without ListMultipartUploads: none can be found (recorded, and said once).
    if (this.support.get("ListMultipartUploads") === false) return;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix || undefined, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        this.note("ListMultipartUploads", true);
      } catch (err) {
        const mapped = mapS3Error(err, "ListMultipartUploads", this.what(this.prefix), this.describe(), "NoSuchBucket");
        if (this.unsupported("ListMultipartUploads", mapped)) return;
        throw mapped;
      }
      for (const u of page.Uploads ?? []) {
        if (u.Key && u.UploadId) yield { objectKey: u.Key, uploadId: u.UploadId, initiated: u.Initiated };
      }
      if (!page.IsTruncated) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (!keyMarker && !uploadIdMarker) return;
    }
  }

  /**
   * Aborts incomplete multipart uploads under the prefix (a killed process's writers) that are not in progress
   * in this process and whose start and newest part are both older than `olderThanMs` (default: the store's
   * staleGraceMs, 1 hour): other nodes sharing the bucket may be uploading right now. 0 aborts every upload
   * not ours, for a single-node deployment or tests. Returns how many were aborted. In a store lacking one of
   * the operations this needs, as much is done as it allows (see OPTIONAL_OPERATIONS), and nothing fails.
   */
  async removeStale(olderThanMs = this.staleGraceMs): Promise<number> {
    const now = Date.now();
    let removed = 0;
    for await (const u of this.incompleteUploads()) {
      if (this.active.has(u.objectKey)) continue;
      if (olderThanMs > 0) {
        if (u.initiated && now - u.initiated.getTime() < olderThanMs) continue;
        const last = await this.lastPartTime(u.objectKey, u.uploadId);
        if (last === null || (last instanceof Date && now - last.getTime() < olderThanMs)) continue;
        // Its newest part unknown: judged by its start, with a margin no capture outlasts.
        if (last === "unknown" && !(u.initiated && now - u.initiated.getTime() >= Math.max(olderThanMs, STALE_BY_START_ONLY_MS))) continue;
      }
      const aborted = await this.abortUpload(u.objectKey, u.uploadId);
      if (aborted === undefined) break; // AbortMultipartUpload is not implemented: nothing can be swept
      if (aborted) removed++;
    }
    return removed;
  }

  async abortUploads(prefix: string): Promise<number> {
    let removed = 0;
    for await (const u of this.incompleteUploads()) {
      if (!u.objectKey.startsWith(this.prefix + prefix) || this.active.has(u.objectKey)) continue;
      const aborted = await this.abortUpload(u.objectKey, u.uploadId);
      if (aborted === undefined) break;
      if (aborted) removed++;
    }
    return removed;
  }

  /** Aborts one upload: true if aborted, false if it was gone already, undefined if the store cannot abort. */
  private async abortUpload(objectKey: string, uploadId: string): Promise<boolean | undefined> {
    if (this.support.get("AbortMultipartUpload") === false) return undefined;
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }));
      this.note("AbortMultipartUpload", true);
      return true;
    } catch (err) {
      const mapped = mapS3Error(err, "AbortMultipartUpload", this.what(objectKey), this.describe());
      if (mapped.code === "NoSuchUpload" || mapped.code === "ENOENT") return false; // gone meanwhile is fine
      if (this.unsupported("AbortMultipartUpload", mapped)) return undefined;
      throw mapped;
    }
  }

  /**
   * When the newest part of an upload arrived; undefined if it has none, null if the upload is gone, "unknown"
   * if the store does not implement ListParts.
   */
  private async lastPartTime(objectKey: string, uploadId: string): Promise<Date | undefined | null | "unknown"> {
    if (this.support.get("ListParts") === false) return "unknown";
    let newest: Date | undefined;
    let marker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId, PartNumberMarker: marker }));
        this.note("ListParts", true);
      } catch (err) {
        const mapped = mapS3Error(err, "ListParts", this.what(objectKey), this.describe());
        if (mapped.code === "NoSuchUpload" || mapped.code === "ENOENT") return null;
        if (this.unsupported("ListParts", mapped)) return "unknown";
        throw mapped;
      }
      for (const p of page.Parts ?? []) if (p.LastModified && (!newest || p.LastModified > newest)) newest = p.LastModified;
      if (!page.IsTruncated || !page.NextPartNumberMarker) return newest;
      marker = page.NextPartNumberMarker;
    }
  }

  /** A GET URL valid for `expiresInS` seconds that downloads the blob as an attachment named `fileName`. */
  async presign(key: string, opts: { expiresInS: number; fileName: string }): Promise<string> {
    const objectKey = this.objectKey(key);
    if (!Number.isInteger(opts.expiresInS) || opts.expiresInS < 1 || opts.expiresInS > MAX_PRESIGN_S) {
      throw new Error(`a pre-signed URL must expire in 1 to ${MAX_PRESIGN_S} seconds, got ${opts.expiresInS}`);
    }
    const cmd = new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, ResponseContentDisposition: attachmentDisposition(opts.fileName) });
    return getSignedUrl(this.client, cmd, { expiresIn: opts.expiresInS });
  }

  /** Closes the client's idle keep-alive sockets. */
  destroy(): void {
    this.client.destroy();
  }
}

/** The `take` bytes of `src` after its first `skip`; stops reading `src` once they are through. */
function sliceStream(src: Readable, skip: number, take: number): Readable {
  let skipped = 0;
  let sent = 0;
  const out = new Readable({
    read: () => void src.resume(),
    destroy: (err, cb) => {
      src.destroy();
      cb(err);
    },
  });
  src.on("data", (chunk: Buffer) => {
    let c = chunk;
    if (skipped < skip) {
      const drop = Math.min(skip - skipped, c.length);
      skipped += drop;
      c = c.subarray(drop);
    }
    if (c.length === 0 || sent >= take) return;
    if (c.length > take - sent) c = c.subarray(0, take - sent);
    sent += c.length;
    const more = out.push(c);
    if (sent >= take) {
      out.push(null);
      src.destroy();
    } else if (!more) src.pause();
  });
  src.once("end", () => out.push(null));
  src.once("error", (err) => out.destroy(err));
  src.pause();
  return out;
}

function normalizePrefix(prefix: string): string {
  if (prefix === "" || prefix === "/") return "";
  const p = prefix.replace(/^\/+/, "").replace(/\/+$/, "");
  checkKey(p);
  return `${p}/`;
}

/** The endpoint without any user:password part (never shown). */
function safeEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(invalid endpoint)";
  }
}
