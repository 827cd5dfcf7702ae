// "What is inside this backup": keys per database and per type, encodings, expiring keys, an estimate of the
// memory each key takes in Redis, the N biggest keys, and the AUX fields (server version, bits, creation time,
// used memory). Streams through an RdbReader, so it can run during a capture or over a stored file.
//
// The memory estimate is a model, not a measurement: it follows the allocations Redis makes for each
// encoding (dict entries, robj headers, sds headers, skiplist nodes, compact blobs as stored) rounded up to
// jemalloc size classes, the way `MEMORY USAGE` roughly would. Expect +-30% on real servers; it is meant to
// rank keys and size a restore target, not to bill.
import { ValueKind } from "./constants";
import { KeyHeader, RdbReader, RdbReaderOptions, RdbSummary, RdbVisitor } from "./reader";
import { StreamId } from "./stream";

export interface KeyStats {
  db: number;
  /** The key name (latin1 text of its bytes). */
  key: string;
  type: ValueKind;
  encoding: string;
  /** Elements (list items, members, fields, live stream entries); 1 for a string. */
  elements: number;
  /** Bytes the key takes in the RDB (type byte to end of value). */
  rdbBytes: number;
  /** Estimated bytes in memory (see the model above). */
  memory: number;
  expireAt: number;
}

export interface TypeStats {
  keys: number;
  elements: number;
  rdbBytes: number;
  memory: number;
}

export interface DbStats {
  keys: number;
  expiring: number;
  byType: Partial<Record<ValueKind, number>>;
  /** RESIZEDB hint written by the server (keys, expiring keys), when present. */
  sizeHint?: { keys: number; expires: number };
}

export interface InspectReport {
  rdbVersion: number;
  aux: Record<string, string>;
  /** "redis" or "valkey" and its version, from redis-ver / valkey-ver. */
  server?: { name: "redis" | "valkey"; version: string };
  bits?: number;
  /** Unix seconds when the snapshot was taken (AUX ctime). */
  ctime?: number;
  /** Memory the server reported using when it wrote the snapshot (AUX used-mem). */
  usedMemory?: number;
  keys: number;
  expiring: number;
  /** Sum of the per-key estimates. */
  estimatedMemory: number;
  dbs: Record<number, DbStats>;
  byType: Partial<Record<ValueKind, TypeStats>>;
  byEncoding: Record<string, number>;
  /** The biggest keys by estimated memory, largest first. */
  biggest: KeyStats[];
  functions: number;
  modules: Record<string, number>;
  moduleAux: number;
  bytes: number;
  checksum: RdbSummary["checksum"];
}

// ------------------------------------------------------------------------------------------ memory model

/** jemalloc small size classes up to 4 KiB, then pages. */
function alloc(n: number): number {
  if (n <= 8) return 8;
  if (n <= 128) return (n + 15) & ~15;
  if (n <= 4096) {
    // 4 classes per doubling: 160, 192, 224, 256, 320, 384, ...
    const p = 1 << (31 - Math.clz32(n - 1)); // largest power of two below n
    const step = p / 4;
    return Math.ceil(n / step) * step;
  }
  return Math.ceil(n / 4096) * 4096;
}

/** An sds string of n bytes (header by size, plus the terminating 0). */
function sds(n: number): number {
  const hdr = n < 256 ? 3 : n < 65536 ? 5 : 9;
  return alloc(hdr + n + 1);
}

const ROBJ = 16;
const DICT_ENTRY = 24;
/** Main dict entry + key sds + robj for the value (+ expires entry). */
function keyOverhead(keyLen: number, expiring: boolean): number {
  return DICT_ENTRY + sds(keyLen) + ROBJ + (expiring ? DICT_ENTRY : 0);
}

function bucketTable(n: number): number {
  let buckets = 1;
  while (buckets * 7 * 0.8 < n) buckets *= 2;
  return buckets * 64;
}

function dictTable(n: number): number {
  let size = 4;
  while (size < n) size *= 2;
  return size * 8;
}

class Estimator {
  elements = 0;
  bytes = 0; // element payload bytes
  perElement = 0;

  reset(): void {
    this.elements = 0;
    this.bytes = 0;
    this.perElement = 0;
  }
}

// ------------------------------------------------------------------------------------------ visitor

export interface InspectOptions extends RdbReaderOptions {
  /** How many biggest keys to keep. Default 20. */
  top?: number;
}

export class InspectVisitor implements RdbVisitor {
  private readonly report: InspectReport;
  private readonly top: number;
  private readonly est = new Estimator();
  /** Valkey 8.1+ hashes and sets: the open-addressing hashtable, not the dict. */
  private openHashtable = false;
  private start = 0;
  private entries = 0;
  reader: RdbReader | undefined;

  constructor(opts: InspectOptions = {}) {
    this.top = opts.top ?? 20;
    this.report = {
      rdbVersion: 0, aux: {}, keys: 0, expiring: 0, estimatedMemory: 0, dbs: {}, byType: {}, byEncoding: {}, biggest: [],
      functions: 0, modules: {}, moduleAux: 0, bytes: 0, checksum: "not-checked",
    };
  }

  onHeader(v: number): void {
    this.report.rdbVersion = v;
  }

  onAux(key: string, value: Buffer): void {
    const r = this.report;
    const text = value.toString("utf8");
    r.aux[key] = text;
    if (key === "redis-ver" && !r.server) r.server = { name: "redis", version: text };
    if (key === "valkey-ver") {
      r.server = { name: "valkey", version: text };
      const m = /^(\d+)\.(\d+)/.exec(text);
      this.openHashtable = !!m && Number(m[1]) * 100 + Number(m[2]) >= 801;
    }
    if (key === "redis-bits") r.bits = Number(text);
    if (key === "ctime") r.ctime = Number(text);
    if (key === "used-mem") r.usedMemory = Number(text);
  }

  onResizeDb(keys: number, expires: number): void {
    // the hint precedes the keys of the db most recently selected
    this.pendingHint = { keys, expires };
  }

  private pendingHint: { keys: number; expires: number } | undefined;
  private lastDb = -1;

  onDb(db: number): void {
    this.lastDb = db;
    this.pendingHint = undefined;
  }

  onFunction(): void {
    this.report.functions++;
  }

  onModuleAux(): void {
    this.report.moduleAux++;
  }

  onKeyStart(h: KeyHeader): void {
    this.start = h.offset;
    this.est.reset();
    this.entries = 0;
    if (h.type === "module" && h.module) this.report.modules[h.module.name] = (this.report.modules[h.module.name] ?? 0) + 1;
    const db = (this.report.dbs[h.db] ??= { keys: 0, expiring: 0, byType: {} });
    if (this.pendingHint && h.db === this.lastDb) {
      db.sizeHint = this.pendingHint;
      this.pendingHint = undefined;
    }
  }

  onString(v: Buffer): void {
    this.est.bytes += v.length;
    this.est.elements = 1;
  }

  onStringPiece(p: Buffer): void {
    this.est.bytes += p.length;
    this.est.elements = 1;
  }

  onListItem(b: Buffer): void {
    this.add(b.length);
  }

  onSetMember(b: Buffer): void {
    this.add(b.length);
  }

  onZsetMember(b: Buffer): void {
    this.add(b.length + 8);
  }

  onHashField(f: Buffer, v: Buffer): void {
    this.add(f.length + v.length);
    this.est.perElement++; // two strings per element
  }

  onStreamEntry(_id: StreamId, fields: Buffer[]): void {
    this.entries++;
    for (const f of fields) this.est.bytes += f.length;
  }

  onStreamNode(_m: Buffer, lp: Buffer): void {
    this.est.perElement += lp.length + 16 + 32; // the node as stored + its rax key and node overhead
  }

  onModuleData(raw: Buffer): void {
    this.est.bytes += raw.length;
  }

  private add(n: number): void {
    this.est.elements++;
    this.est.bytes += n;
  }

  onKeyEnd(h: KeyHeader): void {
    const r = this.report;
    const rdbBytes = (this.reader?.offset ?? this.start) - this.start;
    const elements = h.type === "stream" ? this.entries : h.type === "string" || h.type === "module" ? 1 : this.est.elements;
    const memory = keyOverhead(h.key.length, h.expireAt !== -1) + this.valueMemory(h, rdbBytes);
    r.keys++;
    if (h.expireAt !== -1) r.expiring++;
    r.estimatedMemory += memory;
    const db = r.dbs[h.db];
    db.keys++;
    if (h.expireAt !== -1) db.expiring++;
    db.byType[h.type] = (db.byType[h.type] ?? 0) + 1;
    const t = (r.byType[h.type] ??= { keys: 0, elements: 0, rdbBytes: 0, memory: 0 });
    t.keys++;
    t.elements += elements;
    t.rdbBytes += rdbBytes;
    t.memory += memory;
    r.byEncoding[h.encoding] = (r.byEncoding[h.encoding] ?? 0) + 1;
    const big = r.biggest;
    if (big.length < this.top || memory > big[big.length - 1].memory) {
      const k: KeyStats = { db: h.db, key: h.key.toString("latin1"), type: h.type, encoding: h.encoding, elements, rdbBytes, memory, expireAt: h.expireAt };
      let i = big.length;
      while (i > 0 && big[i - 1].memory < memory) i--;
      big.splice(i, 0, k);
      if (big.length > this.top) big.pop();
    }
  }

  /** The value's estimated memory by encoding family. */
  private valueMemory(h: KeyHeader, rdbBytes: number): number {
    const e = this.est;
    switch (h.encoding) {
      case "string":
        return e.bytes <= 44 ? 0 : sds(e.bytes); // up to 44 bytes Redis embeds the string in the robj
      case "listpack":
      case "ziplist":
      case "intset":
      case "zipmap":
        // compact blobs take about their serialized size (plus the allocation's rounding)
        return alloc(Math.max(rdbBytes - h.key.length - 2, 16));
      case "quicklist":
        return alloc(40) + (rdbBytes - h.key.length) + h.sizeHint * 32;
      case "linkedlist":
        return alloc(40) + e.elements * 32 + e.bytes;
      case "hashtable":
        // Valkey 8.1+: an open-addressing table of 64-byte buckets (7 entries each), one allocation per entry
        if (this.openHashtable) return bucketTable(e.elements) + e.elements * (h.type === "set" ? 8 : 16) + e.bytes;
        if (h.type === "set") return dictTable(e.elements) + e.elements * (DICT_ENTRY + 3 + 1) + e.bytes + e.elements * 8;
        return dictTable(e.elements) + e.elements * (DICT_ENTRY + 2 * 8) + e.bytes + e.elements * 16;
      case "skiplist":
        return dictTable(e.elements) + e.elements * (DICT_ENTRY + 8 + 48) + e.bytes;
      case "stream":
        return alloc(96) + e.perElement;
      default:
        return e.bytes;
    }
  }

  result(summary: RdbSummary): InspectReport {
    const r = this.report;
    r.bytes = summary.bytes;
    r.checksum = summary.checksum;
    return r;
  }
}

/** Inspects an RDB stream. */
export async function inspectRdbStream(source: AsyncIterable<Buffer>, opts: InspectOptions = {}): Promise<InspectReport> {
  const v = new InspectVisitor(opts);
  const reader = new RdbReader(v, opts);
  v.reader = reader;
  for await (const chunk of source) reader.feed(chunk);
  return v.result(reader.end());
}

/** A plain-text rendering of the report (for the CLI). */
export function formatInspectReport(r: InspectReport): string {
  const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
  const lines: string[] = [];
  lines.push(`RDB version ${r.rdbVersion}${r.server ? `, written by ${r.server.name} ${r.server.version}` : ""}${r.bits ? `, ${r.bits}-bit` : ""}`);
  if (r.ctime) lines.push(`created ${new Date(r.ctime * 1000).toISOString()}`);
  if (r.usedMemory !== undefined) lines.push(`server used memory when saved: ${mb(r.usedMemory)}`);
  lines.push(`${r.keys} keys (${r.expiring} expiring), estimated memory ${mb(r.estimatedMemory)}, ${r.bytes} bytes, checksum ${r.checksum}`);
  for (const [db, s] of Object.entries(r.dbs)) {
    const types = Object.entries(s.byType).map(([t, n]) => `${t} ${n}`).join(", ");
    lines.push(`  db${db}: ${s.keys} keys, ${s.expiring} expiring (${types})`);
  }
  for (const [t, s] of Object.entries(r.byType)) lines.push(`  ${t}: ${s.keys} keys, ${s.elements} elements, ${mb(s.memory)} estimated`);
  lines.push(`encodings: ${Object.entries(r.byEncoding).map(([e, n]) => `${e} ${n}`).join(", ")}`);
  if (r.functions) lines.push(`function libraries: ${r.functions}`);
  if (Object.keys(r.modules).length) lines.push(`module values: ${Object.entries(r.modules).map(([m, n]) => `${m} ${n}`).join(", ")}`);
  lines.push(`biggest keys:`);
  for (const k of r.biggest) lines.push(`  ${mb(k.memory).padStart(10)}  db${k.db} ${JSON.stringify(k.key)} ${k.type}/${k.encoding} ${k.elements} elements`);
  return lines.join("\n");
}
