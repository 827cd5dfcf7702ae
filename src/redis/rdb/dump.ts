// DUMP payloads a target of a given RDB version accepts (for RESTORE). A payload is the value's RDB
// serialization (type byte + value), then the RDB version as 2 bytes little-endian, then the CRC-64/Jones of
// everything before it, 8 bytes little-endian. A server accepts payloads whose version is <= its own.
//
// Rather than copying the source encoding (which may be too new: listpacks appear in RDB 10/11), values are
// re-encoded in the plain encodings every server since Redis 2.x loads, and the server re-packs them into its
// own compact encodings while loading:
//
//   kind    target RDB    type written                        notes
//   string  any           0  STRING                           raw length-prefixed bytes
//   list    any           1  LIST                             element per element
//   set     any           2  SET
//   zset    >= 8 (4.0)    5  ZSET_2 (binary doubles)
//           < 8           3  ZSET   (ASCII "%.17g" doubles)
//   hash    any           4  HASH                             when no field has a TTL
//           >= 12 (7.4)   24 HASH_METADATA                    fields with TTLs (HEXPIRE)
//           < 12          error, or HASH without the TTLs when dropFieldTtls is set (reported per key)
//   stream  >= 11 (7.2)   21 STREAM_LISTPACKS_3               source nodes passed through unchanged
//           10 (7.0)      19 STREAM_LISTPACKS_2               (consumer active-time dropped)
//           9 (5.0-6.2)   15 STREAM_LISTPACKS                 (first/max-deleted IDs, entries-added and
//                                                              group entries-read dropped: 5.0 has none)
//           < 9           error: the target has no streams
//   module  >= 8          7  MODULE_2                         opaque bytes passed through; the target needs
//                                                              the same module loaded
import { crc64Init, crc64ToBuffer, crc64Update } from "./crc64";
import { RdbType, ValueKind } from "./constants";
import { formatG17 } from "./double-format";
import { RdbUnsupportedError } from "./errors";
import { ByteWriter } from "./rdb-writer";
import { ModuleInfo, StreamConsumer, StreamGroup, StreamMeta, StreamPendingEntry } from "./reader";
import { rawStreamId, StreamId } from "./stream";

/** Thrown when a value cannot be expressed for the target (streams before 5.0, hash field TTLs before 7.4). */
export class DumpUnsupportedError extends RdbUnsupportedError {
  override name = "DumpUnsupportedError";
}

export interface DumpOptions {
  /** RDB version of the target (the payload footer carries it; must be <= the target's). */
  rdbVersion: number;
  /** Hash field TTLs into a target without them: false (default) throws DumpUnsupportedError, true drops them. */
  dropFieldTtls?: boolean;
}

interface HashEntry {
  field: Buffer;
  value: Buffer;
  expireAt: number;
}

/**
 * Builds the DUMP payload of one value from the reader's callbacks. Use: begin(kind), then the element
 * methods matching the kind, then finish() -> payload. Elements are copied into the builder, so callers may
 * pass views. `size` tells how many bytes are buffered (callers switch to plain commands beyond a budget).
 */
export class DumpBuilder {
  private readonly w = new ByteWriter(1 << 16);
  private readonly head = new ByteWriter(64);
  private kind: ValueKind = "string";
  private count = 0;
  private hashEntries: HashEntry[] | undefined;
  private hashTtls = 0;
  private module: ModuleInfo | undefined;
  /** Number of field TTLs dropped by the last finish() (dropFieldTtls). */
  droppedFieldTtls = 0;

  constructor(private readonly opts: DumpOptions) {}

  get size(): number {
    return this.w.len + (this.hashEntries ? this.hashBytes : 0);
  }

  private hashBytes = 0;

  /** Starts a value. For hashes, `mayHaveFieldTtls` (RDB types 22..25) makes the builder collect entries. */
  begin(kind: ValueKind, opts: { mayHaveFieldTtls?: boolean; module?: ModuleInfo } = {}): void {
    this.kind = kind;
    this.w.reset();
    this.count = 0;
    this.hashEntries = kind === "hash" && opts.mayHaveFieldTtls ? [] : undefined;
    this.hashBytes = 0;
    this.hashTtls = 0;
    this.droppedFieldTtls = 0;
    this.module = opts.module;
    if (kind === "stream" && this.opts.rdbVersion < 9) {
      throw new DumpUnsupportedError(`streams need a target with RDB version 9 (Redis 5.0) or later; the target has RDB version ${this.opts.rdbVersion}`);
    }
    if (kind === "module" && this.opts.rdbVersion < 8) {
      throw new DumpUnsupportedError(`module values need a target with RDB version 8 (Redis 4.0) or later`);
    }
  }

  string(value: Buffer): void {
    this.w.rdbString(value);
  }

  /** A piece of a string being assembled (huge strings). */
  stringPiece(piece: Buffer, offset: number, total: number): void {
    if (offset === 0) this.w.rdbLen(total);
    this.w.bytes(piece);
  }

  listItem(item: Buffer): void {
    this.w.rdbString(item);
    this.count++;
  }

  setMember(member: Buffer): void {
    this.w.rdbString(member);
    this.count++;
  }

  zsetMember(member: Buffer, score: number): void {
    this.w.rdbString(member);
    if (this.opts.rdbVersion >= 8) this.w.doubleLE(score);
    else this.w.asciiDouble(score, formatG17(score));
    this.count++;
  }

  hashField(field: Buffer, value: Buffer, expireAt: number): void {
    if (this.hashEntries) {
      this.hashEntries.push({ field: Buffer.from(field), value: Buffer.from(value), expireAt });
      this.hashBytes += field.length + value.length + 10;
      if (expireAt !== -1) this.hashTtls++;
    } else {
      this.w.rdbString(field);
      this.w.rdbString(value);
    }
    this.count++;
  }

  /** Stream nodes are passed through as stored (their listpack format has not changed since Redis 5.0). */
  streamNode(masterId: Buffer, listpack: Buffer): void {
    this.w.rdbString(masterId);
    this.w.rdbString(listpack);
    this.count++;
  }

  streamMeta(meta: StreamMeta): void {
    const w = this.w;
    const v = this.opts.rdbVersion;
    w.rdbLen(meta.length);
    w.rdbLen(meta.lastId.ms).rdbLen(meta.lastId.seq);
    if (v >= 10) {
      const zero: StreamId = { ms: 0n, seq: 0n };
      const first = meta.firstId ?? zero;
      const maxDel = meta.maxDeletedId ?? zero;
      w.rdbLen(first.ms).rdbLen(first.seq);
      w.rdbLen(maxDel.ms).rdbLen(maxDel.seq);
      w.rdbLen(meta.entriesAdded ?? meta.length);
    }
    w.rdbLen(meta.groups);
  }

  streamGroup(g: StreamGroup): void {
    const w = this.w;
    w.rdbString(g.name);
    w.rdbLen(g.lastId.ms).rdbLen(g.lastId.seq);
    if (this.opts.rdbVersion >= 10) {
      // -1 (unknown) is stored as the u64 with all bits set, as Redis does
      w.rdbLen(g.entriesRead === undefined || g.entriesRead < 0 ? (1n << 64n) - 1n : g.entriesRead);
    }
    w.rdbLen(g.pending);
  }

  streamPending(p: StreamPendingEntry): void {
    this.w.bytes(rawStreamId(p.id));
    this.w.i64le(p.deliveryTime);
    this.w.rdbLen(p.deliveryCount);
  }

  /** Consumers of the current group; pass the group's consumer count first (from the RDB). */
  streamConsumerCount(n: number): void {
    this.w.rdbLen(n);
  }

  streamConsumer(c: StreamConsumer): void {
    const w = this.w;
    w.rdbString(c.name);
    w.i64le(c.seenTime);
    if (this.opts.rdbVersion >= 11) w.i64le(c.activeTime ?? c.seenTime);
    w.rdbLen(c.pending);
  }

  streamConsumerPending(id: StreamId): void {
    this.w.bytes(rawStreamId(id));
  }

  moduleData(raw: Buffer): void {
    this.w.bytes(raw);
  }

  /** The complete payload. Throws DumpUnsupportedError for what the target cannot hold. */
  finish(): Buffer {
    const head = this.head;
    head.reset();
    const v = this.opts.rdbVersion;
    let body = this.w.view();
    switch (this.kind) {
      case "string":
        head.u8(RdbType.STRING);
        break;
      case "list":
        head.u8(RdbType.LIST).rdbLen(this.count);
        break;
      case "set":
        head.u8(RdbType.SET).rdbLen(this.count);
        break;
      case "zset":
        head.u8(v >= 8 ? RdbType.ZSET_2 : RdbType.ZSET).rdbLen(this.count);
        break;
      case "hash":
        body = this.finishHash(head);
        break;
      case "stream":
        head.u8(v >= 11 ? RdbType.STREAM_LISTPACKS_3 : v >= 10 ? RdbType.STREAM_LISTPACKS_2 : RdbType.STREAM_LISTPACKS).rdbLen(this.count);
        break;
      case "module":
        head.u8(RdbType.MODULE_2).rdbLen(this.module!.id);
        break;
    }
    return assemblePayload(head.view(), body, v);
  }

  private finishHash(head: ByteWriter): Buffer {
    const entries = this.hashEntries;
    if (!entries) {
      head.u8(RdbType.HASH).rdbLen(this.count);
      return this.w.view();
    }
    const w = this.w;
    w.reset();
    if (this.hashTtls > 0 && this.opts.rdbVersion >= 12) {
      let min = Infinity;
      for (const e of entries) if (e.expireAt !== -1 && e.expireAt < min) min = e.expireAt;
      head.u8(RdbType.HASH_METADATA).i64le(min).rdbLen(entries.length);
      for (const e of entries) {
        w.rdbLen(e.expireAt === -1 ? 0 : e.expireAt - min + 1);
        w.rdbString(e.field);
        w.rdbString(e.value);
      }
      return w.view();
    }
    if (this.hashTtls > 0) {
      if (!this.opts.dropFieldTtls) {
        throw new DumpUnsupportedError(
          `${this.hashTtls} hash field TTL(s) (Redis 7.4 HEXPIRE) cannot be kept on a target with RDB version ${this.opts.rdbVersion}; ` +
            `restore to Redis 7.4+ or allow dropping field TTLs (the fields are then restored without expiry)`,
        );
      }
      this.droppedFieldTtls = this.hashTtls;
    }
    head.u8(RdbType.HASH).rdbLen(entries.length);
    for (const e of entries) {
      w.rdbString(e.field);
      w.rdbString(e.value);
    }
    return w.view();
  }
}

/** head + body + version (2 bytes LE) + CRC-64 (8 bytes LE) in one buffer. */
export function assemblePayload(head: Buffer, body: Buffer, rdbVersion: number): Buffer {
  const out = Buffer.allocUnsafe(head.length + body.length + 10);
  head.copy(out, 0);
  body.copy(out, head.length);
  let p = head.length + body.length;
  out.writeUInt16LE(rdbVersion, p);
  p += 2;
  const crc = crc64Update(crc64Init(), out, 0, p);
  crc64ToBuffer(crc).copy(out, p);
  return out;
}
