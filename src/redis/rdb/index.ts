// The RDB engine's public surface, plus `readRdb`: whole keys as plain objects for callers that prefer an
// async iterator to a visitor (tests, small backups, tools). For bounded memory on huge keys use RdbReader
// with a visitor: readRdb holds each key's whole value in memory (maxKeyBytes caps it).
import { ValueKind } from "./constants";
import { RdbParseError } from "./errors";
import { KeyHeader, ModuleInfo, RdbReader, RdbReaderOptions, RdbSummary, RdbVisitor, StreamConsumer, StreamGroup, StreamMeta, StreamPendingEntry } from "./reader";
import { StreamId } from "./stream";

export * from "./constants";
export * from "./errors";
export * from "./reader";
export * from "./stream";
export { DigestVisitor, RdbDigest, digestRdb, digestDumpPayload, scoreFormatForAux, scoreFormatForServer } from "./digest";
export type { DigestOptions, DigestResult, ScoreFormatOption } from "./digest";
export { DigestStream, digestWorkerPids } from "./digest-stream";
export type { DigestStreamOptions } from "./digest-stream";
export { formatScore, formatG17, fpconvDtoa } from "./double-format";
export type { ScoreFormat } from "./double-format";
export { DumpBuilder, DumpUnsupportedError, assemblePayload } from "./dump";
export { InspectVisitor, inspectRdbStream, formatInspectReport } from "./inspect";
export type { InspectReport, KeyStats, InspectOptions } from "./inspect";
export { exportJsonLines, exportResp, capabilitiesFor } from "./export";
export { verifyAgainstServer } from "./key-diff";
export type { VerifyResult, VerifyOptions, KeyDifference } from "./key-diff";

export interface StreamConsumerValue extends StreamConsumer {
  pendingIds: StreamId[];
}

export interface StreamGroupValue extends StreamGroup {
  pendingEntries: StreamPendingEntry[];
  consumerList: StreamConsumerValue[];
}

export interface StreamValue {
  entries: Array<{ id: StreamId; fields: Buffer[] }>;
  meta: StreamMeta;
  groups: StreamGroupValue[];
}

interface KeyBase {
  db: number;
  key: Buffer;
  encoding: string;
  rdbType: number;
  expireAt: number;
  lruIdle: number;
  lfuFreq: number;
}

/** One whole key. All Buffers are copies (safe to keep). */
export type RdbKey = KeyBase &
  (
    | { type: "string"; value: Buffer }
    | { type: "list"; value: Buffer[] }
    | { type: "set"; value: Buffer[] }
    | { type: "zset"; value: Array<[Buffer, number]> }
    | { type: "hash"; value: Array<[Buffer, Buffer, number]> }
    | { type: "stream"; value: StreamValue }
    | { type: "module"; value: { module: ModuleInfo; raw: Buffer } }
  );

export interface ReadRdbOptions extends RdbReaderOptions {
  /** Fail (RdbParseError) on a key whose value exceeds this many bytes. Default 256 MiB. */
  maxKeyBytes?: number;
  /** Called once with the summary after the last key. */
  onSummary?(summary: RdbSummary): void;
}

/** Collects whole keys from the reader's callbacks. */
class Collector implements RdbVisitor {
  readonly done: RdbKey[] = [];
  private cur: RdbKey | undefined;
  private bytes = 0;
  private pieces: Buffer[] = [];

  constructor(private readonly max: number) {}

  private grow(n: number): void {
    this.bytes += n;
    if (this.bytes > this.max) {
      throw new RdbParseError(-1, `a key of at most ${this.max} bytes`, `key ${JSON.stringify(this.cur!.key.toString("latin1").slice(0, 100))} is larger than maxKeyBytes; use RdbReader with a visitor for huge keys`);
    }
  }

  onKeyStart(h: KeyHeader): void {
    this.bytes = 0;
    const base: KeyBase = { db: h.db, key: Buffer.from(h.key), encoding: h.encoding, rdbType: h.rdbType, expireAt: h.expireAt, lruIdle: h.lruIdle, lfuFreq: h.lfuFreq };
    let value: unknown;
    switch (h.type as ValueKind) {
      case "string": value = Buffer.alloc(0); break;
      case "stream": value = { entries: [], meta: undefined, groups: [] }; break;
      case "module": value = { module: h.module, raw: Buffer.alloc(0) }; break;
      default: value = [];
    }
    this.cur = { ...base, type: h.type, value } as RdbKey;
    this.pieces = [];
  }

  onString(v: Buffer): void {
    this.grow(v.length);
    this.cur!.value = Buffer.from(v);
  }

  onStringPiece(p: Buffer, offset: number, total: number): void {
    this.grow(p.length);
    this.pieces.push(Buffer.from(p));
    if (offset + p.length === total) this.cur!.value = Buffer.concat(this.pieces);
  }

  onListItem(b: Buffer): void {
    this.grow(b.length);
    (this.cur!.value as Buffer[]).push(Buffer.from(b));
  }

  onSetMember(b: Buffer): void {
    this.onListItem(b);
  }

  onZsetMember(m: Buffer, s: number): void {
    this.grow(m.length + 8);
    (this.cur!.value as Array<[Buffer, number]>).push([Buffer.from(m), s]);
  }

  onHashField(f: Buffer, v: Buffer, e: number): void {
    this.grow(f.length + v.length);
    (this.cur!.value as Array<[Buffer, Buffer, number]>).push([Buffer.from(f), Buffer.from(v), e]);
  }

  private get stream(): StreamValue {
    return this.cur!.value as StreamValue;
  }

  onStreamEntry(id: StreamId, fields: Buffer[]): void {
    let n = 16;
    for (const f of fields) n += f.length;
    this.grow(n);
    this.stream.entries.push({ id, fields: fields.map((f) => Buffer.from(f)) });
  }

  onStreamMeta(m: StreamMeta): void {
    this.stream.meta = m;
  }

  onStreamGroup(g: StreamGroup): void {
    this.stream.groups.push({ ...g, name: Buffer.from(g.name), pendingEntries: [], consumerList: [] });
  }

  onStreamPending(p: StreamPendingEntry): void {
    this.grow(32);
    this.stream.groups[this.stream.groups.length - 1].pendingEntries.push(p);
  }

  onStreamConsumer(c: StreamConsumer): void {
    const g = this.stream.groups[this.stream.groups.length - 1];
    g.consumerList.push({ ...c, name: Buffer.from(c.name), pendingIds: [] });
  }

  onStreamConsumerPending(id: StreamId): void {
    this.grow(16);
    const g = this.stream.groups[this.stream.groups.length - 1];
    g.consumerList[g.consumerList.length - 1].pendingIds.push(id);
  }

  onModuleData(raw: Buffer): void {
    this.grow(raw.length);
    this.pieces.push(Buffer.from(raw));
  }

  onKeyEnd(): void {
    const k = this.cur!;
    if (k.type === "module") k.value.raw = Buffer.concat(this.pieces);
    this.done.push(k);
    this.cur = undefined;
    this.pieces = [];
  }
}

/** Yields every key of an RDB stream as a whole object. Throws RdbParseError on malformed input. */
export async function* readRdb(source: AsyncIterable<Buffer>, opts: ReadRdbOptions = {}): AsyncGenerator<RdbKey> {
  const c = new Collector(opts.maxKeyBytes ?? 256 << 20);
  const reader = new RdbReader(c, opts);
  for await (const chunk of source) {
    reader.feed(chunk);
    while (c.done.length) yield c.done.shift()!;
  }
  const summary = reader.end();
  while (c.done.length) yield c.done.shift()!;
  opts.onSummary?.(summary);
}

/** All keys of an in-memory RDB. */
export function readRdbSync(rdb: Buffer, opts: ReadRdbOptions = {}): { keys: RdbKey[]; summary: RdbSummary } {
  const c = new Collector(opts.maxKeyBytes ?? 256 << 20);
  const reader = new RdbReader(c, opts);
  reader.feed(rdb);
  const summary = reader.end();
  return { keys: c.done, summary };
}
