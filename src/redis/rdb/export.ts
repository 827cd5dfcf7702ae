// Exports of an RDB: JSON lines (one key per line) and a RESP command stream for `redis-cli --pipe`.
// Both stream: a key's line/commands are written as its elements are parsed, so a 1 GB list never sits in
// memory; output is handed to the Writable chunk by chunk with backpressure.
//
// JSON line format (binary-safe): bytes that are valid UTF-8 become JSON strings, other bytes
// {"base64": "..."} (option binary: "base64" forces the object form everywhere). Strings longer than the
// reader's piece size are always {"base64": ...} (they arrive in pieces).
//   {"db":0,"key":"k","type":"string","encoding":"string","expireAt":null,"value":"v"}
//   list/set: "value":[e, ...]     zset: "value":[[member, score], ...] (scores: numbers, or "inf"/"-inf")
//   hash: "value":[[field, value], ...] with a third item, the field's expire time (unix ms), when it has one
//   stream: "value":{"entries":[["<ms>-<seq>",[field, value, ...]], ...],"length":n,"lastId":"..",
//           "firstId":"..","maxDeletedId":"..","entriesAdded":n,"groups":[{"name":..,"lastId":..,
//           "entriesRead":n,"pending":[[id, deliveryTimeMs, deliveryCount], ...],
//           "consumers":[{"name":..,"seenTime":ms,"activeTime":ms,"pending":[id, ...]}]}]}
//   module: "value":{"module":"<name>","encVersion":n,"base64":"<opaque serialization>"}
import { isUtf8 } from "node:buffer";
import { Writable } from "node:stream";
import { CommandRouter } from "../client/cluster";
import { ReplyKind } from "../client/pipelined";
import { RestoreShared } from "./command-replies";
import type { CommandRestoreOptions, RestoreSummary, TargetCapabilities } from "./command-summary";
import { RestoreVisitor } from "./command-visitor";
import { RDB_MAX_KNOWN_VERSION, rdbVersionOf, VALKEY_RDB_VERSION, ValueKind } from "./constants";
import { ByteWriter } from "./rdb-writer";
import { KeyHeader, RdbReader, RdbSummary, RdbVisitor, StreamConsumer, StreamGroup, StreamMeta, StreamPendingEntry } from "./reader";
import { StreamId, streamIdString } from "./stream";

export interface JsonExportOptions {
  binary?: "auto" | "base64";
  dbs?: number[];
  types?: ValueKind[];
}

function jsonBytes(b: Buffer, mode: "auto" | "base64"): string {
  if (mode === "auto" && isUtf8(b)) return JSON.stringify(b.toString("utf8"));
  return `{"base64":${JSON.stringify(b.toString("base64"))}}`;
}

function jsonScore(v: number): string {
  if (v === Infinity) return '"inf"';
  if (v === -Infinity) return '"-inf"';
  if (Number.isNaN(v)) return '"nan"';
  return JSON.stringify(v);
}

/** Visitor writing JSON lines into `out` (strings appended; the driver drains them to the Writable). */
export class JsonLinesVisitor implements RdbVisitor {
  readonly out: string[] = [];
  private first = true;
  private groupOpen = false;
  private inGroupPending = false;
  private consumerOpen = false;
  private b64carry: Buffer = Buffer.alloc(0);
  private moduleRaw: Buffer[] = [];
  private h: KeyHeader | undefined;
  private readonly mode: "auto" | "base64";

  constructor(private readonly opts: JsonExportOptions = {}) {
    this.mode = opts.binary ?? "auto";
  }

  private sep(): string {
    if (this.first) {
      this.first = false;
      return "";
    }
    return ",";
  }

  onKeyStart(h: KeyHeader): boolean {
    if ((this.opts.dbs && !this.opts.dbs.includes(h.db)) || (this.opts.types && !this.opts.types.includes(h.type))) return false;
    this.h = h;
    this.first = true;
    this.groupOpen = false;
    this.consumerOpen = false;
    this.inGroupPending = false;
    this.moduleRaw = [];
    this.out.push(
      `{"db":${h.db},"key":${jsonBytes(h.key, this.mode)},"type":"${h.type}","encoding":"${h.encoding}","expireAt":${h.expireAt === -1 ? "null" : h.expireAt},"value":`,
    );
    if (h.type === "list" || h.type === "set" || h.type === "zset" || h.type === "hash") this.out.push("[");
    if (h.type === "stream") this.out.push('{"entries":[');
    return true;
  }

  onString(v: Buffer): void {
    this.out.push(jsonBytes(v, this.mode));
  }

  onStringPiece(piece: Buffer, offset: number, total: number): void {
    if (offset === 0) this.out.push('{"base64":"');
    let data = this.b64carry.length ? Buffer.concat([this.b64carry, piece]) : piece;
    const last = offset + piece.length === total;
    const cut = last ? data.length : data.length - (data.length % 3);
    this.out.push(data.toString("base64", 0, cut));
    this.b64carry = Buffer.from(data.subarray(cut));
    data = Buffer.alloc(0);
    if (last) this.out.push('"}');
  }

  onListItem(b: Buffer): void {
    this.out.push(this.sep() + jsonBytes(b, this.mode));
  }

  onSetMember(b: Buffer): void {
    this.out.push(this.sep() + jsonBytes(b, this.mode));
  }

  onZsetMember(m: Buffer, score: number): void {
    this.out.push(`${this.sep()}[${jsonBytes(m, this.mode)},${jsonScore(score)}]`);
  }

  onHashField(f: Buffer, v: Buffer, expireAt: number): void {
    this.out.push(`${this.sep()}[${jsonBytes(f, this.mode)},${jsonBytes(v, this.mode)}${expireAt === -1 ? "" : `,${expireAt}`}]`);
  }

  onStreamEntry(id: StreamId, fields: Buffer[]): void {
    this.out.push(`${this.sep()}["${streamIdString(id)}",[${fields.map((f) => jsonBytes(f, this.mode)).join(",")}]]`);
  }

  onStreamMeta(m: StreamMeta): void {
    let s = `],"length":${m.length},"lastId":"${streamIdString(m.lastId)}"`;
    if (m.firstId) s += `,"firstId":"${streamIdString(m.firstId)}"`;
    if (m.maxDeletedId) s += `,"maxDeletedId":"${streamIdString(m.maxDeletedId)}"`;
    if (m.entriesAdded !== undefined) s += `,"entriesAdded":${m.entriesAdded}`;
    this.out.push(s + ',"groups":[');
    this.first = true;
  }

  private closeConsumer(): void {
    if (this.consumerOpen) this.out.push("]}");
    this.consumerOpen = false;
  }

  private closeGroup(): void {
    if (!this.groupOpen) return;
    if (this.inGroupPending) this.out.push('],"consumers":[');
    this.closeConsumer();
    this.out.push("]}");
    this.groupOpen = false;
    this.inGroupPending = false;
  }

  onStreamGroup(g: StreamGroup): void {
    this.closeGroup();
    this.out.push(
      `${this.sep()}{"name":${jsonBytes(g.name, this.mode)},"lastId":"${streamIdString(g.lastId)}"${g.entriesRead !== undefined ? `,"entriesRead":${g.entriesRead}` : ""},"pending":[`,
    );
    this.groupOpen = true;
    this.inGroupPending = true;
    this.pendingFirst = true;
  }

  private pendingFirst = true;
  private consumerFirst = true;
  private idFirst = true;

  onStreamPending(p: StreamPendingEntry): void {
    this.out.push(`${this.pendingFirst ? "" : ","}["${streamIdString(p.id)}",${p.deliveryTime},${p.deliveryCount}]`);
    this.pendingFirst = false;
  }

  onStreamConsumerCount(): void {
    this.out.push('],"consumers":[');
    this.inGroupPending = false;
    this.consumerFirst = true;
  }

  onStreamConsumer(c: StreamConsumer): void {
    this.closeConsumer();
    this.out.push(
      `${this.consumerFirst ? "" : ","}{"name":${jsonBytes(c.name, this.mode)},"seenTime":${c.seenTime}${c.activeTime !== undefined ? `,"activeTime":${c.activeTime}` : ""},"pending":[`,
    );
    this.consumerFirst = false;
    this.consumerOpen = true;
    this.idFirst = true;
  }

  onStreamConsumerPending(id: StreamId): void {
    this.out.push(`${this.idFirst ? "" : ","}"${streamIdString(id)}"`);
    this.idFirst = false;
  }

  onModuleData(raw: Buffer): void {
    this.moduleRaw.push(Buffer.from(raw));
  }

  onKeyEnd(h: KeyHeader): void {
    if (this.h !== h) return;
    switch (h.type) {
      case "list":
      case "set":
      case "zset":
      case "hash":
        this.out.push("]");
        break;
      case "stream":
        this.closeGroup();
        this.out.push("]}");
        break;
      case "module":
        this.out.push(`{"module":"${h.module!.name}","encVersion":${h.module!.encVersion},"base64":"${Buffer.concat(this.moduleRaw).toString("base64")}"}`);
        break;
    }
    this.out.push("}\n");
    this.h = undefined;
  }
}

async function writeOut(out: Writable, data: string | Buffer): Promise<void> {
  if (data.length === 0) return;
  if (!out.write(data)) {
    await new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        out.off("error", onError);
        resolve();
      };
      const onError = (e: Error): void => {
        out.off("drain", onDrain);
        reject(e);
      };
      out.once("drain", onDrain);
      out.once("error", onError);
    });
  }
}

/** Writes one JSON line per key of the RDB to `out` (not ended). Returns the reader's summary. */
export async function exportJsonLines(source: AsyncIterable<Buffer>, out: Writable, opts: JsonExportOptions = {}): Promise<RdbSummary> {
  const v = new JsonLinesVisitor(opts);
  const reader = new RdbReader(v);
  for await (const chunk of source) {
    reader.feed(chunk);
    if (v.out.length) {
      const s = v.out.join("");
      v.out.length = 0;
      await writeOut(out, s);
    }
  }
  return reader.end();
}

// ------------------------------------------------------------------------------------------ RESP

/** A router that writes commands to a byte buffer instead of a server (no replies). */
class WriterRouter implements CommandRouter {
  readonly cluster = false;
  onReply: CommandRouter["onReply"] = () => undefined;
  readonly w = new ByteWriter(1 << 16);
  private db = 0;
  private sent = 0;

  begin(_key: Buffer, argc: number): void {
    this.w.bytes(Buffer.from(`*${argc}\r\n`, "latin1"));
  }

  arg(a: Buffer | string): void {
    const b = typeof a === "string" ? Buffer.from(a) : a;
    this.w.bytes(Buffer.from(`$${b.length}\r\n`, "latin1")).bytes(b).u8(0x0d).u8(0x0a);
  }

  rawArgs(b: Buffer): void {
    this.w.bytes(b);
  }

  /** No server answers: every command counts as acknowledged (redis-cli --pipe reports real errors). */
  end(tag: number): void {
    this.onReply(tag, ReplyKind.Status, "OK", false, () => Buffer.alloc(0));
  }

  sendEncoded(_key: Buffer, bytes: Buffer): void {
    this.w.bytes(bytes);
  }

  broadcast(args: ReadonlyArray<Buffer | string>, tag: number): number {
    this.begin(Buffer.alloc(0), args.length);
    for (const a of args) this.arg(a);
    this.end(tag);
    return 1;
  }

  selectDb(db: number): void {
    if (db === this.db) return;
    this.begin(Buffer.alloc(0), 2);
    this.arg("SELECT");
    this.arg(String(db));
    this.db = db;
  }

  flush(): void {}

  get bytesSent(): number {
    return this.sent;
  }

  get pendingBytes(): number {
    return 0;
  }

  take(): Buffer {
    const b = Buffer.from(this.w.view());
    this.sent += b.length;
    this.w.reset();
    return b;
  }

  waitBelow(): Promise<void> {
    return Promise.resolve();
  }

  finish(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}
}

export interface RespExportOptions extends Pick<CommandRestoreOptions, "dbs" | "match" | "types" | "targetDb" | "dropFieldTtls" | "dropStreamIdmp" | "maxPayloadBytes" | "batchElements"> {
  /** Server the stream is meant for (decides command forms and DUMP versions). Default "7.2". */
  targetVersion?: string;
  targetServer?: "redis" | "valkey";
  /** "commands" (default: plain commands, loads anywhere) or "auto" (RESTORE payloads for collections). */
  mode?: "auto" | "commands";
}

/** Capabilities of a server version, as restore-by-commands would probe them (for offline exports). */
export function capabilitiesFor(server: "redis" | "valkey", version: string): TargetCapabilities {
  const m = /^(\d+)\.(\d+)/.exec(version);
  const v = m ? Number(m[1]) * 100 + Number(m[2]) : 0;
  const compat = server === "valkey" ? 702 : v; // Valkey declares Redis 7.2.4 compatibility
  return {
    server, version, rdbVersion: rdbVersionOf(server, version) ?? (server === "valkey" ? VALKEY_RDB_VERSION : RDB_MAX_KNOWN_VERSION), cluster: false, restore: true,
    restoreAbsTtl: compat >= 500, setPxat: compat >= 602, hsetMulti: compat >= 400, streams: compat >= 500, streamMeta: compat >= 700,
    createConsumer: compat >= 602, hashFieldTtl: server === "redis" ? v >= 704 : v >= 900, functions: compat >= 700,
  };
}

/**
 * Writes the RDB as a RESP command stream (SELECT, DEL + RPUSH/SADD/ZADD/HSET/XADD..., SET, PEXPIREAT) that
 * `redis-cli --pipe` loads; existing keys are replaced. Returns the same summary restore-by-commands gives
 * (keys = keys written to the stream).
 */
export async function exportResp(source: AsyncIterable<Buffer>, out: Writable, opts: RespExportOptions = {}): Promise<RestoreSummary> {
  const caps = capabilitiesFor(opts.targetServer ?? "redis", opts.targetVersion ?? "7.2");
  const router = new WriterRouter();
  const ropts: CommandRestoreOptions = { ...opts, target: { host: "-", port: 0 }, mode: opts.mode ?? "commands", replace: true };
  const t0 = Date.now();
  const summary: RestoreSummary = {
    keys: 0, skipped: 0, filtered: 0, expired: 0, failed: 0, failures: [], byRestore: 0, byCommands: 0, droppedFieldTtls: 0, droppedFieldTtlKeys: 0, droppedStreamIdmp: 0,
    refusedDroppable: { fieldTtls: 0, streamIdmp: 0 }, functions: { loaded: 0, kept: 0, failed: 0 }, bytesRead: 0, bytesSent: 0, ms: 0, target: caps,
  };
  const shared = new RestoreShared(summary, ropts, router);
  const reader = new RdbReader(new RestoreVisitor(router, caps, ropts, shared));
  for await (const chunk of source) {
    summary.bytesRead += chunk.length;
    reader.feed(chunk);
    await writeOut(out, router.take());
  }
  reader.end();
  await writeOut(out, router.take());
  summary.bytesSent = router.bytesSent;
  summary.ms = Date.now() - t0;
  return summary;
}
