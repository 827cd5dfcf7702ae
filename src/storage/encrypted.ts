// The encryption layer over any BlobStore (local or S3): a writer given `encryption` (a backup's wrapped data
// key) hashes the plain bytes, gzips them when asked, encrypts the result (encryption.ts) and hands only
// ciphertext to the backend; a reader given it decrypts (and gunzips) on the way, whole or, for a file stored
// uncompressed, one range of its plain bytes. Blobs without `encryption` pass through untouched, so encrypted and
// plain backups live side by side. Every process opens its store through this layer (services.ts).
import crypto from "node:crypto";
import { pipeline, Readable, Writable } from "node:stream";
import { pipeline as pipelineAsync } from "node:stream/promises";
import zlib from "node:zlib";
import { BlobCommitResult, BlobInfo, BlobNotFoundError, BlobReadOptions, BlobStore, BlobWriter, BlobWriterOptions, CommittableWriter, StoreCapability } from "./blob-store";
import { ChunkDecryptor, ChunkEncryptor, chunkRange, HEADER_BYTES, parseHeader, plainSize, DecryptionError } from "./encryption";
import { KeyProvider, KeyUnavailableError, noKeysError, WrappedKey } from "./keys/provider";

class EncryptingWriter extends CommittableWriter {
  private readonly hash = crypto.createHash("sha256");
  private bytes = 0;
  private head: Writable | undefined;
  private stages: Writable[] = [];
  private flowed: Promise<void> | undefined;

  constructor(private readonly inner: BlobWriter, private readonly dataKey: Promise<Buffer>, private readonly compress: boolean) {
    super({ highWaterMark: 1 << 20 });
    // As the backends' writers: failures are reported by commit() and to pipeline(), never as an unhandled 'error'.
    this.on("error", () => undefined);
  }

  override _construct(cb: (err?: Error | null) => void): void {
    this.dataKey.then((key) => {
      const encryptor = new ChunkEncryptor(key);
      // gzip first (level 1 and 64 KiB chunks, as the backends): ciphertext does not compress.
      this.stages = this.compress ? [zlib.createGzip({ level: 1, chunkSize: 64 * 1024 }), encryptor] : [encryptor];
      this.head = this.stages[0]!;
      this.flowed = pipelineAsync([...this.stages, this.inner] as unknown as [Writable, Writable]);
      this.flowed.catch((err: Error) => this.destroy(err));
      cb();
    }, (err: Error) => cb(err));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.head!.write(chunk)) cb();
    else this.head!.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.head!.end();
    this.flowed!.then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.writableFinished) for (const s of this.stages) s.destroy();
    cb(err);
  }

  protected async publish(): Promise<BlobCommitResult> {
    const r = await this.inner.commit();
    return { bytes: this.bytes, sha256: this.hash.digest("hex"), storedBytes: r.storedBytes };
  }

  protected async discardWritten(): Promise<void> {
    await this.inner.abort();
  }
}

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export class EncryptedBlobStore implements BlobStore {
  constructor(readonly inner: BlobStore, readonly keys: KeyProvider | undefined) {
    if (inner.presign) this.presign = (key, opts) => inner.presign!(key, opts);
    if (inner.capabilities) this.capabilities = () => inner.capabilities!();
    if (inner.checkCapabilities) this.checkCapabilities = () => inner.checkCapabilities!();
  }

  presign?: BlobStore["presign"];
  capabilities?: () => StoreCapability[];
  checkCapabilities?: () => Promise<StoreCapability[]>;

  /** The plain data key of `what` (a file), or a KeyUnavailableError naming it and the master key. */
  async dataKey(w: WrappedKey, what: string): Promise<Buffer> {
    try {
      if (!this.keys) throw noKeysError(w.keyId);
      return await this.keys.unwrap(w);
    } catch (err) {
      if (err instanceof KeyUnavailableError) throw new KeyUnavailableError(err.keyId, `${what} is ${err.message}`);
      throw err;
    }
  }

  createWriter(key: string, opts: BlobWriterOptions = {}): BlobWriter {
    if (!opts.encryption) return this.inner.createWriter(key, opts);
    const dataKey = this.dataKey(opts.encryption, `the backup file ${key}`);
    dataKey.catch(() => undefined); // reported through the writer
    return new EncryptingWriter(this.inner.createWriter(key, { compress: false }), dataKey, opts.compress === true);
  }

  async openRead(key: string, opts: BlobReadOptions = {}): Promise<Readable> {
    const { encryption, ...rest } = opts;
    if (!encryption) return this.inner.openRead(key, rest);
    const dataKey = await this.dataKey(encryption, `the backup file ${key}`);
    const name = `the backup file ${key} (encrypted with master key ${JSON.stringify(encryption.keyId)})`;
    const ranged = opts.start !== undefined || opts.end !== undefined;
    if (!ranged) {
      const stages: Array<NodeJS.ReadableStream | NodeJS.WritableStream> = [await this.inner.openRead(key), new ChunkDecryptor(dataKey, { name })];
      if (opts.decompress) stages.push(zlib.createGunzip({ chunkSize: 256 * 1024 }));
      pipeline(stages, () => undefined); // errors surface on the last stage
      return stages[stages.length - 1] as Readable;
    }
    if (opts.decompress) throw new Error(`a byte range of the compressed file ${key} cannot be read`);
    const st = await this.inner.stat(key);
    if (!st) throw new BlobNotFoundError(key, this.describe());
    const header = parseHeader(await readAll(await this.inner.openRead(key, { start: 0, end: HEADER_BYTES - 1 })));
    const plain = plainSize(st.size, header.chunkBytes);
    if (plain === undefined) throw new DecryptionError(`${name} has ${st.size} stored bytes, which no encrypted file has: it is truncated or damaged`);
    const start = opts.start ?? 0;
    const end = Math.min(opts.end ?? plain - 1, plain - 1);
    if (start > end) return Readable.from([]);
    const r = chunkRange(header, st.size, start, end);
    const raw = await this.inner.openRead(key, { start: r.from, end: r.to });
    const dec = new ChunkDecryptor(dataKey, { name, header, firstIndex: r.firstIndex, endIsFinal: r.endIsFinal, skip: r.skip, limit: r.limit });
    pipeline(raw, dec, () => undefined);
    return dec;
  }

  stat(key: string): Promise<{ size: number } | undefined> {
    return this.inner.stat(key);
  }

  remove(key: string): Promise<void> {
    return this.inner.remove(key);
  }

  list(prefix: string): AsyncIterable<BlobInfo> {
    return this.inner.list(prefix);
  }

  removeStale(olderThanMs?: number): Promise<number> {
    return this.inner.removeStale(olderThanMs);
  }

  abortUploads(prefix: string): Promise<number> {
    return this.inner.abortUploads(prefix);
  }

  probe(): Promise<void> {
    return this.inner.probe();
  }

  describe(): string {
    return this.inner.describe();
  }

  /** An S3 client's idle sockets (services.close). */
  destroy(): void {
    (this.inner as { destroy?: () => void }).destroy?.();
  }
}
