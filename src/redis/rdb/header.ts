// Streaming RDB inspector: fed the snapshot as it arrives (in any chunking), it reads the header and the AUX
// fields (enough for a catalogue entry) and verifies the trailer (0xFF + CRC-64 of everything before the CRC).
// It does not decode keys: a full structural check is redis-check-rdb's job; the CRC already proves the bytes
// are exactly what the server wrote.
//
// Its errors are the engine's one error type (RdbParseError: offset and what was expected there) and its
// version bounds and opcodes the engine's constants, so a version the reader learns the inspector accepts too.
import { Opcode, RDB_CHECKSUM_SINCE, RDB_MAX_KNOWN_VERSION, RDB_MIN_VERSION } from "./constants";
import { Crc64, crc64Equals, crc64Init, crc64ToHex, crc64Update } from "./crc64";
import { RdbParseError } from "./errors";
import { lzfDecompress as lzfDecompressRange, LzfError } from "./lzf";

const OP_AUX = Opcode.AUX;
const OP_EOF = Opcode.EOF;
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

  /** Feeds the next chunk. Throws RdbParseError as soon as the header is known to be wrong. */
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
      if (this.head.length < 9) throw new RdbParseError(this.bytes, "the 9-byte header", `truncated RDB: only ${this.bytes} bytes, header incomplete`);
      throw new RdbParseError(this.bytes, "the rest of the AUX section", `truncated RDB: stream ended inside the AUX section after ${this.bytes} bytes`);
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
        throw new RdbParseError(this.bytes - 8, `CRC-64 ${crc64ToHex(this.crc)}`, `RDB checksum mismatch: file says ${storedHex}, computed ${crc64ToHex(this.crc)} over ${this.bytes - 8} bytes (corrupt payload)`);
      }
    }
    const redisVersion = this.aux["redis-ver"];
    const valkey = this.aux["valkey-ver"];
    const server = valkey ? { name: "valkey" as const, version: valkey } : redisVersion ? { name: "redis" as const, version: redisVersion } : undefined;
    return { rdbVersion: this.version, aux: { ...this.aux }, redisVersion, server, checksum, bytes: this.bytes };
  }

  private missingEof(): RdbParseError {
    const at = Math.max(0, this.bytes - (this.version < RDB_CHECKSUM_SINCE ? 1 : 9));
    return new RdbParseError(at, "the 0xFF end-of-file opcode", `truncated RDB: no 0xFF end-of-file opcode before the checksum (${this.bytes} bytes received)`);
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
        throw new RdbParseError(0, '"REDIS"', `not an RDB file: bad magic ${JSON.stringify(head.toString("latin1", 0, magicLen))}`);
      }
      if (head.length < 9) {
        this.head = Buffer.from(head);
        return;
      }
      const digits = head.toString("latin1", 5, 9);
      if (!/^[0-9]{4}$/.test(digits)) throw new RdbParseError(5, "a 4-digit version", `not an RDB file: bad version field ${JSON.stringify(digits)}`);
      const v = Number(digits);
      if (v < RDB_MIN_VERSION || v > RDB_MAX_KNOWN_VERSION) {
        throw new RdbParseError(5, `an RDB version between ${RDB_MIN_VERSION} and ${RDB_MAX_KNOWN_VERSION}`, `unsupported RDB version ${v} (this build reads ${RDB_MIN_VERSION}..${RDB_MAX_KNOWN_VERSION})`);
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
    if (head.length > MAX_HEADER_BYTES) throw new RdbParseError(MAX_HEADER_BYTES, "the end of the AUX section", `RDB AUX section exceeds ${MAX_HEADER_BYTES} bytes; not a valid RDB`);
    this.head = head === chunk ? Buffer.from(chunk) : head;
  }
}

/** Cursor over the buffered header (which starts at the stream's byte 0); throws NEED_MORE when a read runs past the end. */
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
          if (v > BigInt(MAX_HEADER_BYTES)) throw new RdbParseError(this.pos - 9, "a plausible AUX field length", `RDB AUX field length ${v} is implausible`);
          return { len: Number(v), special: false };
        }
        throw new RdbParseError(this.pos - 1, "a length encoding", `bad RDB length encoding 0x${first.toString(16)}`);
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
        if (clen.special || ulen.special) throw new RdbParseError(this.pos, "plain lengths", "bad LZF string header");
        if (ulen.len > MAX_HEADER_BYTES) throw new RdbParseError(this.pos, "a plausible AUX field length", `RDB AUX field length ${ulen.len} is implausible`);
        const at = this.pos;
        return lzfDecompress(this.raw(clen.len), ulen.len, at).toString("utf8");
      }
      default:
        throw new RdbParseError(this.pos - 1, "a string encoding (0..3)", `unknown RDB string encoding ${len}`);
    }
  }

  private raw(len: number): Buffer {
    if (len > MAX_HEADER_BYTES) throw new RdbParseError(this.pos, "a plausible AUX field length", `RDB AUX field length ${len} is implausible`);
    this.need(len);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
}

/** LZF decompression of a whole buffer (rdb/lzf.ts) found at stream offset `at`, its failures as RdbParseErrors. */
export function lzfDecompress(input: Buffer, outLen: number, at = 0): Buffer {
  try {
    return lzfDecompressRange(input, 0, input.length, outLen);
  } catch (err) {
    if (err instanceof LzfError) throw new RdbParseError(at, "valid LZF data", `corrupt LZF data (${err.message})`);
    throw err;
  }
}

/** Inspects a whole in-memory RDB (tests, small files). */
export function inspectRdb(buf: Buffer): RdbInfo {
  const i = new RdbInspector();
  i.update(buf);
  return i.end();
}
