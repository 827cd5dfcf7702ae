// Streaming (push) RDB parser. Feed it the snapshot as it arrives, in any chunking, and it calls a visitor for
// every record: header, AUX fields, database selectors, resize hints, functions, module data, and every key
// with its value element by element. It is built for the capture hot path:
//
//  - Resumable: parsing proceeds in small atomic "units" (an opcode record, a key header with the start of its
//    value, one collection element, one compact blob, one stream PEL entry...). When a unit is cut by the end
//    of a chunk, the parser rewinds to the unit start and waits until enough bytes have arrived (it knows how
//    many: `need`), then joins the pieces once. No unit is bigger than one element or one compact blob, so
//    memory stays bounded on huge keys: a 1 GB list is read one quicklist node or one element at a time.
//  - Huge strings are streamed: a string value longer than `stringPieceBytes` is delivered in pieces through
//    onStringPiece (LZF-compressed ones through a streaming decompressor with an 8 KB window).
//  - No per-byte calls on hot paths; elements are views (subarrays) of the fed chunks, not copies.
//  - Every error is an RdbParseError naming the absolute byte offset and what was expected there.
//
// Buffer lifetime: Buffers handed to callbacks are views of the fed chunks or of internal buffers. Treat them
// as valid only during the callback (copy what you keep). Exception: KeyHeader.key stays valid until onKeyEnd
// returns (the reader copies it if the value spans several feed() calls).
import { crc64Equals, crc64Init, crc64ToHex, crc64Update, Crc64 } from "./crc64";
import { BlobError } from "./blob-error";
import { flavorOfVersion, moduleNameFromId, ModuleOpcode, Opcode, RDB_MAX_KNOWN_VERSION, RdbFlavor, RdbType, TYPE_DESC, typeTable, TypeDesc, VALKEY_RDB_VERSION, ValkeyRdbType, ValueKind } from "./constants";
import { Elements, intBuf } from "./elements";
import { RdbParseError } from "./errors";
import { decodeIntset } from "./intset";
import { decodeListpack } from "./listpack";
import { LzfError, lzfDecompress, LzfStream } from "./lzf";
import { forEachStreamEntry, readRawStreamId, StreamId } from "./stream";
import { decodeZiplist } from "./ziplist";
import { decodeZipmap } from "./zipmap";

export interface ModuleInfo {
  /** The 64-bit module type id as written (name in the high 54 bits, encoding version in the low 10). */
  id: bigint;
  /** The 9-character module type name, e.g. "ReJSON-RL" or "MBbloom--". */
  name: string;
  encVersion: number;
}

export interface KeyHeader {
  db: number;
  /** The key name. Valid until onKeyEnd returns. */
  key: Buffer;
  type: ValueKind;
  /** The RDB type byte (RdbType.*): tells the on-disk encoding. */
  rdbType: number;
  /** Encoding name for reports: listpack, ziplist, intset, quicklist, hashtable, skiplist, ... */
  encoding: string;
  /** Absolute expire time in unix ms, or -1 when the key does not expire. */
  expireAt: number;
  /** LRU idle seconds (OBJECT IDLETIME) when the server saves it (maxmemory-policy *lru), else -1. */
  lruIdle: number;
  /** LFU counter when the server saves it (maxmemory-policy *lfu), else -1. */
  lfuFreq: number;
  /** Absolute offset of the key's type byte. */
  offset: number;
  /**
   * Number of elements (list items, set members, zset members, hash fields) when the encoding states it up
   * front; for a quicklist, the number of nodes; for a stream, the number of listpack nodes; -1 for strings.
   */
  sizeHint: number;
  /** Set for module values. */
  module?: ModuleInfo;
  /** Redis 8.6+ (RDB 13): the 32-bit class specs of the module key metadata (opcode KEY_META) before the key. */
  keyMeta?: number[];
}

/** Redis 8.6 (RDB 13, type STREAM_LISTPACKS_4): the stream's XADD IDMP configuration and counters. */
export interface StreamIdmp {
  /** Seconds an iid is remembered (XCFGSET IDMP-DURATION). */
  duration: number;
  /** iids remembered per producer at most (XCFGSET IDMP-MAXSIZE). */
  maxSize: number;
  /** Producers (pids) with remembered iids (onStreamIdmpProducer calls follow). */
  producers: number;
}

export interface StreamIdmpCounters {
  iidsAdded: number;
  iidsDuplicates: number;
}

/** Valkey 9 (RDB 80, opcode SLOT_IMPORT): an atomic slot migration in progress on a cluster node. */
export interface SlotImport {
  jobName: Buffer;
  ranges: Array<[number, number]>;
}

export interface StreamMeta {
  /** Number of live entries (XLEN). */
  length: number;
  lastId: StreamId;
  /** RDB stream v2+ (Redis 7.0+); undefined for older streams. */
  firstId?: StreamId;
  maxDeletedId?: StreamId;
  entriesAdded?: number;
  groups: number;
}

export interface StreamGroup {
  name: Buffer;
  lastId: StreamId;
  /** Logical reads counter (Redis 7.0+); -1 when unknown/invalid; undefined for RDB streams v1. */
  entriesRead?: number;
  /** Size of the group's PEL (onStreamPending calls that follow). */
  pending: number;
}

export interface StreamPendingEntry {
  id: StreamId;
  /** Unix ms of the last delivery. */
  deliveryTime: number;
  deliveryCount: number;
}

export interface StreamConsumer {
  name: Buffer;
  seenTime: number;
  /** Redis 7.2+ (stream v3); undefined before. */
  activeTime?: number;
  pending: number;
}

export interface RdbSummary {
  rdbVersion: number;
  /** "valkey" for a VALKEY-magic file (Valkey 9, RDB 80), else "redis" (Redis, and Valkey up to 8.x). */
  flavor: RdbFlavor;
  aux: Record<string, string>;
  keys: number;
  /** Bytes fed, trailing bytes included. */
  bytes: number;
  /** 'absent' for RDB < 5 (no trailer), 'disabled' when the stored CRC is 0 (rdbchecksum no). */
  checksum: "ok" | "disabled" | "absent" | "not-checked";
  /** Bytes after the CRC trailer (e.g. the AOF tail of an aof-use-rdb-preamble file). */
  trailingBytes: number;
  functions: number;
  moduleAux: number;
}

/**
 * Callbacks; all optional. Per key: onKeyStart, then the value callbacks of its type, then onKeyEnd. Return
 * false from onKeyStart to skip the value (no value callbacks; compact blobs are then not decoded, LZF not
 * decompressed); onKeyEnd is still called.
 */
export interface RdbVisitor {
  onHeader?(rdbVersion: number, flavor: RdbFlavor): void;
  onAux?(key: string, value: Buffer): void;
  onDb?(db: number): void;
  onResizeDb?(dbSize: number, expiresSize: number): void;
  /** Redis 7.4 cluster RDBs: per-slot key counts (a sizing hint). */
  onSlotInfo?(slot: number, size: number, expiresSize: number): void;
  /** Valkey 9 cluster RDBs: a slot import in progress (cluster state, not data). */
  onSlotImport?(s: SlotImport): void;
  /** Redis 8.6+: one class of module key metadata of the next key (class spec, module-opcode value with EOF). */
  onKeyMeta?(classSpec: number, raw: Buffer): void;
  /** A function library (FUNCTION LOAD payload, Redis 7.0+). */
  onFunction?(code: Buffer): void;
  /** Module auxiliary data (not tied to a key): the opaque serialization after the `when` field. */
  onModuleAux?(module: ModuleInfo, when: number, raw: Buffer): void;
  onKeyStart?(key: KeyHeader): boolean | void;
  /** A whole string value (always for strings up to stringPieceBytes, or when onStringPiece is absent). */
  onString?(value: Buffer): void;
  /** A piece of a string longer than stringPieceBytes; pieces arrive in order, `offset` is where this one starts. */
  onStringPiece?(piece: Buffer, offset: number, total: number): void;
  onListItem?(item: Buffer): void;
  onSetMember?(member: Buffer): void;
  onZsetMember?(member: Buffer, score: number): void;
  /** expireAt: absolute unix ms of the field's TTL (Redis 7.4 HEXPIRE), -1 for none. */
  onHashField?(field: Buffer, value: Buffer, expireAt: number): void;
  /** A raw stream node (master ID, listpack) as stored, for writers that pass nodes through. */
  onStreamNode?(masterId: Buffer, listpack: Buffer): void;
  /** A live stream entry; fields alternates field, value. */
  onStreamEntry?(id: StreamId, fields: Buffer[]): void;
  onStreamMeta?(meta: StreamMeta): void;
  onStreamGroup?(group: StreamGroup): void;
  /** An entry of the last reported group's PEL. */
  onStreamPending?(entry: StreamPendingEntry): void;
  /** Number of consumers of the last reported group (after its PEL, before its consumers). */
  onStreamConsumerCount?(count: number): void;
  onStreamConsumer?(consumer: StreamConsumer): void;
  /** An ID owned by the last reported consumer. */
  onStreamConsumerPending?(id: StreamId): void;
  /** Redis 8.6 streams (type 26), after the groups: the IDMP configuration. */
  onStreamIdmp?(idmp: StreamIdmp): void;
  /** A producer of the IDMP history and how many iids of it follow (onStreamIdmpEntry). */
  onStreamIdmpProducer?(pid: Buffer, iids: number): void;
  onStreamIdmpEntry?(iid: Buffer, id: StreamId): void;
  /** The last record of a type-26 stream. */
  onStreamIdmpCounters?(c: StreamIdmpCounters): void;
  /** Pieces of a module value's opaque serialization (everything after the module id, EOF opcode included). */
  onModuleData?(raw: Buffer): void;
  onKeyEnd?(key: KeyHeader): void;
  onEnd?(summary: RdbSummary): void;
}

export interface RdbReaderOptions {
  /** Verify the CRC-64 trailer (default true). */
  verifyChecksum?: boolean;
  /** Strings longer than this go to onStringPiece in pieces when the visitor has it. Default 1 MiB. */
  stringPieceBytes?: number;
}

/** Thrown internally when a unit needs more bytes than are buffered; never escapes the reader. */
const NEED_MORE = Symbol("rdb: need more bytes");
const EMPTY = Buffer.alloc(0);
/** Bytes of the next chunk joined to a cut unit's leftover (see bridge()). */
const BRIDGE = 2048;
const MAX_SAFE_HI = 0x1fffff; // high 32 bits of Number.MAX_SAFE_INTEGER
const U64_MAX = (1n << 64n) - 1n;

const enum S {
  HEADER,
  OP,
  CHECKSUM,
  DONE,
  FAILED,
  STR_PIECES,
  STR_LZF_PIECES,
  ELEMS,
  QL_NODES,
  STREAM_NODES,
  STREAM_META,
  STREAM_GROUP,
  STREAM_GROUP_PEL,
  STREAM_CONSUMERS,
  STREAM_CONSUMER,
  STREAM_CONSUMER_PEL,
  STREAM_IDMP,
  STREAM_IDMP_PRODUCER,
  STREAM_IDMP_ENTRIES,
  STREAM_IDMP_END,
  MODULE,
  MODULE_AUX,
  DUMP_TYPE,
  DUMP_END,
}

const T = RdbType;
/** Internal dispatch code of Valkey's HASH_2 (type byte 22 in a VALKEY file), apart from Redis's type 22. */
const VK_HASH_2 = 0x100 | ValkeyRdbType.HASH_2;

export class RdbReader {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Absolute offset of buf[0]. */
  private base = 0;
  /** Start of the unit being parsed (rewind point). */
  private mark = 0;
  /** Bytes needed from `mark` before the current unit can complete. */
  private need = 0;
  private parts: Buffer[] = [];
  private partsLen = 0;
  private fed = 0;
  private peak = 0;

  private state: S = S.HEADER;
  private failure: Error | undefined;
  private version = 0;
  private flavor: RdbFlavor = "redis";
  private types: Record<number, TypeDesc> = TYPE_DESC;
  private readonly aux: Record<string, string> = {};
  private db = 0;
  private keys = 0;
  private functions = 0;
  private moduleAuxCount = 0;
  private trailing = 0;
  private checksum: RdbSummary["checksum"] = "not-checked";

  private readonly crc: Crc64 = crc64Init();
  private crcAt = 0; // absolute offset up to which the CRC has been computed
  private crcDone = false;

  // pending per-key attributes set by opcodes before the type byte
  private pendingExpire = -1;
  private pendingIdle = -1;
  private pendingFreq = -1;
  private pendingMeta: number[] | undefined;

  // current value
  private cur: KeyHeader | undefined;
  private keyCopied = false;
  private skip = false;
  private remaining = 0;
  private rdbType = 0;
  private minExpire = 0;
  private strTotal = 0;
  private strDone = 0;
  private lzf: LzfStream | undefined;
  private lzfRemaining = 0;
  private groupsRemaining = 0;
  private consumersRemaining = 0;
  private moduleAux: { info: ModuleInfo; when: number; parts: Buffer[] } | undefined;
  private readonly elems = new Elements();

  private readonly v: RdbVisitor;
  private readonly verify: boolean;
  private readonly pieceBytes: number;
  private readonly wantStreamEntries: boolean;

  constructor(visitor: RdbVisitor, opts: RdbReaderOptions = {}) {
    this.v = visitor;
    this.verify = opts.verifyChecksum ?? true;
    this.pieceBytes = Math.max(opts.stringPieceBytes ?? 1 << 20, 1 << 16);
    this.wantStreamEntries = typeof visitor.onStreamEntry === "function";
  }

  /**
   * Parses a DUMP payload (value serialization + 2-byte RDB version + CRC-64) with the same visitor: one key
   * whose name is `key` (default empty). Throws RdbParseError on a bad footer, CRC or value.
   */
  static parseDumpPayload(payload: Buffer, visitor: RdbVisitor, key: Buffer = EMPTY, opts: RdbReaderOptions = {}): { rdbVersion: number } {
    if (payload.length < 11) throw new RdbParseError(0, "a DUMP payload (value + 2-byte version + 8-byte CRC)", `payload of ${payload.length} bytes is too short`);
    const body = payload.length - 10;
    const version = payload.readUInt16LE(body);
    if (version > RDB_MAX_KNOWN_VERSION && version !== VALKEY_RDB_VERSION) {
      throw new RdbParseError(body, `an RDB version <= ${RDB_MAX_KNOWN_VERSION} (Redis) or ${VALKEY_RDB_VERSION} (Valkey 9)`, `unsupported DUMP payload RDB version ${version} (written by a newer server than this reader knows)`);
    }
    const crc = crc64Update(crc64Init(), payload, 0, body + 2);
    const stored = payload.subarray(body + 2);
    if (!stored.every((b) => b === 0) && !crc64Equals(crc, stored)) {
      throw new RdbParseError(body + 2, `CRC-64 ${crc64ToHex(crc)}`, `DUMP payload checksum mismatch (stored ${Buffer.from(stored).reverse().toString("hex")})`);
    }
    const r = new RdbReader(visitor, { ...opts, verifyChecksum: false });
    r.setVersion(version, flavorOfVersion(version));
    r.state = S.DUMP_TYPE;
    r.dumpKey = key;
    r.dumpMode = true;
    r.feed(payload.subarray(0, body));
    if ((r.state as S) !== S.DUMP_END) r.fail(r.truncated());
    return { rdbVersion: version };
  }

  private dumpKey: Buffer = EMPTY;
  private dumpMode = false;

  /** Total bytes fed so far. */
  get bytesFed(): number {
    return this.fed;
  }

  /**
   * The most bytes the reader ever held between feed() calls (an unfinished unit plus chunks waiting for it):
   * the memory bound for huge keys is this plus one chunk.
   */
  get peakBuffered(): number {
    return this.peak;
  }

  /** Absolute offset of the parse position (in onKeyEnd: the end of the value). */
  get offset(): number {
    return this.base + this.pos;
  }

  /** The RDB version from the header (0 until the header has been read). */
  get rdbVersion(): number {
    return this.version;
  }

  /** Whose numbering the file uses (known once the header has been read). */
  get rdbFlavor(): RdbFlavor {
    return this.flavor;
  }

  private setVersion(v: number, flavor: RdbFlavor): void {
    this.version = v;
    this.flavor = flavor;
    this.types = typeTable(flavor);
  }

  /** "RDB version 12 (REDIS0012)", "RDB version 80 (VALKEY080)": how errors name the file's format. */
  private formatName(): string {
    const magic = this.dumpMode ? "a DUMP payload" : this.flavor === "valkey" ? `VALKEY${String(this.version).padStart(3, "0")}` : `REDIS${String(this.version).padStart(4, "0")}`;
    return `RDB version ${this.version} (${magic})`;
  }

  /** Feeds the next chunk. Throws RdbParseError (and stays failed) on malformed input. */
  feed(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    this.fed += chunk.length;
    if (this.state === S.DONE) {
      this.trailing += chunk.length;
      return;
    }
    const left = this.buf.length - this.pos;
    if (left > 0) {
      this.parts.push(chunk);
      this.partsLen += chunk.length;
      if (left + this.partsLen > this.peak) this.peak = left + this.partsLen;
      if (left + this.partsLen < this.need) return; // still not enough for the pending unit: no copying yet
      this.flushCrc();
      if (this.parts.length === 1 && chunk.length >= BRIDGE * 4 && this.need <= left + BRIDGE / 2) {
        this.bridge(left, chunk);
        return;
      }
      const joined = Buffer.concat([this.buf.subarray(this.pos), ...this.parts], left + this.partsLen);
      this.base += this.pos;
      this.buf = joined;
      this.pos = 0;
      this.parts = [];
      this.partsLen = 0;
    } else {
      this.flushCrc();
      this.base += this.buf.length;
      this.buf = chunk;
      this.pos = 0;
    }
    this.run();
  }

  /**
   * A unit was cut by the end of the previous chunk. Rather than copying the leftover and the whole new chunk
   * into one buffer (a 64 KB copy and allocation per chunk), parse through a small bridge (leftover + the
   * start of the chunk) until the parse position has left the leftover, then continue in the chunk itself.
   */
  private bridge(left: number, chunk: Buffer): void {
    const joined = Buffer.concat([this.buf.subarray(this.pos), chunk.subarray(0, BRIDGE)], left + BRIDGE);
    this.base += this.pos;
    this.buf = joined;
    this.pos = 0;
    this.parts = [];
    this.partsLen = 0;
    this.run();
    if (this.state === S.FAILED) return;
    this.flushCrc();
    if (this.pos >= left) {
      // everything still unparsed is in the chunk
      this.base += left;
      this.pos -= left;
      this.buf = chunk;
    } else {
      // the unit that began in the leftover is longer than the bridge: join for real
      const rest = Buffer.concat([this.buf.subarray(this.pos), chunk.subarray(BRIDGE)]);
      this.base += this.pos;
      this.pos = 0;
      this.buf = rest;
    }
    this.run();
  }

  /** Call after the last chunk. Throws RdbParseError if the RDB is incomplete or its checksum is wrong. */
  end(): RdbSummary {
    if (this.failure) throw this.failure;
    if (this.state !== S.DONE) this.fail(this.truncated());
    const summary: RdbSummary = {
      rdbVersion: this.version,
      flavor: this.flavor,
      aux: { ...this.aux },
      keys: this.keys,
      bytes: this.fed,
      checksum: this.checksum,
      trailingBytes: this.trailing,
      functions: this.functions,
      moduleAux: this.moduleAuxCount,
    };
    this.v.onEnd?.(summary);
    return summary;
  }

  // ---------------------------------------------------------------- driver

  private run(): void {
    try {
      for (;;) {
        this.mark = this.pos;
        if (!this.step()) break;
      }
    } catch (err) {
      if (err !== NEED_MORE) {
        if (err instanceof BlobError) this.fail(this.blobError(err));
        if (err instanceof LzfError) this.fail(new RdbParseError(this.base + this.mark, "valid LZF data", err.message));
        this.fail(err as Error);
      }
      this.pos = this.mark;
    }
    this.flushCrc();
    if (this.cur && !this.keyCopied && this.state !== S.OP) {
      // The value continues in later chunks: keep the key name valid without pinning the chunk.
      this.cur.key = Buffer.from(this.cur.key);
      this.keyCopied = true;
    }
  }

  private fail(err: Error): never {
    this.state = S.FAILED;
    this.failure = err;
    throw err;
  }

  private err(expected: string, detail: string, at = this.pos): RdbParseError {
    return new RdbParseError(this.base + at, expected, detail);
  }

  /** Blob errors carry an offset inside the blob; the unit's blob started at `blobAt` (see readBlob). */
  private blobAt = 0;
  private blobCompressed = false;
  private blobError(e: BlobError): RdbParseError {
    const what = this.types[this.rdbType & 0xff]?.encoding ?? "blob";
    const key = this.cur ? ` of key ${JSON.stringify(this.cur.key.toString("latin1").slice(0, 100))}` : "";
    if (this.blobCompressed) {
      return new RdbParseError(this.base + this.blobAt, e.expected, `${e.message} in the LZF-compressed ${what}${key} (byte ${e.inner} after decompression)`);
    }
    return new RdbParseError(this.base + this.blobAt + e.inner, e.expected, `${e.message} in the ${what}${key}`);
  }

  private truncated(): RdbParseError {
    const at = this.base + this.buf.length + this.partsLen;
    const key = this.cur ? ` inside the value of key ${JSON.stringify(this.cur.key.toString("latin1").slice(0, 100))} (type byte at offset ${this.cur.offset})` : "";
    const what = this.state === S.HEADER ? "the RDB header" : this.state === S.CHECKSUM ? "the 8-byte CRC-64 trailer" : this.state === S.OP ? "an opcode or value type (no 0xFF end-of-file opcode yet)" : "the rest of the value";
    return new RdbParseError(at, what, `RDB stream ended early after ${at} bytes${key}`);
  }

  private flushCrc(): void {
    if (!this.verify || this.crcDone) return;
    const upto = this.base + this.pos;
    if (upto > this.crcAt) {
      crc64Update(this.crc, this.buf, this.crcAt - this.base, this.pos);
      this.crcAt = upto;
    }
  }

  /** Records that the unit needs bytes up to buf offset `end` and unwinds. */
  private short(end: number): never {
    this.need = end - this.mark;
    throw NEED_MORE;
  }

  // ---------------------------------------------------------------- primitive reads (throw NEED_MORE)

  private u8(): number {
    if (this.pos >= this.buf.length) this.short(this.pos + 1);
    return this.buf[this.pos++];
  }

  private raw(n: number): Buffer {
    const end = this.pos + n;
    if (end > this.buf.length) this.short(end);
    const s = this.buf.subarray(this.pos, end);
    this.pos = end;
    return s;
  }

  private i64le(): number {
    const p = this.pos;
    if (p + 8 > this.buf.length) this.short(p + 8);
    this.pos = p + 8;
    const lo = this.buf.readUInt32LE(p);
    const hi = this.buf.readInt32LE(p + 4);
    return hi * 4294967296 + lo;
  }

  /** An RDB length (not a special encoding). */
  private len(what: string): number {
    const b = this.buf;
    const p = this.pos;
    if (p >= b.length) this.short(p + 1);
    const c = b[p];
    switch (c >> 6) {
      case 0:
        this.pos = p + 1;
        return c & 0x3f;
      case 1:
        if (p + 2 > b.length) this.short(p + 2);
        this.pos = p + 2;
        return ((c & 0x3f) << 8) | b[p + 1];
      case 2:
        if (c === 0x80) {
          if (p + 5 > b.length) this.short(p + 5);
          this.pos = p + 5;
          return b.readUInt32BE(p + 1);
        }
        if (c === 0x81) {
          if (p + 9 > b.length) this.short(p + 9);
          const hi = b.readUInt32BE(p + 1);
          if (hi > MAX_SAFE_HI) throw this.err(what, `length ${b.readBigUInt64BE(p + 1)} is implausibly large`, p);
          this.pos = p + 9;
          return hi * 4294967296 + b.readUInt32BE(p + 5);
        }
        throw this.err(what, `invalid length encoding byte 0x${c.toString(16)}`, p);
      default:
        throw this.err(what, `a string encoding (0x${c.toString(16)}) where a length belongs`, p);
    }
  }

  /** An RDB length as an unsigned 64-bit bigint (stream IDs, module integers). */
  private lenBig(what: string): bigint {
    const b = this.buf;
    const p = this.pos;
    if (p >= b.length) this.short(p + 1);
    if (b[p] === 0x81) {
      if (p + 9 > b.length) this.short(p + 9);
      this.pos = p + 9;
      return b.readBigUInt64BE(p + 1);
    }
    return BigInt(this.len(what));
  }

  /**
   * Reads a string (plain, integer-encoded or LZF). Returns a view of the buffer for plain strings. When
   * `skipping`, LZF data is not decompressed and EMPTY is returned for it.
   */
  private str(what: string, skipping = false): Buffer {
    const b = this.buf;
    let p = this.pos;
    const end = b.length;
    if (p >= end) this.short(p + 1);
    const c = b[p];
    let n: number;
    switch (c >> 6) {
      case 0:
        n = c & 0x3f;
        p += 1;
        break;
      case 1:
        if (p + 2 > end) this.short(p + 2);
        n = ((c & 0x3f) << 8) | b[p + 1];
        p += 2;
        break;
      case 2:
        this.pos = p;
        n = this.len(what);
        p = this.pos;
        break;
      default:
        return this.specialStr(c & 0x3f, what, skipping);
    }
    const e = p + n;
    if (e > end) this.short(e);
    this.pos = e;
    return b.subarray(p, e);
  }

  private specialStr(enc: number, what: string, skipping: boolean): Buffer {
    const b = this.buf;
    const p = this.pos;
    switch (enc) {
      case 0:
        if (p + 2 > b.length) this.short(p + 2);
        this.pos = p + 2;
        return intBuf(b.readInt8(p + 1));
      case 1:
        if (p + 3 > b.length) this.short(p + 3);
        this.pos = p + 3;
        return intBuf(b.readInt16LE(p + 1));
      case 2:
        if (p + 5 > b.length) this.short(p + 5);
        this.pos = p + 5;
        return intBuf(b.readInt32LE(p + 1));
      case 3: {
        this.pos = p + 1;
        const clen = this.len(`the compressed length of ${what}`);
        const ulen = this.len(`the uncompressed length of ${what}`);
        const start = this.pos;
        if (start + clen > b.length) this.short(start + clen);
        this.pos = start + clen;
        if (skipping) return EMPTY;
        try {
          return lzfDecompress(b, start, start + clen, ulen);
        } catch (e) {
          if (e instanceof LzfError) throw this.err(`valid LZF data for ${what}`, e.message, start + e.inputOffset);
          throw e;
        }
      }
      default:
        throw this.err(what, `unknown string encoding ${enc}`, p);
    }
  }

  /** A compact blob (ziplist/listpack/intset/zipmap) as one string; remembers where it is for errors. */
  private blob(what: string, skipping: boolean): Buffer {
    const c = this.pos < this.buf.length ? this.buf[this.pos] : -1;
    this.blobCompressed = c === 0xc3;
    const s = this.str(what, skipping);
    // For a plain blob, the data starts after its length header: end minus length.
    this.blobAt = this.blobCompressed ? this.mark : this.pos - s.length;
    return s;
  }

  /** Old-style (RDB_TYPE_ZSET) double: 1 length byte, then ASCII; 253/254/255 = nan/+inf/-inf. */
  private oldDouble(): number {
    const n = this.u8();
    if (n === 255) return -Infinity;
    if (n === 254) return Infinity;
    if (n === 253) return NaN;
    const s = this.raw(n).toString("latin1");
    const v = Number(s);
    if (Number.isNaN(v)) {
      const f = parseFloat(s);
      if (Number.isNaN(f) && !/nan/i.test(s)) throw this.err("an ASCII double", `invalid score ${JSON.stringify(s)}`, this.pos - n);
      return /^\s*[+-]?inf/i.test(s) ? (s.includes("-") ? -Infinity : Infinity) : f;
    }
    return v;
  }

  private doubleLE(): number {
    const p = this.pos;
    if (p + 8 > this.buf.length) this.short(p + 8);
    this.pos = p + 8;
    return this.buf.readDoubleLE(p);
  }

  private streamId(what: string): StreamId {
    return { ms: this.lenBig(`${what} (ms)`), seq: this.lenBig(`${what} (seq)`) };
  }

  private count(what: string): number {
    return this.len(what);
  }

  // ---------------------------------------------------------------- the state machine

  /** Parses one unit; returns false when it must wait for more bytes without rewinding. */
  private step(): boolean {
    switch (this.state) {
      case S.OP:
        return this.opcode();
      case S.ELEMS:
        return this.elements();
      case S.QL_NODES:
        return this.quicklistNodes();
      case S.STR_PIECES:
        return this.stringPieces();
      case S.STR_LZF_PIECES:
        return this.lzfPieces();
      case S.STREAM_NODES:
        return this.streamNodes();
      case S.STREAM_META:
        return this.streamMeta();
      case S.STREAM_GROUP:
        return this.streamGroup();
      case S.STREAM_GROUP_PEL:
        return this.streamGroupPel();
      case S.STREAM_CONSUMERS:
        return this.streamConsumers();
      case S.STREAM_CONSUMER:
        return this.streamConsumer();
      case S.STREAM_CONSUMER_PEL:
        return this.streamConsumerPel();
      case S.STREAM_IDMP:
        return this.streamIdmp();
      case S.STREAM_IDMP_PRODUCER:
        return this.streamIdmpProducer();
      case S.STREAM_IDMP_ENTRIES:
        return this.streamIdmpEntries();
      case S.STREAM_IDMP_END:
        return this.streamIdmpEnd();
      case S.MODULE:
      case S.MODULE_AUX:
        return this.moduleOpcodes();
      case S.HEADER:
        return this.header();
      case S.CHECKSUM:
        return this.trailer();
      case S.DUMP_TYPE: {
        const type = this.u8();
        if (type === Opcode.KEY_META && this.flavor === "redis" && this.version >= 13) {
          this.keyMeta(); // Redis 8.6: [KEY_META] TYPE VALUE
          return true;
        }
        this.startValue(type, this.dumpKey, this.mark);
        return true;
      }
      case S.DUMP_END:
        if (this.pos < this.buf.length) throw this.err("the DUMP payload footer", `${this.buf.length - this.pos} unexpected bytes after the value`);
        return false;
      case S.DONE:
        this.trailing += this.buf.length - this.pos;
        this.pos = this.buf.length;
        return false;
      default:
        return false;
    }
  }

  private header(): boolean {
    const h = this.raw(9);
    if (h.toString("latin1", 0, 6) === "VALKEY") {
      // Valkey 9+: "VALKEY" and a 3-digit version (80 = Valkey 9.0)
      const digits = h.toString("latin1", 6, 9);
      if (!/^[0-9]{3}$/.test(digits)) throw this.err("a 3-digit Valkey RDB version", `bad version field ${JSON.stringify(digits)}`, 6);
      const v = Number(digits);
      if (v !== VALKEY_RDB_VERSION) {
        throw this.err(`Valkey RDB version ${VALKEY_RDB_VERSION}`, `unsupported Valkey RDB version ${v} (VALKEY${digits}${v > VALKEY_RDB_VERSION ? ": written by a newer server than this reader knows" : ""})`, 6);
      }
      this.setVersion(v, "valkey");
    } else {
      if (h.toString("latin1", 0, 5) !== "REDIS") {
        throw this.err('the magic "REDIS" or "VALKEY"', `not an RDB file: starts with ${JSON.stringify(h.toString("latin1", 0, 6))}`, 0);
      }
      const digits = h.toString("latin1", 5, 9);
      if (!/^[0-9]{4}$/.test(digits)) throw this.err("a 4-digit RDB version", `bad version field ${JSON.stringify(digits)}`, 5);
      const v = Number(digits);
      if (v < 1 || v > RDB_MAX_KNOWN_VERSION) {
        throw this.err(`an RDB version between 1 and ${RDB_MAX_KNOWN_VERSION}`, `unsupported RDB version ${v} (REDIS${digits}: written by a newer server than this reader knows)`, 5);
      }
      this.setVersion(v, "redis");
    }
    this.state = S.OP;
    this.v.onHeader?.(this.version, this.flavor);
    return true;
  }

  private trailer(): boolean {
    const stored = this.raw(8);
    if (stored.every((b) => b === 0)) this.checksum = "disabled";
    else if (!this.verify) this.checksum = "not-checked";
    else if (crc64Equals(this.crc, stored)) this.checksum = "ok";
    else {
      const storedHex = Buffer.from(stored).reverse().toString("hex");
      throw this.err(`CRC-64 ${crc64ToHex(this.crc)}`, `RDB checksum mismatch: the file says ${storedHex} (corrupt data before offset ${this.base + this.mark})`, this.mark);
    }
    this.state = S.DONE;
    return true;
  }

  private opcode(): boolean {
    const type = this.u8();
    if (type < Opcode.KEY_META) {
      this.startValue(type, undefined, this.mark);
      return true;
    }
    switch (type) {
      case Opcode.EXPIRETIME_MS:
        this.pendingExpire = this.i64le();
        return true;
      case Opcode.EXPIRETIME: {
        const p = this.pos;
        if (p + 4 > this.buf.length) this.short(p + 4);
        this.pos = p + 4;
        this.pendingExpire = this.buf.readInt32LE(p) * 1000;
        return true;
      }
      case Opcode.IDLE:
        this.pendingIdle = this.len("an LRU idle time");
        return true;
      case Opcode.FREQ:
        this.pendingFreq = this.u8();
        return true;
      case Opcode.SELECTDB:
        this.db = this.len("a database number");
        this.v.onDb?.(this.db);
        return true;
      case Opcode.RESIZEDB: {
        const size = this.len("the db size hint");
        const expires = this.len("the expires size hint");
        this.v.onResizeDb?.(size, expires);
        return true;
      }
      case Opcode.SLOT_INFO: {
        const slot = this.len("a slot id");
        const size = this.len("the slot size");
        const expires = this.len("the slot expires size");
        this.v.onSlotInfo?.(slot, size, expires);
        return true;
      }
      case Opcode.AUX: {
        const k = this.str("an AUX field name").toString("utf8");
        const val = this.str(`the value of AUX field ${k}`);
        this.aux[k] = val.toString("utf8");
        this.v.onAux?.(k, val);
        return true;
      }
      case Opcode.FUNCTION2: {
        const code = this.str("a function library");
        this.functions++;
        this.v.onFunction?.(code);
        return true;
      }
      case Opcode.KEY_META: // = SLOT_IMPORT: the file's magic says which
        if (this.flavor === "valkey") this.slotImport();
        else if (this.version >= 13) this.keyMeta();
        else throw this.unknownOpcode(type);
        return true;
      case Opcode.FUNCTION_PRE_GA:
        throw this.err("a known opcode", "function library in the Redis 7.0 release-candidate format (opcode 0xF6), which no released server loads", this.mark);
      case Opcode.MODULE_AUX: {
        const id = this.lenBig("a module id");
        const whenOp = this.len("the module aux 'when' opcode");
        if (whenOp !== ModuleOpcode.UINT) throw this.err("module aux 'when' opcode 2 (UINT)", `got ${whenOp}`, this.mark);
        const when = this.len("the module aux 'when'");
        const { name, encVersion } = moduleNameFromId(id);
        this.moduleAux = { info: { id, name, encVersion }, when, parts: [] };
        this.state = S.MODULE_AUX;
        return true;
      }
      case Opcode.EOF:
        this.flushCrc();
        this.crcDone = true;
        if (this.version >= 5) {
          this.state = S.CHECKSUM;
        } else {
          this.checksum = "absent";
          this.state = S.DONE;
        }
        return true;
      default:
        throw this.unknownOpcode(type);
    }
  }

  private unknownOpcode(op: number): RdbParseError {
    return this.err("an opcode or a value type", `unknown opcode 0x${op.toString(16)} (${op}) in an ${this.formatName()} file, which this reader does not know: refused rather than guessed`, this.mark);
  }

  /** Redis RDB 13: [numClasses] then per class a 4-byte class spec and a module-opcode value ending in EOF. */
  private keyMeta(): void {
    const n = this.len("the number of key metadata classes");
    if (n > 32) throw this.err("at most 32 key metadata classes", `${n} key metadata classes`, this.mark + 1);
    const classes: number[] = [];
    const values: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      classes.push(this.raw(4).readUInt32LE(0));
      const start = this.pos;
      this.skipModuleValue("a key metadata value");
      values.push(this.buf.subarray(start, this.pos));
    }
    // the whole record is one unit: callbacks only once it is complete (a rewind would repeat them)
    if (this.v.onKeyMeta) for (let i = 0; i < n; i++) this.v.onKeyMeta(classes[i], values[i]);
    this.pendingMeta = classes;
  }

  /** Module opcodes up to and including EOF, in one unit (key metadata values are a few bytes). */
  private skipModuleValue(what: string): void {
    for (;;) {
      const at = this.pos;
      const op = this.len(`a module opcode in ${what}`);
      if (op === ModuleOpcode.EOF) return;
      this.moduleField(op, at, ` in ${what}`);
    }
  }

  /** Skips the value of one module opcode other than EOF (integer, float, double or string). */
  private moduleField(op: number, at: number, where: string): void {
    switch (op) {
      case ModuleOpcode.SINT:
      case ModuleOpcode.UINT:
        this.lenBig("a module integer");
        break;
      case ModuleOpcode.FLOAT:
        this.raw(4);
        break;
      case ModuleOpcode.DOUBLE:
        this.raw(8);
        break;
      case ModuleOpcode.STRING:
        this.str("a module string", true);
        break;
      default:
        throw this.err("a module opcode (0..5)", `unknown module opcode ${op}${where}`, at);
    }
  }

  /** Valkey 9: a slot import job (name, then slot ranges as start/end pairs). */
  private slotImport(): void {
    const jobName = this.str("a slot import job name");
    const n = this.len("the number of slot ranges");
    if (n > 16384) throw this.err("at most 16384 slot ranges", `${n} slot ranges`, this.mark + 1);
    const ranges: Array<[number, number]> = [];
    for (let i = 0; i < n; i++) ranges.push([this.len("a slot range start"), this.len("a slot range end")]);
    this.v.onSlotImport?.({ jobName, ranges });
  }

  /** Reads the key (unless `dumpKey`) and the start of the value; completes small values right away. */
  private startValue(type: number, dumpKey: Buffer | undefined, typeAt: number): void {
    const desc = this.types[type];
    if (!desc || desc.sinceRdb > this.version) {
      if (type === T.MODULE_PRE_GA) throw this.err("a value type", "module value in the Redis 4.0 release-candidate format (type 6), which cannot be parsed without the module", typeAt);
      // no type of either family is above 127: a high byte is an opcode of a newer format
      const what = type >= 0x80 ? `unknown opcode 0x${type.toString(16)} (${type})` : `unknown value type ${type}`;
      throw this.err("a value type", `${what} in an ${this.formatName()}${this.dumpMode ? "" : " file"}, which this reader does not know: refused rather than guessed`, typeAt);
    }
    const key = dumpKey ?? this.str("a key name");
    const h: KeyHeader = {
      db: this.db,
      key,
      type: desc.kind,
      rdbType: type,
      encoding: desc.encoding,
      expireAt: this.pendingExpire,
      lruIdle: this.pendingIdle,
      lfuFreq: this.pendingFreq,
      offset: this.base + typeAt,
      sizeHint: -1,
    };
    if (this.pendingMeta) h.keyMeta = this.pendingMeta;
    const code = this.flavor === "valkey" && type === ValkeyRdbType.HASH_2 ? VK_HASH_2 : type;
    this.rdbType = code;
    const v = this.v;
    switch (code) {
      case T.STRING: {
        const b = this.buf;
        const p = this.pos;
        if (p >= b.length) this.short(p + 1);
        const c = b[p];
        if (c === 0xc3) {
          // LZF: read the header, then either stream it (huge) or decompress it whole (unless skipped).
          this.pos = p + 1;
          const clen = this.len("the compressed length of a string");
          const ulen = this.len("the uncompressed length of a string");
          if (ulen > this.pieceBytes && v.onStringPiece) { // by output size: zeros compress 100:1
            this.begin(h);
            this.strTotal = ulen;
            this.strDone = 0;
            this.lzfRemaining = clen;
            if (!this.skip) {
              this.lzf = new LzfStream(ulen, (piece) => {
                v.onStringPiece!(piece, this.strDone, this.strTotal);
                this.strDone += piece.length;
              });
            }
            this.state = S.STR_LZF_PIECES;
            return;
          }
          const start = this.pos;
          if (start + clen > b.length) this.short(start + clen);
          this.pos = start + clen;
          this.begin(h);
          if (!this.skip && v.onString) {
            let val: Buffer;
            try {
              val = lzfDecompress(b, start, start + clen, ulen);
            } catch (e) {
              if (e instanceof LzfError) throw this.err("valid LZF data for a string value", e.message, start + e.inputOffset);
              throw e;
            }
            v.onString(val);
          }
          this.finish();
          return;
        }
        if (c >> 6 === 2 && v.onStringPiece) {
          const n = this.len("a string length");
          if (n > this.pieceBytes) {
            this.begin(h);
            this.strTotal = n;
            this.strDone = 0;
            this.state = S.STR_PIECES;
            return;
          }
          this.pos = p;
        }
        const val = this.str("a string value");
        this.begin(h);
        if (!this.skip) v.onString?.(val);
        this.finish();
        return;
      }
      case T.LIST:
      case T.SET:
      case T.ZSET:
      case T.ZSET_2:
      case T.HASH: {
        h.sizeHint = this.len("a collection length");
        this.remaining = h.sizeHint;
        this.begin(h);
        this.afterCount(S.ELEMS);
        return;
      }
      case VK_HASH_2:
        h.sizeHint = this.len("a hash length");
        this.remaining = h.sizeHint;
        this.begin(h);
        this.afterCount(S.ELEMS);
        return;
      case T.HASH_METADATA:
      case T.HASH_METADATA_PRE_GA: {
        this.minExpire = type === T.HASH_METADATA ? this.i64le() : 0;
        h.sizeHint = this.len("a hash length");
        this.remaining = h.sizeHint;
        this.begin(h);
        this.afterCount(S.ELEMS);
        return;
      }
      case T.LIST_QUICKLIST:
      case T.LIST_QUICKLIST_2: {
        h.sizeHint = this.len("a quicklist node count");
        this.remaining = h.sizeHint;
        this.begin(h);
        this.afterCount(S.QL_NODES);
        return;
      }
      case T.STREAM_LISTPACKS:
      case T.STREAM_LISTPACKS_2:
      case T.STREAM_LISTPACKS_3:
      case T.STREAM_LISTPACKS_4: {
        h.sizeHint = this.len("a stream node count");
        this.remaining = h.sizeHint;
        this.begin(h);
        this.state = S.STREAM_NODES;
        return;
      }
      case T.MODULE_2: {
        const id = this.lenBig("a module type id");
        h.module = { id, ...moduleNameFromId(id) };
        this.begin(h);
        this.state = S.MODULE;
        return;
      }
      case T.HASH_LISTPACK_EX:
      case T.HASH_LISTPACK_EX_PRE_GA: {
        if (type === T.HASH_LISTPACK_EX) this.minExpire = this.i64le();
        this.compactValue(h, type);
        return;
      }
      default:
        this.compactValue(h, type);
    }
  }

  /** A value stored as one compact blob: read it whole, decode, then start the key and emit. */
  private compactValue(h: KeyHeader, type: number): void {
    const blob = this.blob(`the ${h.encoding} of a ${h.type}`, false);
    const e = this.elems;
    switch (type) {
      case T.HASH_ZIPMAP: decodeZipmap(blob, e); break;
      case T.LIST_ZIPLIST: case T.ZSET_ZIPLIST: case T.HASH_ZIPLIST: decodeZiplist(blob, e); break;
      case T.SET_INTSET: decodeIntset(blob, e); break;
      default: decodeListpack(blob, e);
    }
    const v = this.v;
    const n = e.length;
    const width = h.type === "zset" ? 2 : h.type === "hash" ? (type === T.HASH_LISTPACK_EX || type === T.HASH_LISTPACK_EX_PRE_GA ? 3 : 2) : 1;
    if (n % width) {
      const what = width === 3 ? "field/value/ttl triplets" : h.type === "zset" ? "member/score pairs" : "field/value pairs";
      throw new BlobError(0, what, `${h.type} ${h.encoding} has ${n} elements, not a multiple of ${width}`);
    }
    h.sizeHint = n / width;
    this.begin(h);
    if (!this.skip) {
      switch (h.type) {
        case "list":
          if (v.onListItem) for (let i = 0; i < n; i++) v.onListItem(e.bytes(i));
          break;
        case "set":
          if (v.onSetMember) for (let i = 0; i < n; i++) v.onSetMember(e.bytes(i));
          break;
        case "zset":
          if (v.onZsetMember) {
            for (let i = 0; i < n; i += 2) {
              let score: number;
              try {
                score = e.number(i + 1);
              } catch (err) {
                throw new BlobError(0, "a numeric score", (err as Error).message);
              }
              v.onZsetMember(e.bytes(i), score);
            }
          }
          break;
        default:
          if (v.onHashField) {
            for (let i = 0; i < n; i += width) {
              let ttl = -1;
              if (width === 3) {
                const t = e.strs[i + 2] === null ? e.nums[i + 2] : Number(e.integer(i + 2));
                ttl = t === 0 ? -1 : t;
              }
              v.onHashField(e.bytes(i), e.bytes(i + 1), ttl);
            }
          }
      }
    }
    e.release();
    this.finish();
  }

  /** Starts a key: calls onKeyStart and resets the per-key attributes. */
  private begin(h: KeyHeader): void {
    this.cur = h;
    this.keyCopied = false;
    this.skip = this.v.onKeyStart ? this.v.onKeyStart(h) === false : false;
    this.pendingExpire = -1;
    this.pendingIdle = -1;
    this.pendingFreq = -1;
    this.pendingMeta = undefined;
  }

  private afterCount(next: S): void {
    if (this.remaining === 0) this.finish();
    else this.state = next;
  }

  private finish(): void {
    const h = this.cur!;
    this.keys++;
    this.cur = undefined;
    this.state = this.dumpMode ? S.DUMP_END : S.OP;
    this.v.onKeyEnd?.(h);
  }

  private elements(): boolean {
    const v = this.v;
    const skip = this.skip;
    switch (this.rdbType) {
      case T.LIST:
        while (this.remaining > 0) {
          this.mark = this.pos;
          const s = this.str("a list element", skip);
          if (!skip) v.onListItem?.(s);
          this.remaining--;
        }
        break;
      case T.SET:
        while (this.remaining > 0) {
          this.mark = this.pos;
          const s = this.str("a set member", skip);
          if (!skip) v.onSetMember?.(s);
          this.remaining--;
        }
        break;
      case T.ZSET:
      case T.ZSET_2: {
        const binary = this.rdbType === T.ZSET_2;
        while (this.remaining > 0) {
          this.mark = this.pos;
          const m = this.str("a sorted set member", skip);
          const score = binary ? this.doubleLE() : this.oldDouble();
          if (!skip) v.onZsetMember?.(m, score);
          this.remaining--;
        }
        break;
      }
      case T.HASH:
        while (this.remaining > 0) {
          this.mark = this.pos;
          const f = this.str("a hash field", skip);
          const val = this.str("a hash value", skip);
          if (!skip) v.onHashField?.(f, val, -1);
          this.remaining--;
        }
        break;
      case T.HASH_METADATA:
      case T.HASH_METADATA_PRE_GA: {
        const relative = this.rdbType === T.HASH_METADATA;
        while (this.remaining > 0) {
          this.mark = this.pos;
          const ttl = this.len("a hash field TTL");
          const f = this.str("a hash field", skip);
          const val = this.str("a hash value", skip);
          const expireAt = ttl === 0 ? -1 : relative ? ttl + this.minExpire - 1 : ttl;
          if (!skip) v.onHashField?.(f, val, expireAt);
          this.remaining--;
        }
        break;
      }
      case VK_HASH_2:
        while (this.remaining > 0) {
          this.mark = this.pos;
          const f = this.str("a hash field", skip);
          const val = this.str("a hash value", skip);
          const at = this.i64le();
          if (!skip) v.onHashField?.(f, val, at < 0 ? -1 : at);
          this.remaining--;
        }
        break;
    }
    this.finish();
    return true;
  }

  private quicklistNodes(): boolean {
    const v = this.v;
    const skip = this.skip;
    const v2 = this.rdbType === T.LIST_QUICKLIST_2;
    while (this.remaining > 0) {
      this.mark = this.pos;
      let container = 2; // PACKED
      if (v2) {
        container = this.len("a quicklist node container (1 plain, 2 packed)");
        if (container !== 1 && container !== 2) throw this.err("a quicklist node container (1 plain, 2 packed)", `invalid container ${container}`, this.mark);
      }
      const node = this.blob("a quicklist node", skip);
      if (!skip && v.onListItem) {
        if (container === 1) {
          v.onListItem(node);
        } else {
          const e = this.elems;
          if (v2) decodeListpack(node, e);
          else decodeZiplist(node, e);
          if (e.length === 0) throw new BlobError(0, "a non-empty quicklist node", "empty quicklist node");
          for (let i = 0; i < e.length; i++) v.onListItem(e.bytes(i));
          e.release();
        }
      }
      this.remaining--;
    }
    this.finish();
    return true;
  }

  private stringPieces(): boolean {
    const avail = this.buf.length - this.pos;
    const left = this.strTotal - this.strDone;
    const n = Math.min(avail, left);
    if (n > 0) {
      const piece = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      if (!this.skip) {
        if (this.v.onStringPiece) this.v.onStringPiece(piece, this.strDone, this.strTotal);
      }
      this.strDone += n;
    }
    if (this.strDone < this.strTotal) {
      this.need = 1;
      return false;
    }
    this.finish();
    return true;
  }

  private lzfPieces(): boolean {
    const avail = this.buf.length - this.pos;
    const n = Math.min(avail, this.lzfRemaining);
    if (n > 0) {
      const part = this.buf.subarray(this.pos, this.pos + n);
      if (this.lzf) {
        try {
          this.lzf.write(part);
        } catch (e) {
          if (e instanceof LzfError) throw this.err("valid LZF data", e.message, this.pos);
          throw e;
        }
      }
      this.pos += n;
      this.lzfRemaining -= n;
    }
    if (this.lzfRemaining > 0) {
      this.need = 1;
      return false;
    }
    if (this.lzf) {
      try {
        this.lzf.end();
      } catch (e) {
        if (e instanceof LzfError) throw this.err("valid LZF data", e.message, this.pos);
        throw e;
      }
      this.lzf = undefined;
    }
    this.finish();
    return true;
  }

  private streamNodes(): boolean {
    const v = this.v;
    const skip = this.skip;
    while (this.remaining > 0) {
      this.mark = this.pos;
      const nodeKey = this.str("a stream node master ID (16 bytes)");
      if (nodeKey.length !== 16) throw this.err("a 16-byte stream node master ID", `master ID of ${nodeKey.length} bytes`, this.mark);
      const lp = this.blob("a stream node listpack", skip);
      if (!skip) {
        v.onStreamNode?.(nodeKey, lp);
        if (this.wantStreamEntries) {
          const e = this.elems;
          decodeListpack(lp, e);
          const onEntry = v.onStreamEntry!;
          forEachStreamEntry(readRawStreamId(nodeKey), e, (id, fields, deleted) => {
            if (!deleted) onEntry.call(v, id, fields);
          });
          e.release();
        }
      }
      this.remaining--;
    }
    this.state = S.STREAM_META;
    return true;
  }

  private streamMeta(): boolean {
    const length = this.len("the stream length");
    const lastId = this.streamId("the stream last ID");
    const meta: StreamMeta = { length, lastId, groups: 0 };
    if (this.rdbType >= T.STREAM_LISTPACKS_2) {
      meta.firstId = this.streamId("the stream first ID");
      meta.maxDeletedId = this.streamId("the stream max deleted ID");
      meta.entriesAdded = this.len("the stream entries-added counter");
    }
    meta.groups = this.count("the consumer group count");
    if (!this.skip) this.v.onStreamMeta?.(meta);
    this.groupsRemaining = meta.groups;
    if (this.groupsRemaining === 0) this.endStream();
    else this.state = S.STREAM_GROUP;
    return true;
  }

  private streamGroup(): boolean {
    const name = this.str("a consumer group name");
    const lastId = this.streamId("the group last ID");
    const group: StreamGroup = { name, lastId, pending: 0 };
    if (this.rdbType >= T.STREAM_LISTPACKS_2) {
      const read = this.lenBig("the group entries-read counter");
      group.entriesRead = read === U64_MAX ? -1 : Number(read);
    }
    group.pending = this.count("the group PEL size");
    if (!this.skip) this.v.onStreamGroup?.(group);
    this.remaining = group.pending;
    this.state = this.remaining > 0 ? S.STREAM_GROUP_PEL : S.STREAM_CONSUMERS;
    return true;
  }

  private streamGroupPel(): boolean {
    const v = this.v;
    while (this.remaining > 0) {
      this.mark = this.pos;
      const raw = this.raw(16);
      const deliveryTime = this.i64le();
      const deliveryCount = this.len("a PEL delivery count");
      if (!this.skip) v.onStreamPending?.({ id: readRawStreamId(raw), deliveryTime, deliveryCount });
      this.remaining--;
    }
    this.state = S.STREAM_CONSUMERS;
    return true;
  }

  private streamConsumers(): boolean {
    this.consumersRemaining = this.count("the consumer count");
    if (!this.skip) this.v.onStreamConsumerCount?.(this.consumersRemaining);
    if (this.consumersRemaining > 0) this.state = S.STREAM_CONSUMER;
    else this.nextGroup();
    return true;
  }

  private nextGroup(): void {
    this.groupsRemaining--;
    if (this.groupsRemaining > 0) this.state = S.STREAM_GROUP;
    else this.endStream();
  }

  /** After the groups: the IDMP section of a type-26 stream, else the end of the value. */
  private endStream(): void {
    if (this.rdbType === T.STREAM_LISTPACKS_4) this.state = S.STREAM_IDMP;
    else this.finish();
  }

  private idmpProducers = 0;

  private streamIdmp(): boolean {
    const duration = this.len("the stream IDMP duration");
    const maxSize = this.len("the stream IDMP max size");
    const producers = this.count("the stream IDMP producer count");
    if (!this.skip) this.v.onStreamIdmp?.({ duration, maxSize, producers });
    this.idmpProducers = producers;
    this.state = producers > 0 ? S.STREAM_IDMP_PRODUCER : S.STREAM_IDMP_END;
    return true;
  }

  private streamIdmpProducer(): boolean {
    const pid = this.str("a stream IDMP producer id");
    const n = this.count("the producer's iid count");
    if (!this.skip) this.v.onStreamIdmpProducer?.(pid, n);
    this.remaining = n;
    this.state = S.STREAM_IDMP_ENTRIES;
    return true;
  }

  private streamIdmpEntries(): boolean {
    const v = this.v;
    while (this.remaining > 0) {
      this.mark = this.pos;
      const iid = this.str("a stream IDMP iid", this.skip);
      const id = this.streamId("the entry ID of an iid");
      if (!this.skip) v.onStreamIdmpEntry?.(iid, id);
      this.remaining--;
    }
    this.idmpProducers--;
    this.state = this.idmpProducers > 0 ? S.STREAM_IDMP_PRODUCER : S.STREAM_IDMP_END;
    return true;
  }

  private streamIdmpEnd(): boolean {
    const iidsAdded = this.len("the stream iids-added counter");
    const iidsDuplicates = this.len("the stream iids-duplicates counter");
    if (!this.skip) this.v.onStreamIdmpCounters?.({ iidsAdded, iidsDuplicates });
    this.finish();
    return true;
  }

  private streamConsumer(): boolean {
    const name = this.str("a consumer name");
    const seenTime = this.i64le();
    const c: StreamConsumer = { name, seenTime, pending: 0 };
    if (this.rdbType >= T.STREAM_LISTPACKS_3) c.activeTime = this.i64le();
    c.pending = this.count("the consumer PEL size");
    if (!this.skip) this.v.onStreamConsumer?.(c);
    this.remaining = c.pending;
    if (this.remaining > 0) this.state = S.STREAM_CONSUMER_PEL;
    else this.nextConsumer();
    return true;
  }

  private nextConsumer(): void {
    this.consumersRemaining--;
    if (this.consumersRemaining > 0) this.state = S.STREAM_CONSUMER;
    else this.nextGroup();
  }

  private streamConsumerPel(): boolean {
    const v = this.v;
    while (this.remaining > 0) {
      this.mark = this.pos;
      const raw = this.raw(16);
      if (!this.skip) v.onStreamConsumerPending?.(readRawStreamId(raw));
      this.remaining--;
    }
    this.nextConsumer();
    return true;
  }

  /** Module value or module AUX payload: opcodes until EOF, passed on as raw bytes. */
  private moduleOpcodes(): boolean {
    const aux = this.state === S.MODULE_AUX;
    for (;;) {
      this.mark = this.pos;
      const op = this.len("a module opcode");
      if (op !== ModuleOpcode.EOF) this.moduleField(op, this.mark, "");
      const raw = this.buf.subarray(this.mark, this.pos);
      if (aux) this.moduleAux!.parts.push(Buffer.from(raw));
      else if (!this.skip) this.v.onModuleData?.(raw);
      if (op === ModuleOpcode.EOF) break;
    }
    if (aux) {
      const m = this.moduleAux!;
      this.moduleAux = undefined;
      this.moduleAuxCount++;
      this.state = S.OP;
      this.v.onModuleAux?.(m.info, m.when, Buffer.concat(m.parts));
    } else {
      this.finish();
    }
    return true;
  }
}
