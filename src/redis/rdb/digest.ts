// The digest Redis's `DEBUG DIGEST` reports, computed from an RDB stream (redis/redis src/debug.c,
// computeDatasetDigest / xorObjectDigest). Facts of the algorithm:
//   xorDigest(d, data) : d ^= SHA1(data)
//   mixDigest(d, data) : d = SHA1(d ^ SHA1(data))                     (order-sensitive)
//   per key            : k = 0; mix(k, key); mix(k, htonl(objtype)); value; if expiring xor(k, "!!expire!!")
//   value              : string mix(k, bytes); list mix(k, item) in order; set xor(k, member);
//                        zset/hash: e = 0; mix(e, member|field); mix(e, score text|value);
//                        [hash field with TTL (7.4): xor(e, "!!hexpire!!")]; xor(k, e);
//                        stream: per live entry mix(k, "<ms>.<seq>"), then mix(k, field), mix(k, value);
//                        module: the module's own digest callback (not computable here)
//   dataset            : F = 0; per non-empty db in order: mix(F, htonl(db)); per key xor(F, k)
// `DEBUG DIGEST-VALUE key` is the per-key digest without mix(k, key).
// Scores are formatted with "%.17g" up to Redis 7.0 and fpconv_dtoa from 7.2 (Valkey too): see double-format.ts.
//
// Two ways to use it: `RdbDigest` is a push API (update(chunk) ... digest()) that parses the stream itself, for
// computing the digest during a capture; `DigestVisitor` plugs into an RdbReader shared with other visitors.
import crypto from "node:crypto";
import { OBJ_TYPE, VALKEY_RDB_VERSION, ValueKind } from "./constants";
import { formatScore, ScoreFormat } from "./double-format";
import { KeyHeader, RdbReader, RdbReaderOptions, RdbSummary, RdbVisitor } from "./reader";
import { sha1Into, sha1Of20, wordsToHex } from "./sha1";
import { StreamId } from "./stream";

/** Which score format a server uses, from the RDB's AUX fields (redis-ver / valkey-ver). */
export function scoreFormatForAux(aux: Record<string, string>): ScoreFormat {
  if (aux["valkey-ver"]) return "fpconv";
  const m = /^(\d+)\.(\d+)/.exec(aux["redis-ver"] ?? "");
  if (!m) return "fpconv"; // no version: assume a current server
  return Number(m[1]) * 100 + Number(m[2]) >= 702 ? "fpconv" : "%.17g";
}

/** Which score format a server uses, from INFO server (redis_version, and valkey_version when present). */
export function scoreFormatForServer(redisVersion: string, valkeyVersion?: string): ScoreFormat {
  return scoreFormatForAux(valkeyVersion ? { "valkey-ver": valkeyVersion } : { "redis-ver": redisVersion });
}

const constSha = (data: Buffer): Int32Array => {
  const out = new Int32Array(5);
  sha1Into(data, 0, data.length, out);
  return out;
};

/** SHA1(htonl(type)) for each object type: the type mix only needs the outer SHA-1 at run time. */
const TYPE_SHA: Record<ValueKind, Int32Array> = Object.fromEntries(
  (Object.keys(OBJ_TYPE) as ValueKind[]).map((k) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(OBJ_TYPE[k]);
    return [k, constSha(b)];
  }),
) as Record<ValueKind, Int32Array>;
const EXPIRE_SHA = constSha(Buffer.from("!!expire!!"));
const HEXPIRE_SHA = constSha(Buffer.from("!!hexpire!!"));

const tmp = new Int32Array(5);

function xorWords(d: Int32Array, w: Int32Array): void {
  d[0] ^= w[0];
  d[1] ^= w[1];
  d[2] ^= w[2];
  d[3] ^= w[3];
  d[4] ^= w[4];
}

/** d ^= SHA1(data) */
function xorBytes(d: Int32Array, data: Uint8Array): void {
  sha1Into(data, 0, data.length, tmp);
  xorWords(d, tmp);
}

/** d = SHA1(d ^ SHA1(data)) */
function mixBytes(d: Int32Array, data: Uint8Array): void {
  xorBytes(d, data);
  sha1Of20(d);
}

/** d ^= SHA1(e as 20 bytes) — xorDigest(d, e, 20). */
function xorDigestOf(d: Int32Array, e: Int32Array): void {
  tmp.set(e);
  sha1Of20(tmp);
  xorWords(d, tmp);
}

export interface ScoreFormatOption {
  /** Score text format; default: from the RDB's AUX redis-ver/valkey-ver (see scoreFormatForAux). */
  scoreFormat?: ScoreFormat;
  /**
   * Digest as if hash fields had no TTLs: what a server without hash-field expiry (Redis < 7.4, Valkey 8)
   * reports after a restore that dropped the field TTLs, and what Valkey 9 reports anyway (its DEBUG DIGEST
   * does not mix field TTLs in, Redis 7.4+'s does). Default: true for an RDB Valkey wrote (AUX valkey-ver),
   * false otherwise.
   */
  ignoreFieldTtls?: boolean;
}

export interface DigestOptions extends ScoreFormatOption {
  /**
   * Called after each key with its DEBUG DIGEST-VALUE (hex) — costs a second pass of hashing per key, so only
   * computed when given. `key` is valid during the call only.
   */
  onKeyDigest?(db: number, key: Buffer, valueDigest: string, header: KeyHeader): void;
}

export interface DigestResult {
  /** 40 hex digits, as DEBUG DIGEST prints it ("0000...0000" for an empty data set). */
  digest: string;
  keys: number;
  /** Module values are digested by their module's callback, which we cannot run: the digest then cannot match. */
  moduleKeys: number;
  scoreFormat: ScoreFormat;
}

/**
 * Visitor computing the dataset digest (and optional per-key value digests). Attach to an RdbReader, or use
 * RdbDigest which owns one.
 */
export class DigestVisitor implements RdbVisitor {
  private readonly final = new Int32Array(5);
  private readonly k = new Int32Array(5); // key digest (with the key name mixed in)
  private readonly vd = new Int32Array(5); // value digest (DIGEST-VALUE), only when onKeyDigest is set
  private readonly e = new Int32Array(5); // element digest (zset/hash)
  private readonly e2 = new Int32Array(5);
  private lastDb = -1;
  private format: ScoreFormat | undefined;
  private ignoreTtls: boolean | undefined;
  private readonly aux: Record<string, string> = {};
  private readonly perKey: boolean;
  private keys = 0;
  private moduleKeys = 0;
  private piece: crypto.Hash | undefined; // a huge string hashed in pieces

  constructor(private readonly opts: DigestOptions = {}) {
    this.format = opts.scoreFormat;
    this.ignoreTtls = opts.ignoreFieldTtls;
    this.perKey = typeof opts.onKeyDigest === "function";
  }

  onAux(key: string, value: Buffer): void {
    this.aux[key] = value.toString("latin1");
  }

  onKeyStart(h: KeyHeader): void {
    if (h.db !== this.lastDb) {
      // a new (non-empty: it has this key) database: mix its number, big-endian 32-bit, into the result
      const b = Buffer.alloc(4);
      b.writeUInt32BE(h.db);
      mixBytes(this.final, b);
      this.lastDb = h.db;
    }
    if (this.format === undefined) this.format = scoreFormatForAux(this.aux);
    if (this.ignoreTtls === undefined) this.ignoreTtls = this.aux["valkey-ver"] !== undefined;
    const k = this.k;
    k.fill(0);
    mixBytes(k, h.key);
    xorWords(k, TYPE_SHA[h.type]);
    sha1Of20(k);
    if (this.perKey) {
      const vd = this.vd;
      vd.set(TYPE_SHA[h.type]);
      sha1Of20(vd); // from zero: SHA1(0 ^ SHA1(type))
    }
    if (h.type === "module") this.moduleKeys++;
  }

  onString(value: Buffer): void {
    mixBytes(this.k, value);
    if (this.perKey) mixBytes(this.vd, value);
  }

  onStringPiece(piece: Buffer, offset: number, total: number): void {
    if (offset === 0) this.piece = crypto.createHash("sha1");
    this.piece!.update(piece);
    if (offset + piece.length === total) {
      const h = this.piece!.digest();
      this.piece = undefined;
      for (let i = 0; i < 5; i++) tmp[i] = h.readInt32BE(i * 4);
      xorWords(this.k, tmp);
      sha1Of20(this.k);
      if (this.perKey) {
        xorWords(this.vd, tmp);
        sha1Of20(this.vd);
      }
    }
  }

  onListItem(item: Buffer): void {
    mixBytes(this.k, item);
    if (this.perKey) mixBytes(this.vd, item);
  }

  onSetMember(member: Buffer): void {
    sha1Into(member, 0, member.length, this.e);
    xorWords(this.k, this.e);
    if (this.perKey) xorWords(this.vd, this.e);
  }

  onZsetMember(member: Buffer, score: number): void {
    const e = this.e;
    e.fill(0);
    mixBytes(e, member);
    mixBytes(e, Buffer.from(formatScore(score, this.format!), "latin1"));
    this.xorElement(e);
  }

  onHashField(field: Buffer, value: Buffer, expireAt: number): void {
    const e = this.e;
    e.fill(0);
    mixBytes(e, field);
    mixBytes(e, value);
    if (expireAt !== -1 && !this.ignoreTtls) xorWords(e, HEXPIRE_SHA);
    this.xorElement(e);
  }

  private xorElement(e: Int32Array): void {
    this.e2.set(e);
    sha1Of20(this.e2);
    xorWords(this.k, this.e2);
    if (this.perKey) xorWords(this.vd, this.e2);
  }

  onStreamEntry(id: StreamId, fields: Buffer[]): void {
    const idText = Buffer.from(`${id.ms}.${id.seq}`, "latin1");
    mixBytes(this.k, idText);
    if (this.perKey) mixBytes(this.vd, idText);
    for (let i = 0; i < fields.length; i++) {
      mixBytes(this.k, fields[i]);
      if (this.perKey) mixBytes(this.vd, fields[i]);
    }
  }

  onKeyEnd(h: KeyHeader): void {
    if (h.expireAt !== -1) {
      xorWords(this.k, EXPIRE_SHA);
      if (this.perKey) xorWords(this.vd, EXPIRE_SHA);
    }
    xorDigestOf(this.final, this.k);
    this.keys++;
    if (this.perKey) this.opts.onKeyDigest!(h.db, h.key, wordsToHex(this.vd), h);
  }

  result(): DigestResult {
    return { digest: wordsToHex(this.final), keys: this.keys, moduleKeys: this.moduleKeys, scoreFormat: this.format ?? scoreFormatForAux(this.aux) };
  }
}

/**
 * Push API for the dataset digest: feed the RDB chunks as they arrive (e.g. from the capture's data events),
 * then call digest(). Parses the stream itself (and verifies its CRC).
 */
export class RdbDigest {
  private readonly visitor: DigestVisitor;
  private readonly reader: RdbReader;
  private summary: RdbSummary | undefined;

  constructor(opts: DigestOptions & RdbReaderOptions = {}) {
    this.visitor = new DigestVisitor(opts);
    this.reader = new RdbReader(this.visitor, opts);
  }

  update(chunk: Buffer): void {
    this.reader.feed(chunk);
  }

  /** Ends the stream (throws RdbParseError if it is incomplete) and returns the digest. */
  digest(): DigestResult & { rdb: RdbSummary } {
    this.summary ??= this.reader.end();
    return { ...this.visitor.result(), rdb: this.summary };
  }
}

/** Digest of a whole in-memory RDB. */
export function digestRdb(rdb: Buffer, opts: DigestOptions = {}): DigestResult & { rdb: RdbSummary } {
  const d = new RdbDigest(opts);
  d.update(rdb);
  return d.digest();
}

/** DEBUG DIGEST-VALUE of one DUMP payload (with `expiring` for the key's TTL, which DUMP does not carry). */
export function digestDumpPayload(payload: Buffer, opts: { scoreFormat: ScoreFormat; expiring?: boolean; ignoreFieldTtls?: boolean }): string {
  let value = "";
  // a payload stamped 80 comes from Valkey 9, whose digests leave field TTLs out
  const ignoreFieldTtls = opts.ignoreFieldTtls ?? (payload.length >= 10 && payload.readUInt16LE(payload.length - 10) >= VALKEY_RDB_VERSION);
  const v = new DigestVisitor({ scoreFormat: opts.scoreFormat, ignoreFieldTtls, onKeyDigest: (_db, _key, d) => (value = d) });
  RdbReader.parseDumpPayload(payload, {
    onKeyStart: (h) => {
      if (opts.expiring) h.expireAt = 1;
      v.onKeyStart(h);
    },
    onString: (b) => v.onString(b),
    onListItem: (b) => v.onListItem(b),
    onSetMember: (b) => v.onSetMember(b),
    onZsetMember: (m, s) => v.onZsetMember(m, s),
    onHashField: (f, val, e) => v.onHashField(f, val, e),
    onStreamEntry: (id, f) => v.onStreamEntry(id, f),
    onKeyEnd: (h) => v.onKeyEnd(h),
  });
  return value;
}
