// The encrypted file format: AES-256-GCM in chunks, so a stream of any length is encrypted and decrypted in
// bounded memory and any change to the stored bytes is detected (STREAM construction: each chunk has its own
// nonce holding its index and a final-chunk flag, so reordered, dropped, duplicated or truncated chunks fail
// authentication just as a flipped byte does).
//
//   header (48 bytes): magic "CRSBKENC", version 1, algorithm 1 (AES-256-GCM), 2 reserved zero bytes,
//                      chunk size (u32 BE, plain bytes per chunk), salt (32 random bytes)
//   chunk i:           AES-256-GCM(fileKey, nonce_i, plain[i*C .. (i+1)*C)) || 16-byte tag
//   nonce_i:           u64 BE i || 3 zero bytes || 1 if it is the last chunk else 0
//   fileKey:           HKDF-SHA256(dataKey, salt, "crs-backup file v1" || header[0..16])
//
// Every chunk but the last holds exactly C plain bytes; the last holds 1..C (0 only for an empty file). The data
// key is the backup's (wrapped by a master key in the catalogue, see keys/); the random salt gives every file a
// key of its own. `openssl enc` cannot read this (it has no AEAD modes): `crs-backup decrypt` does.
import crypto from "node:crypto";
import { Transform, TransformCallback } from "node:stream";

export const MAGIC = Buffer.from("CRSBKENC", "latin1");
export const HEADER_BYTES = 48;
export const TAG_BYTES = 16;
export const DEFAULT_CHUNK_BYTES = 64 * 1024;
/** The largest chunk size a reader accepts (bounds the memory a damaged or hostile header can ask for). */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
export const ALGORITHM = "AES-256-GCM";
const INFO = Buffer.from("crs-backup file v1", "latin1");

/** Stored bytes that are not an intact encrypted file: altered, truncated, reordered, or the wrong key. */
export class DecryptionError extends Error {
  override name = "DecryptionError";
  readonly code = "EDECRYPT";
}

export interface FileHeader {
  chunkBytes: number;
  salt: Buffer;
  raw: Buffer;
}

export function makeHeader(chunkBytes = DEFAULT_CHUNK_BYTES, salt = crypto.randomBytes(32)): FileHeader {
  const raw = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(raw, 0);
  raw[8] = 1;
  raw[9] = 1;
  raw.writeUInt32BE(chunkBytes, 12);
  salt.copy(raw, 16);
  return { chunkBytes, salt, raw };
}

export function parseHeader(raw: Buffer): FileHeader {
  if (raw.length < HEADER_BYTES || !raw.subarray(0, 8).equals(MAGIC)) throw new DecryptionError("not an encrypted crs-backup file (no CRSBKENC header)");
  if (raw[8] !== 1 || raw[9] !== 1) throw new DecryptionError(`unsupported encrypted file version ${raw[8]}, algorithm ${raw[9]}`);
  const chunkBytes = raw.readUInt32BE(12);
  if (chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) throw new DecryptionError(`encrypted file header has an invalid chunk size ${chunkBytes}`);
  return { chunkBytes, salt: Buffer.from(raw.subarray(16, HEADER_BYTES)), raw: Buffer.from(raw.subarray(0, HEADER_BYTES)) };
}

/** The key one file is encrypted with, from the backup's data key and the file's header. */
export function fileKey(dataKey: Buffer, header: FileHeader): Buffer {
  if (dataKey.length !== 32) throw new Error("a data key must be 32 bytes");
  return Buffer.from(crypto.hkdfSync("sha256", dataKey, header.salt, Buffer.concat([INFO, header.raw.subarray(0, 16)]), 32));
}

function nonce(index: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(index), 0);
  n[11] = final ? 1 : 0;
  return n;
}

/** Stored bytes of a file of `plain` bytes. */
export function storedSize(plain: number, chunkBytes = DEFAULT_CHUNK_BYTES): number {
  return HEADER_BYTES + plain + Math.max(1, Math.ceil(plain / chunkBytes)) * TAG_BYTES;
}

/** Plain bytes of a stored file of `stored` bytes (undefined when no file has that size). */
export function plainSize(stored: number, chunkBytes: number): number | undefined {
  const body = stored - HEADER_BYTES;
  if (body < TAG_BYTES) return undefined;
  const chunks = Math.ceil(body / (chunkBytes + TAG_BYTES));
  const plain = body - chunks * TAG_BYTES;
  return plain >= 0 && storedSize(plain, chunkBytes) === stored ? plain : undefined;
}

/** Collects incoming buffers and hands them out in pieces of a given size without copying more than needed. */
class Pending {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    if (b.length) {
      this.parts.push(b);
      this.length += b.length;
    }
  }
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const p = this.parts[0]!;
      const k = Math.min(p.length, n - at);
      p.copy(out, at, 0, k);
      at += k;
      if (k === p.length) this.parts.shift();
      else this.parts[0] = p.subarray(k);
    }
    this.length -= n;
    return out;
  }
}

/** Plain bytes in, the encrypted file (header first) out. */
export class ChunkEncryptor extends Transform {
  private readonly pending = new Pending();
  private readonly key: Buffer;
  private readonly header: FileHeader;
  private index = 0;
  private started = false;

  constructor(dataKey: Buffer, chunkBytes = DEFAULT_CHUNK_BYTES) {
    super({ highWaterMark: 1 << 20 });
    this.header = makeHeader(chunkBytes);
    this.key = fileKey(dataKey, this.header);
  }

  private seal(plain: Buffer, final: boolean): void {
    const c = crypto.createCipheriv("aes-256-gcm", this.key, nonce(this.index++, final));
    const body = c.update(plain);
    c.final();
    this.push(body);
    this.push(c.getAuthTag());
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.push(this.header.raw);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.start();
    const C = this.header.chunkBytes;
    this.pending.push(chunk);
    // A chunk is sealed once more bytes follow it: only then is it known not to be the last.
    while (this.pending.length > C) this.seal(this.pending.take(C), false);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.start();
    this.seal(this.pending.take(this.pending.length), true);
    cb();
  }
}

export interface DecryptorOptions {
  /** The header, when the stream starts past it (a range read); else it is read from the stream. */
  header?: FileHeader;
  /** Index of the first chunk in the stream (a range read). */
  firstIndex?: number;
  /** Whether the stream's last chunk is the file's last (false for a range ending before the end). */
  endIsFinal?: boolean;
  /** Plain bytes to drop from the start, and to pass at most (a range read). */
  skip?: number;
  limit?: number;
  /** Names the file in errors. */
  name?: string;
}

/** The encrypted file in, plain bytes out; fails with a DecryptionError on the first chunk that does not authenticate. */
export class ChunkDecryptor extends Transform {
  private readonly pending = new Pending();
  private header: FileHeader | undefined;
  private key: Buffer | undefined;
  private index: number;
  private skip: number;
  private left: number;

  constructor(private readonly dataKey: Buffer, private readonly o: DecryptorOptions = {}) {
    super({ highWaterMark: 1 << 20 });
    this.index = o.firstIndex ?? 0;
    this.skip = o.skip ?? 0;
    this.left = o.limit ?? Number.MAX_SAFE_INTEGER;
    if (o.header) this.useHeader(o.header);
  }

  private useHeader(h: FileHeader): void {
    this.header = h;
    this.key = fileKey(this.dataKey, h);
  }

  private fail(why: string): DecryptionError {
    return new DecryptionError(`${this.o.name ?? "the encrypted file"} ${why}`);
  }

  private open(sealed: Buffer, final: boolean): void {
    const at = this.index++;
    const d = crypto.createDecipheriv("aes-256-gcm", this.key!, nonce(at, final));
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    let plain = d.update(sealed.subarray(0, sealed.length - TAG_BYTES));
    try {
      d.final();
    } catch {
      throw this.fail(`failed authentication at chunk ${at}: its stored bytes were altered, truncated or reordered, or the key is wrong`);
    }
    if (this.skip) {
      const k = Math.min(this.skip, plain.length);
      plain = plain.subarray(k);
      this.skip -= k;
    }
    if (plain.length > this.left) plain = plain.subarray(0, this.left);
    this.left -= plain.length;
    if (plain.length) this.push(plain);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.pending.push(chunk);
      if (!this.header) {
        if (this.pending.length < HEADER_BYTES) return cb();
        this.useHeader(parseHeader(this.pending.take(HEADER_BYTES)));
      }
      const sealed = this.header!.chunkBytes + TAG_BYTES;
      while (this.pending.length > sealed) this.open(this.pending.take(sealed), false);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (!this.header) throw this.fail("is truncated: it ends inside its header");
      const n = this.pending.length;
      if (n < TAG_BYTES) throw this.fail(`is truncated: it ends ${n} bytes into a chunk`);
      this.open(this.pending.take(n), this.o.endIsFinal ?? true);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

/** Where the chunks holding plain bytes start..end (inclusive) are stored, and what to drop around them. */
export function chunkRange(header: FileHeader, stored: number, start: number, end: number): { from: number; to: number; firstIndex: number; endIsFinal: boolean; skip: number; limit: number } {
  const C = header.chunkBytes;
  const sealed = C + TAG_BYTES;
  const last = Math.ceil((stored - HEADER_BYTES) / sealed) - 1;
  const first = Math.floor(start / C);
  const lastNeeded = Math.min(Math.floor(end / C), last);
  return {
    from: HEADER_BYTES + first * sealed,
    to: Math.min(stored, HEADER_BYTES + (lastNeeded + 1) * sealed) - 1,
    firstIndex: first,
    endIsFinal: lastNeeded === last,
    skip: start - first * C,
    limit: end - start + 1,
  };
}
