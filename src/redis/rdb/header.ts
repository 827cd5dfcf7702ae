// Streaming RDB inspector: fed the snapshot as it arrives (in any chunking), it reads the header and the AUX
// fields (enough for a catalogue entry) and verifies the trailer (0xFF + CRC-64 of everything before the CRC).
// It does not decode keys: a full structural check is redis-check-rdb's job; the CRC already proves the bytes
// are exactly what the server wrote.
import { Crc64, crc64Equals, crc64Init, crc64ToHex, crc64Update } from "./crc64";
import { lzfDecompress as lzfDecompressRange, LzfError } from "./lzf";

export const RDB_MIN_VERSION = 1;
/** Highest RDB format version we accept (Redis 7.4 / 8.x write 12). */
export const RDB_MAX_VERSION = 12;
/** First RDB version with a CRC-64 trailer (Redis 2.6+). */
const RDB_CHECKSUM_SINCE = 5;

const OP_AUX = 0xfa;
const OP_EOF = 0xff;
/** The header and AUX section are a few hundred bytes; more than this means the stream is not an RDB. */
const MAX_HEADER_BYTES = 1 << 20;

export interface RdbInfo {
  rdbVersion: number;
  /** AUX fields in file order: redis-ver, redis-bits, ctime, used-mem, repl-id, repl-offset, aof-base, ... */
  aux: Record<string, string>;
  /** `redis-ver` from the AUX fields; undefined for files written before Redis 3.2 (no AUX fields) and by Valkey. */
  redisVersion: string | undefined;
  /** The writing server from `valkey-ver` (Valkey 8+ writes only that) or `redis-ver`; undefined without AUX. */
  server: { name: "redis" | "valkey"; version: string } | undefined;
  /** 'disabled' when the server runs with rdbchecksum no (stored CRC is 0) or the format predates checksums. */
  checksum: "ok" | "disabled";
  /** Total bytes of the file, trailer included. */
  bytes: number;
}

export class RdbFormatError extends Error {
  override name = "RdbFormatError";
}

/** Thrown by the AUX parser when the buffered bytes end inside a field. */
const NEED_MORE = Symbol("need more bytes");

export class RdbInspector {
  private crc: Crc64 = crc64Init();
  private bytes = 0;
  /** The last (up to) 9 bytes seen: 0xFF + 8-byte CRC once the stream ends. Not yet fed to the CRC. */
  private tail: Buffer = Buffer.alloc(0);
  /** Header/AUX bytes buffered until the first non-AUX opcode; undefined once that section is parsed. */
  private head: Buffer | undefined = Buffer.alloc(0);
  private headPos = 0;
  private version = 0;
  private readonly aux: Record<string, string> = {};
  private finished = false;

  /** Feeds the next chunk. Throws RdbFormatError as soon as the header is known to be wrong. */
  update(chunk: Buffer): void {
    if (this.finished) throw new Error("RdbInspector: update after end");
    if (chunk.length === 0) return;
    this.bytes += chunk.length;
    if (this.head !== undefined) this.parseHead(chunk);
    this.feedCrc(chunk);
  }

  /** Call once the whole file has been fed; verifies the trailer and returns what was learned. */
  end(): RdbInfo {
    this.finished = true;
    if (this.head !== undefined) {
      if (this.head.length < 9) throw new RdbFormatError(`truncated RDB: only ${this.bytes} bytes, header incomplete`);
      throw new RdbFormatError(`truncated RDB: stream ended inside the AUX section after ${this.bytes} bytes`);
    }
    let checksum: RdbInfo["checksum"];
    if (this.version < RDB_CHECKSUM_SINCE) {
      // Only the EOF opcode, which sits in the last tail byte.
      if (this.tail[this.tail.length - 1] !== OP_EOF) throw this.missingEof();
      checksum = "disabled";
    } else {
      if (this.tail.length < 9 || this.tail[0] !== OP_EOF) throw this.missingEof();
      crc64Update(this.crc, this.tail, 0, 1);
      const stored = this.tail.subarray(1, 9);
      if (stored.every((b) => b === 0)) checksum = "disabled";
      else if (crc64Equals(this.crc, stored)) checksum = "ok";
      else {
        const storedHex = Buffer.from(stored).reverse().toString("hex");
        throw new RdbFormatError(`RDB checksum mismatch: file says ${storedHex}, computed ${crc64ToHex(this.crc)} over ${this.bytes - 8} bytes (corrupt payload)`);
      }
    }
    const redisVersion = this.aux["redis-ver"];
    const valkey = this.aux["valkey-ver"];
    const server = valkey ? { name: "valkey" as const, version: valkey } : redisVersion ? { name: "redis" as const, version: redisVersion } : undefined;
    return { rdbVersion: this.version, aux: { ...this.aux }, redisVersion, server, checksum, bytes: this.bytes };
  }

  private missingEof(): RdbFormatError {
    return new RdbFormatError(`truncated RDB: no 0xFF end-of-file opcode before the checksum (${this.bytes} bytes received)`);
  }

  /** CRC everything except the last 9 bytes, which may turn out to be the EOF opcode + stored CRC. */
  private feedCrc(chunk: Buffer): void {
    if (chunk.length >= 9) {
      if (this.tail.length) crc64Update(this.crc, this.tail);
      crc64Update(this.crc, chunk, 0, chunk.length - 9);
      // Copy: the caller may reuse or hand off the chunk, and a subarray would pin a large buffer.
      this.tail = Buffer.from(chunk.subarray(chunk.length - 9));
    } else {
      const joined = Buffer.concat([this.tail, chunk]);
      const excess = joined.length - 9;
      if (excess > 0) {
        crc64Update(this.crc, joined, 0, excess);
        this.tail = joined.subarray(excess);
      } else {
        this.tail = joined;
      }
    }
  }

  private parseHead(chunk: Buffer): void {
    // Avoid copying a large first chunk: parse it in place and copy only if we must keep it.
    const head = this.head!.length ? Buffer.concat([this.head!, chunk]) : chunk;
    if (this.version === 0) {
      const magicLen = Math.min(head.length, 5);
      if (head.toString("latin1", 0, magicLen) !== "REDIS".slice(0, magicLen)) {
        throw new RdbFormatError(`not an RDB file: bad magic ${JSON.stringify(head.toString("latin1", 0, magicLen))} (expected "REDIS")`);
      }
      if (head.length < 9) {
        this.head = Buffer.from(head);
        return;
      }
      const digits = head.toString("latin1", 5, 9);
      if (!/^[0-9]{4}$/.test(digits)) throw new RdbFormatError(`not an RDB file: bad version field ${JSON.stringify(digits)}`);
      const v = Number(digits);
      if (v < RDB_MIN_VERSION || v > RDB_MAX_VERSION) {
        throw new RdbFormatError(`unsupported RDB version ${v} (this build reads ${RDB_MIN_VERSION}..${RDB_MAX_VERSION})`);
      }
      this.version = v;
      this.headPos = 9;
    }
    // Parse whole AUX fields; a field cut by the chunk boundary is re-parsed when more bytes arrive.
    while (this.headPos < head.length) {
      if (head[this.headPos] !== OP_AUX) {
        this.head = undefined; // header section done; from here on only the CRC matters
        return;
      }
      try {
        const r = new Reader(head, this.headPos + 1);
        const key = r.string();
        const value = r.string();
        this.aux[key] = value;
        this.headPos = r.pos;
      } catch (err) {
        if (err !== NEED_MORE) throw err;
        break;
      }
    }
    if (head.length > MAX_HEADER_BYTES) throw new RdbFormatError(`RDB AUX section exceeds ${MAX_HEADER_BYTES} bytes; not a valid RDB`);
    this.head = head === chunk ? Buffer.from(chunk) : head;
  }
}

/** Cursor over the buffered header; throws NEED_MORE when a read runs past the end. */
class Reader {
  constructor(private readonly buf: Buffer, public pos: number) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw NEED_MORE;
  }

  private u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  /** RDB length encoding; `special` is set for the 0b11 "encoded value" form. */
  length(): { len: number; special: boolean } {
    const first = this.u8();
    switch (first >> 6) {
      case 0:
        return { len: first & 0x3f, special: false };
      case 1:
        return { len: ((first & 0x3f) << 8) | this.u8(), special: false };
      case 2: {
        if (first === 0x80) {
          this.need(4);
          const v = this.buf.readUInt32BE(this.pos);
          this.pos += 4;
          return { len: v, special: false };
        }
        if (first === 0x81) {
          this.need(8);
          const v = this.buf.readBigUInt64BE(this.pos);
          this.pos += 8;
          if (v > BigInt(MAX_HEADER_BYTES)) throw new RdbFormatError(`RDB AUX field length ${v} is implausible`);
          return { len: Number(v), special: false };
        }
        throw new RdbFormatError(`bad RDB length encoding 0x${first.toString(16)} at offset ${this.pos - 1}`);
      }
      default:
        return { len: first & 0x3f, special: true };
    }
  }

  string(): string {
    const { len, special } = this.length();
    if (!special) return this.raw(len).toString("utf8");
    switch (len) {
      case 0:
        this.need(1);
        return String(this.buf.readInt8(this.pos++));
      case 1: {
        this.need(2);
        const v = this.buf.readInt16LE(this.pos);
        this.pos += 2;
        return String(v);
      }
      case 2: {
        this.need(4);
        const v = this.buf.readInt32LE(this.pos);
        this.pos += 4;
        return String(v);
      }
      case 3: {
        const clen = this.length();
        const ulen = this.length();
        if (clen.special || ulen.special) throw new RdbFormatError(`bad LZF string header at offset ${this.pos}`);
        if (ulen.len > MAX_HEADER_BYTES) throw new RdbFormatError(`RDB AUX field length ${ulen.len} is implausible`);
        return lzfDecompress(this.raw(clen.len), ulen.len).toString("utf8");
      }
      default:
        throw new RdbFormatError(`unknown RDB string encoding ${len} at offset ${this.pos - 1}`);
    }
  }

  private raw(len: number): Buffer {
    if (len > MAX_HEADER_BYTES) throw new RdbFormatError(`RDB AUX field length ${len} is implausible`);
    this.need(len);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
}

/** LZF decompression of a whole buffer (rdb/lzf.ts), its failures as this inspector's format errors. */
export function lzfDecompress(input: Buffer, outLen: number): Buffer {
  try {
    return lzfDecompressRange(input, 0, input.length, outLen);
  } catch (err) {
    if (err instanceof LzfError) throw new RdbFormatError(`corrupt LZF data (${err.message})`);
    throw err;
  }
}

/** Inspects a whole in-memory RDB (tests, small files). */
export function inspectRdb(buf: Buffer): RdbInfo {
  const i = new RdbInspector();
  i.update(buf);
  return i.end();
}

function majorMinor(redisVersion: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(redisVersion.trim());
  if (!m) throw new Error(`cannot read a Redis version from ${JSON.stringify(redisVersion)}`);
  return [Number(m[1]), Number(m[2])];
}

/** The catalogue's FileType for a backup written by this Redis version, e.g. "RDB-Redis 7.0". */
export function fileTypeFor(version: string, server: "redis" | "valkey" = "redis"): string {
  const [major, minor] = majorMinor(version);
  return `RDB-${server === "valkey" ? "Valkey" : "Redis"} ${major}.${minor}`;
}

/**
 * CRS InstanceType code for a server version and topology: 2.8 standalone 5, 4.0 6/7 (standard/cluster),
 * 5.0 8/9, 6.x 15/16, 7.x and later 17/18, Valkey 19/20 (the cloud lists 19-22 for Valkey 8.0; we use the first
 * two, standard and cluster). Versions older than 4.0 map to the 2.8 code (5) or, for a cluster, the oldest
 * cluster code (7), as CRS has no 3.x types.
 */
export function instanceTypeFor(version: string, cluster: boolean, server: "redis" | "valkey" = "redis"): number {
  if (server === "valkey") return cluster ? 20 : 19;
  const [major] = majorMinor(version);
  if (major >= 7) return cluster ? 18 : 17;
  if (major === 6) return cluster ? 16 : 15;
  if (major === 5) return cluster ? 9 : 8;
  if (major === 4) return cluster ? 7 : 6;
  return cluster ? 7 : 5;
}

/** Which server an InstanceType code stands for (19/20: Valkey; the rest: Redis). */
export function serverOfType(instanceType: number): "redis" | "valkey" {
  return instanceType >= 19 && instanceType <= 22 ? "valkey" : "redis";
}
