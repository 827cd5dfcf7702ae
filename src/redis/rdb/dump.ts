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
//           80 (Valkey 9) 22 HASH_2 (Valkey's numbering)      fields with TTLs (HEXPIRE)
//           >= 12 (7.4)   24 HASH_METADATA                    fields with TTLs (HEXPIRE)
//           < 12          error, or HASH without the TTLs when dropFieldTtls is set (reported per key)
//   stream  13 (8.6)      26 STREAM_LISTPACKS_4               a stream that has XADD IDMP state (else 21)
//           >= 11 (7.2)   21 STREAM_LISTPACKS_3               source nodes passed through unchanged; IDMP
//                                                              state: error, or dropped with dropStreamIdmp
//           10 (7.0)      19 STREAM_LISTPACKS_2               (consumer active-time dropped)
//           9 (5.0-6.2)   15 STREAM_LISTPACKS                 (first/max-deleted IDs, entries-added and
//                                                              group entries-read dropped: 5.0 has none)
//           < 9           error: the target has no streams
//   module  >= 8          7  MODULE_2                         opaque bytes passed through; the target needs
//                                                              the same module loaded
import { crc64Init, crc64ToBuffer, crc64Update } from "./crc64";
import { RdbType, VALKEY_RDB_VERSION, ValkeyRdbType, ValueKind } from "./constants";
import { formatG17 } from "./double-format";
import { RdbUnsupportedError } from "./errors";
import { ByteWriter } from "./rdb-writer";
import { ModuleInfo, StreamConsumer, StreamGroup, StreamIdmp, StreamIdmpCounters, StreamMeta, StreamPendingEntry } from "./reader";
import { rawStreamId, StreamId } from "./stream";

/** Thrown when a value cannot be expressed for the target (streams before 5.0, hash field TTLs before 7.4). */
export class DumpUnsupportedError extends RdbUnsupportedError {
  override name = "DumpUnsupportedError";
  /** What an option would drop to restore the value anyway (dropFieldTtls / dropStreamIdmp), when it would. */
  droppable?: "fieldTtls" | "streamIdmp";
}

function droppable<E extends DumpUnsupportedError>(err: E, what: "fieldTtls" | "streamIdmp"): E {
  err.droppable = what;
  return err;
}

/** Where a user asks for the drops (named in every refusal): the CLI; the cloud's RestoreInstance has no such parameter. */
export const DROP_FIELD_TTLS_HINT = "`crs-backup restore --drop-field-ttls`";
export const DROP_STREAM_IDMP_HINT = "`crs-backup restore --drop-stream-idmp`";

export interface DumpOptions {
  /** RDB version of the target (the payload footer carries it; must be <= the target's). */
  rdbVersion: number;
  /** Hash field TTLs into a target without them: false (default) throws DumpUnsupportedError, true drops them. */
  dropFieldTtls?: boolean;
  /** A stream's XADD IDMP state (Redis 8.6) into a target without it: false (default) throws, true drops it. */
  dropStreamIdmp?: boolean;
}

/** Whether a type-26 stream carries IDMP state worth keeping: remembered iids or non-zero counters. */
export function hasIdmpState(idmp: StreamIdmp | undefined, counters: StreamIdmpCounters | undefined): boolean {
  return (idmp?.producers ?? 0) > 0 || (counters?.iidsAdded ?? 0) > 0 || (counters?.iidsDuplicates ?? 0) > 0;
}

/** What a target of this RDB version can hold: Valkey 9 (80) has field TTLs but no IDMP, Redis 7.4+ / 8.6+. */
export function targetHolds(rdbVersion: number): { fieldTtls: boolean; streamIdmp: boolean; valkey: boolean } {
  const valkey = rdbVersion >= VALKEY_RDB_VERSION;
  return { valkey, fieldTtls: valkey || rdbVersion >= 12, streamIdmp: !valkey && rdbVersion >= 13 };
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
  /** The last finish() dropped a stream's IDMP state (dropStreamIdmp). */
  droppedStreamIdmp = false;
  private readonly idmpW = new ByteWriter(256);
  private idmp: StreamIdmp | undefined;
  private idmpCounters: StreamIdmpCounters | undefined;
  private readonly holds: ReturnType<typeof targetHolds>;

  constructor(private readonly opts: DumpOptions) {
    this.holds = targetHolds(opts.rdbVersion);
  }

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
    this.droppedStreamIdmp = false;
    this.idmp = undefined;
    this.idmpCounters = undefined;
    this.idmpW.reset();
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

  /** The IDMP section of a type-26 stream (after the groups), kept aside until finish() knows the type. */
  streamIdmp(idmp: StreamIdmp): void {
    this.idmp = idmp;
    this.idmpW.rdbLen(idmp.duration).rdbLen(idmp.maxSize).rdbLen(idmp.producers);
  }

  streamIdmpProducer(pid: Buffer, iids: number): void {
    this.idmpW.rdbString(pid).rdbLen(iids);
  }

  streamIdmpEntry(iid: Buffer, id: StreamId): void {
    this.idmpW.rdbString(iid).rdbLen(id.ms).rdbLen(id.seq);
  }

  streamIdmpCounters(c: StreamIdmpCounters): void {
    this.idmpCounters = c;
    this.idmpW.rdbLen(c.iidsAdded).rdbLen(c.iidsDuplicates);
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
      case "stream": {
        const idmp = this.idmp !== undefined;
        if (idmp && this.holds.streamIdmp) {
          head.u8(RdbType.STREAM_LISTPACKS_4).rdbLen(this.count);
          this.w.bytes(this.idmpW.view());
          body = this.w.view();
          break;
        }
        if (idmp && hasIdmpState(this.idmp, this.idmpCounters)) {
          if (!this.opts.dropStreamIdmp) throw droppable(new DumpUnsupportedError(idmpRefusal(this.idmp!, this.idmpCounters, `a target with RDB version ${v}`)), "streamIdmp");
          this.droppedStreamIdmp = true;
        }
        head.u8(v >= 11 ? RdbType.STREAM_LISTPACKS_3 : v >= 10 ? RdbType.STREAM_LISTPACKS_2 : RdbType.STREAM_LISTPACKS).rdbLen(this.count);
        break;
      }
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
    if (this.hashTtls > 0 && this.holds.valkey) {
      head.u8(ValkeyRdbType.HASH_2).rdbLen(entries.length);
      for (const e of entries) {
        w.rdbString(e.field);
        w.rdbString(e.value);
        w.i64le(e.expireAt);
      }
      return w.view();
    }
    if (this.hashTtls > 0 && this.holds.fieldTtls) {
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
        throw droppable(new DumpUnsupportedError(
          `${this.hashTtls} hash field TTL(s) (Redis 7.4 HEXPIRE) cannot be kept on a target with RDB version ${this.opts.rdbVersion}; ` +
            `restore to Redis 7.4+ or allow dropping field TTLs (${DROP_FIELD_TTLS_HINT}: the fields are then restored without expiry)`,
        ), "fieldTtls");
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

/** The per-key message for IDMP state a target cannot hold. */
export function idmpRefusal(idmp: StreamIdmp, counters: StreamIdmpCounters | undefined, target: string): string {
  const what = `${idmp.producers} producer(s) of remembered iids, ${counters?.iidsAdded ?? 0} iids added, ${counters?.iidsDuplicates ?? 0} duplicates`;
  return `the stream's XADD IDMP state (Redis 8.6: ${what}) cannot be kept on ${target}; restore to Redis 8.6+ with RESTORE, or allow dropping the IDMP state (${DROP_STREAM_IDMP_HINT}: the entries and groups are restored, deduplication starts afresh)`;
}
