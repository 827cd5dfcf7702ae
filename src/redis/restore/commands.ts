// Restore by commands: rebuild every key of an RDB on a running target (standalone or Redis Cluster) through
// pipelined commands, without replication. Works where restore-by-replication cannot: a target that refuses
// SYNC/REPLICAOF, an older or newer server, Valkey, a cluster with a different shard count.
//
// Strings always go by one `SET key value [NX] [PXAT t | PX ms]` (atomic, and cheaper for the server than
// RESTORE); a string over stringPieceBytes (1 MiB) is sent as SET + APPEND pieces, then PEXPIREAT.
// Other values take one of two paths (see src/redis/rdb/dump.ts for the encodings):
//  - RESTORE with a DUMP payload re-encoded for the target's RDB version (default whenever the target allows
//    the RESTORE command and the value fits maxPayloadBytes). Atomic per key; keeps LRU/LFU hints (5.0+).
//  - plain commands otherwise (mode "commands", RESTORE refused, or a value bigger than maxPayloadBytes):
//      list    RPUSH key batch...        set   SADD key batch...        zset  ZADD key score member ...
//      hash    HSET key f v ... (HMSET before 4.0), HPEXPIREAT key t FIELDS 1 f for field TTLs (7.4+)
//      stream  XADD key id f v ... per entry (an empty stream: XGROUP CREATE ... MKSTREAM + DESTROY),
//              XSETID key last-id [ENTRIESADDED n MAXDELETEDID id], XGROUP CREATE key g id [ENTRIESREAD n],
//              XCLAIM key g consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID per pending entry,
//              XGROUP CREATECONSUMER for consumers without pending entries (6.2+)
//      then PEXPIREAT key t for an expiring collection.
//    Not atomic per key: a concurrent reader may see a key partially built.
// Replace (default): RESTORE ... REPLACE, or DEL before a collection's commands (SET overwrites a string).
// Keep (replace: false): RESTORE without REPLACE (BUSYKEY -> skipped), SET NX, or for a collection an
// `EXISTS key` gate: its commands are held until the reply and dropped when the key exists.
// Keys whose TTL has already passed are not written (counted as expired).
//
// Flow control: at most maxInFlightBytes of commands sent without replies; the RDB source is read only as
// fast as the target answers. A target that dies mid-restore makes restoreByCommands reject with a
// CommandRestoreError naming the target and the progress so far.
import { Readable } from "node:stream";
import { ClusterRouter, CommandRouter, readSlotMap, SlotRange, StandaloneRouter } from "../client/cluster";
import { decodeCommand, PipelineError, ReplyKind } from "../client/pipelined";
import { RdbType, rdbVersionOf, ValueKind } from "../rdb/constants";
import { DumpBuilder, DumpUnsupportedError } from "../rdb/dump";
import { RdbParseError } from "../rdb/errors";
import { ByteWriter } from "../rdb/rdb-writer";
import { KeyHeader, ModuleInfo, RdbReader, RdbVisitor, StreamConsumer, StreamGroup, StreamMeta, StreamPendingEntry } from "../rdb/reader";
import { StreamId, streamIdString } from "../rdb/stream";
import { RedisEndpoint, RedisReplyError, RespConnection } from "../client/resp";
import { parseInfo } from "./target";

export class CommandRestoreError extends Error {
  override name = "CommandRestoreError";
  constructor(message: string, readonly summary?: RestoreSummary, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface TargetCapabilities {
  server: "redis" | "valkey";
  version: string;
  /** Highest RDB version the target loads (DUMP payload version). */
  rdbVersion: number;
  cluster: boolean;
  /** The RESTORE command is allowed (not renamed, not denied by ACL). */
  restore: boolean;
  /** RESTORE ... ABSTTL / IDLETIME / FREQ (5.0+). */
  restoreAbsTtl: boolean;
  /** SET ... PXAT (6.2+). */
  setPxat: boolean;
  /** Multi-field HSET (4.0+). */
  hsetMulti: boolean;
  streams: boolean;
  /** XSETID ENTRIESADDED/MAXDELETEDID and XGROUP CREATE ENTRIESREAD (7.0+). */
  streamMeta: boolean;
  /** XGROUP CREATECONSUMER (6.2+). */
  createConsumer: boolean;
  /** HPEXPIREAT (hash field TTLs, Redis 7.4+). */
  hashFieldTtl: boolean;
  /** FUNCTION LOAD (7.0+). */
  functions: boolean;
}

export interface CommandRestoreOptions {
  /** Target: a standalone server or any node of a cluster (detected by INFO cluster). */
  target: RedisEndpoint;
  /** "auto" (default): RESTORE when possible, else commands. "commands": never RESTORE. */
  mode?: "auto" | "commands";
  /** Replace existing keys (default true); false keeps them and counts them as skipped. */
  replace?: boolean;
  /** Only keys of these databases. */
  dbs?: number[];
  /** Only keys matching this glob (Redis MATCH syntax: * ? [abc] [^a] [a-z] \x), matched on the raw bytes. */
  match?: string;
  /** Only keys of these types. */
  types?: ValueKind[];
  /** Write every key into this db instead of its own (a cluster has db 0 only). */
  targetDb?: number;
  /** Load the RDB's function libraries (default true). */
  functions?: boolean;
  /** Restore hashes with field TTLs into targets without HFE by dropping the field TTLs (reported). */
  dropFieldTtls?: boolean;
  /** Bytes of commands sent without replies before the reader pauses. Default 16 MiB. */
  maxInFlightBytes?: number;
  /** Values whose DUMP payload would exceed this go by commands. Default 32 MiB. */
  maxPayloadBytes?: number;
  /** Elements per RPUSH/SADD/ZADD/HSET command at most (and about 64 KiB). Default 512. */
  batchElements?: number;
  /** No reply for this long while replies are outstanding fails the restore. Default 60000. */
  timeoutMs?: number;
  /** For a cluster target: use this slot map instead of asking (tests: a stale map exercises MOVED). */
  slotMap?: SlotRange[];
  onProgress?(summary: RestoreSummary): void;
  signal?: AbortSignal;
}

export interface KeyFailure {
  db: number;
  key: string;
  error: string;
}

export interface RestoreSummary {
  /** Keys written. */
  keys: number;
  /** Existing keys kept (replace: false). */
  skipped: number;
  /** Keys not selected by the db/match/type filters. */
  filtered: number;
  /** Keys whose TTL had passed: not written. */
  expired: number;
  failed: number;
  /** The first 100 failures. */
  failures: KeyFailure[];
  byRestore: number;
  byCommands: number;
  /** Hash field TTLs dropped (dropFieldTtls). */
  droppedFieldTtls: number;
  /** Function libraries (Redis 7.0+): loaded, kept because a library of that name exists (replace: false), failed. */
  functions: { loaded: number; kept: number; failed: number };
  /** RDB bytes read. */
  bytesRead: number;
  /** Command bytes sent. */
  bytesSent: number;
  ms: number;
  target: TargetCapabilities;
  /** Cluster only: redirections followed. */
  redirections?: { moved: number; ask: number; mapRefreshes: number };
}

// ------------------------------------------------------------------------------------------------ target

function versionNumber(v: string): number {
  const m = /^(\d+)\.(\d+)/.exec(v);
  return m ? Number(m[1]) * 100 + Number(m[2]) : 0;
}

/** Reads what the target can do (INFO server/cluster, a harmless RESTORE probe). */
export async function probeTarget(ep: RedisEndpoint, timeoutMs = 10_000): Promise<TargetCapabilities> {
  const c = await RespConnection.connect(ep, timeoutMs);
  try {
    const server = parseInfo(await c.command("INFO", "server"));
    const clusterInfo = parseInfo(await c.command("INFO", "cluster"));
    const valkey = server.get("valkey_version");
    const kind: "redis" | "valkey" = valkey || server.get("server_name") === "valkey" ? "valkey" : "redis";
    const version = (kind === "valkey" ? valkey : server.get("redis_version")) ?? "0.0.0";
    const redisCompat = versionNumber(server.get("redis_version") ?? version);
    let restore = true;
    try {
      // An invalid payload is rejected after the command and ACL checks and before anything is written.
      await c.command("RESTORE", "crs-backup:restore-probe", "0", "not-a-payload");
    } catch (err) {
      if (err instanceof RedisReplyError && /^(NOPERM|ERR unknown command)/i.test(err.reply)) restore = false;
      else if (!(err instanceof RedisReplyError)) throw err;
    }
    const v = versionNumber(version);
    return {
      server: kind,
      version,
      rdbVersion: rdbVersionOf(kind, version) ?? 12,
      cluster: clusterInfo.get("cluster_enabled") === "1",
      restore,
      restoreAbsTtl: redisCompat >= 500,
      setPxat: redisCompat >= 602,
      hsetMulti: redisCompat >= 400,
      streams: redisCompat >= 500,
      streamMeta: redisCompat >= 700,
      createConsumer: redisCompat >= 602,
      hashFieldTtl: kind === "redis" ? v >= 704 : v >= 900,
      functions: redisCompat >= 700,
    };
  } finally {
    c.close();
  }
}

// ------------------------------------------------------------------------------------------------ glob

/** Redis's stringmatchlen (glob) on bytes. */
export function globMatch(pattern: Buffer, s: Buffer, pi = 0, si = 0): boolean {
  while (pi < pattern.length) {
    const c = pattern[pi];
    if (c === 0x2a) { // *
      while (pi + 1 < pattern.length && pattern[pi + 1] === 0x2a) pi++;
      if (pi + 1 === pattern.length) return true;
      for (let k = si; k <= s.length; k++) if (globMatch(pattern, s, pi + 1, k)) return true;
      return false;
    }
    if (si >= s.length) return false;
    if (c === 0x3f) { // ?
      pi++;
      si++;
      continue;
    }
    if (c === 0x5b) { // [
      let p = pi + 1;
      const not = pattern[p] === 0x5e;
      if (not) p++;
      let matched = false;
      while (p < pattern.length && pattern[p] !== 0x5d) {
        if (pattern[p] === 0x5c && p + 1 < pattern.length) {
          p++;
          if (pattern[p] === s[si]) matched = true;
        } else if (p + 2 < pattern.length && pattern[p + 1] === 0x2d && pattern[p + 2] !== 0x5d) {
          let lo = pattern[p];
          let hi = pattern[p + 2];
          if (lo > hi) [lo, hi] = [hi, lo];
          if (s[si] >= lo && s[si] <= hi) matched = true;
          p += 2;
        } else if (pattern[p] === s[si]) {
          matched = true;
        }
        p++;
      }
      if (not) matched = !matched;
      if (!matched) return false;
      pi = p + 1;
      si++;
      continue;
    }
    if (c === 0x5c && pi + 1 < pattern.length) pi++; // escaped literal
    if (pattern[pi] !== s[si]) return false;
    pi++;
    si++;
  }
  return si === s.length;
}

// ------------------------------------------------------------------------------------------------ tags

// A command's tag: key sequence number * 16 + flags. LAST marks the key's final command: its reply settles the
// key's outcome (replies of one key arrive in order, redirections included).
const LAST = 1;
const ROLE_RESTORE = 2; // BUSYKEY error -> skipped
const ROLE_SETNX = 4; // nil reply -> skipped
const ROLE_GATE = 6; // EXISTS gate: 1 -> skip the key
const ROLE_CLEANUP = 8; // replies ignored
const ROLE_FUNCTION = 10; // FUNCTION LOAD: counted in summary.functions
const ROLE_MASK = 14;

type Outcome = "skipped" | "failed";

interface Gate {
  seq: number;
  key: Buffer;
  /** Database the key's commands must run in. */
  db: number;
  held: Array<{ bytes: Buffer; tag: number }>;
  state: "waiting" | "open" | "closed";
}

const BATCH_BYTES = 64 * 1024;

/** Formats a score for ZADD so that it parses back to the same double. */
function scoreArg(v: number): string {
  if (v === Infinity) return "+inf";
  if (v === -Infinity) return "-inf";
  return String(v);
}

// ------------------------------------------------------------------------------------------------ visitor

interface Sink {
  begin(key: Buffer, argc: number): void;
  arg(a: Buffer | string): void;
  rawArgs(b: Buffer): void;
  end(tag: number): void;
}

/**
 * The RDB visitor that turns keys into commands on a router. One per RDB source; several may share a router
 * and a RestoreShared (cluster backups: one RDB per shard, one summary).
 */
export class RestoreVisitor implements RdbVisitor {
  private seq = 0;
  private h: KeyHeader | undefined;
  private path: "restore" | "commands" | "skip" = "skip";
  private readonly builder: DumpBuilder;
  private readonly batch = new ByteWriter(BATCH_BYTES + 1024);
  private batchCount = 0;
  private batchCmd = "";
  private fieldTtls: Array<{ field: Buffer; at: number }> = [];
  private keyFailed: string | undefined;
  private gate: Gate | undefined;
  private pieces = false;
  private writtenDb = -1;
  // streams on the commands path
  private streamEntries = 0;
  private group: Buffer | undefined;
  private pel = new Map<string, StreamPendingEntry>();
  private consumer: Buffer | undefined;

  constructor(
    private readonly router: CommandRouter,
    private readonly caps: TargetCapabilities,
    private readonly opts: CommandRestoreOptions,
    private readonly shared: RestoreShared,
  ) {
    this.builder = new DumpBuilder({ rdbVersion: Math.min(caps.rdbVersion, 12), dropFieldTtls: opts.dropFieldTtls });
  }

  // -------------------------------------------------------------------- functions

  /** A function library: FUNCTION LOAD [REPLACE] on the target (every master of a cluster). */
  onFunction(code: Buffer): void {
    const f = this.shared.summary.functions;
    if (this.opts.functions === false) return;
    if (!this.caps.functions) {
      f.failed++;
      const name = /name=([^\s]+)/.exec(code.toString("latin1", 0, 200))?.[1] ?? "?";
      this.shared.note(-1, `(function library ${name})`, `functions need Redis 7.0+; the target is ${this.caps.server} ${this.caps.version}`);
      return;
    }
    const seq = this.shared.nextSeq++;
    const args: Array<Buffer | string> = this.opts.replace === false ? ["FUNCTION", "LOAD", code] : ["FUNCTION", "LOAD", "REPLACE", code];
    this.router.broadcast(args, seq * 16 + ROLE_FUNCTION);
  }

  // -------------------------------------------------------------------- key start / end

  onKeyStart(h: KeyHeader): boolean {
    const o = this.opts;
    const s = this.shared.summary;
    if ((o.dbs && !o.dbs.includes(h.db)) || (o.types && !o.types.includes(h.type)) || (this.shared.match && !globMatch(this.shared.match, h.key))) {
      s.filtered++;
      return false;
    }
    if (h.expireAt !== -1 && h.expireAt <= Date.now()) {
      s.expired++;
      return false;
    }
    const db = o.targetDb ?? h.db;
    if (this.caps.cluster && db !== 0) {
      this.shared.failKey(h.db, h.key, `the target is a cluster (database 0 only) and the key is in database ${h.db}; restore with targetDb 0 or a db filter`);
      return false;
    }
    if (!this.caps.streams && h.type === "stream") {
      this.shared.failKey(h.db, h.key, `the target (${this.caps.server} ${this.caps.version}) has no streams (they need Redis 5.0+)`);
      return false;
    }
    const restoreOk = this.caps.restore && o.mode !== "commands";
    if (h.type === "module" && !restoreOk) {
      this.shared.failKey(h.db, h.key, `module values (${h.module?.name}) can only be restored with RESTORE, which ${o.mode === "commands" ? "mode 'commands' excludes" : "the target refuses"}`);
      return false;
    }
    this.seq = this.shared.nextSeq++;
    this.shared.noteDb(this.seq, h.db);
    this.h = h;
    this.keyFailed = undefined;
    this.gate = undefined;
    this.fieldTtls = [];
    this.pieces = false;
    if (db !== this.writtenDb) {
      this.router.selectDb(db);
      this.writtenDb = db;
    }
    if (h.type === "string") {
      this.path = "commands";
      this.shared.summary.byCommands++;
    } else if (!restoreOk || (h.type === "stream" && h.sizeHint * 4096 > this.shared.maxPayload)) {
      // (a stream with that many nodes would not fit one payload: XADD entry by entry instead)
      this.path = "commands";
      this.startCommands(h);
    } else {
      this.path = "restore";
      try {
        this.builder.begin(h.type, { mayHaveFieldTtls: h.type === "hash" && h.rdbType >= RdbType.HASH_METADATA_PRE_GA, module: h.module });
      } catch (err) {
        if (!(err instanceof DumpUnsupportedError)) throw err;
        this.shared.failKey(h.db, h.key, err.message);
        this.h = undefined;
        return false;
      }
    }
    return true;
  }

  onKeyEnd(h: KeyHeader): void {
    if (this.h !== h) return; // filtered, or failed before any command
    if (this.path === "restore") this.sendRestore(h);
    else if (this.path === "commands") this.endCommands(h);
    this.h = undefined;
    this.gate = undefined;
  }

  // -------------------------------------------------------------------- RESTORE path

  private sendRestore(h: KeyHeader): void {
    let payload: Buffer;
    try {
      payload = this.builder.finish();
    } catch (err) {
      if (err instanceof DumpUnsupportedError) return this.shared.failKey(h.db, h.key, err.message);
      throw err;
    }
    this.shared.summary.droppedFieldTtls += this.builder.droppedFieldTtls;
    const caps = this.caps;
    const extra: string[] = [];
    let ttl = "0";
    if (h.expireAt !== -1) {
      if (caps.restoreAbsTtl) {
        ttl = String(h.expireAt);
        extra.push("ABSTTL");
      } else {
        ttl = String(Math.max(1, h.expireAt - Date.now()));
      }
    }
    if (this.opts.replace !== false) extra.push("REPLACE");
    if (caps.restoreAbsTtl) {
      if (h.lruIdle >= 0) extra.push("IDLETIME", String(h.lruIdle));
      else if (h.lfuFreq >= 0) extra.push("FREQ", String(h.lfuFreq));
    }
    const r = this.router;
    r.begin(h.key, 4 + extra.length);
    r.arg("RESTORE");
    r.arg(h.key);
    r.arg(ttl);
    r.arg(payload);
    for (const a of extra) r.arg(a);
    r.end(this.seq * 16 + ROLE_RESTORE + LAST);
    this.shared.summary.byRestore++;
  }

  /** The payload grew past the budget: replay what was gathered as commands, and go on with commands. */
  private spill(): void {
    const h = this.h!;
    let payload: Buffer;
    try {
      payload = this.builder.finish();
    } catch (err) {
      if (!(err instanceof DumpUnsupportedError)) throw err;
      this.shared.failKey(h.db, h.key, err.message);
      this.path = "skip";
      this.h = undefined;
      return;
    }
    this.path = "commands";
    this.startCommands(h);
    RdbReader.parseDumpPayload(payload, {
      onListItem: (b) => this.onListItem(b),
      onSetMember: (b) => this.onSetMember(b),
      onZsetMember: (m, sc) => this.onZsetMember(m, sc),
      onHashField: (f, v, e) => this.onHashField(f, v, e),
    });
  }

  private over(): boolean {
    return this.builder.size > this.shared.maxPayload;
  }

  // -------------------------------------------------------------------- value callbacks

  onString(value: Buffer): void {
    if (this.path !== "commands") return;
    const h = this.h!;
    const keep = this.opts.replace === false;
    let argc = 3;
    if (keep) argc++;
    if (h.expireAt !== -1) argc += 2;
    const r = this.router;
    r.begin(h.key, argc);
    r.arg("SET");
    r.arg(h.key);
    r.arg(value);
    if (keep) r.arg("NX");
    if (h.expireAt !== -1) {
      if (this.caps.setPxat) {
        r.arg("PXAT");
        r.arg(String(h.expireAt));
      } else {
        r.arg("PX");
        r.arg(String(Math.max(1, h.expireAt - Date.now())));
      }
    }
    r.end(this.seq * 16 + (keep ? ROLE_SETNX : 0) + LAST);
  }

  onStringPiece(piece: Buffer, offset: number, total: number): void {
    if (this.path !== "commands") return;
    const h = this.h!;
    const last = offset + piece.length === total && h.expireAt === -1 ? LAST : 0;
    if (offset === 0) {
      this.pieces = true;
      if (this.opts.replace === false) this.openGate(h); // APPENDs follow: SET NX alone would not do
      this.send(["SET", h.key, piece], last);
    } else {
      this.send(["APPEND", h.key, piece], last);
    }
  }

  onListItem(item: Buffer): void {
    if (this.path === "restore") {
      this.builder.listItem(item);
      if (this.over()) this.spill();
    } else if (this.path === "commands") {
      this.batchAdd("RPUSH", item);
    }
  }

  onSetMember(member: Buffer): void {
    if (this.path === "restore") {
      this.builder.setMember(member);
      if (this.over()) this.spill();
    } else if (this.path === "commands") {
      this.batchAdd("SADD", member);
    }
  }

  onZsetMember(member: Buffer, score: number): void {
    if (this.path === "restore") {
      this.builder.zsetMember(member, score);
      if (this.over()) this.spill();
    } else if (this.path === "commands") {
      this.batchAdd("ZADD", Buffer.from(scoreArg(score), "latin1"), member);
    }
  }

  onHashField(field: Buffer, value: Buffer, expireAt: number): void {
    if (this.path === "restore") {
      this.builder.hashField(field, value, expireAt);
      if (this.over()) this.spill();
      return;
    }
    if (this.path !== "commands") return;
    if (expireAt !== -1) {
      if (this.caps.hashFieldTtl) this.fieldTtls.push({ field: Buffer.from(field), at: expireAt });
      else if (this.opts.dropFieldTtls) this.shared.summary.droppedFieldTtls++;
      else this.keyFailed ??= `hash field TTLs (Redis 7.4 HEXPIRE) cannot be kept on ${this.caps.server} ${this.caps.version}; allow dropping field TTLs to restore the fields without expiry`;
    }
    this.batchAdd(this.caps.hsetMulti ? "HSET" : "HMSET", field, value);
  }

  onStreamNode(masterId: Buffer, listpack: Buffer): void {
    if (this.path === "restore") this.builder.streamNode(masterId, listpack);
  }

  onStreamEntry(id: StreamId, fields: Buffer[]): void {
    if (this.path !== "commands") return;
    this.send(["XADD", this.h!.key, streamIdString(id), ...fields], 0);
    this.streamEntries++;
  }

  onStreamMeta(meta: StreamMeta): void {
    if (this.path === "restore") return this.builder.streamMeta(meta);
    if (this.path !== "commands") return;
    const key = this.h!.key;
    if (this.streamEntries === 0) {
      // no live entries: create the key through a throw-away group
      this.send(["XGROUP", "CREATE", key, "crs-backup:restore", "0", "MKSTREAM"], 0);
      this.send(["XGROUP", "DESTROY", key, "crs-backup:restore"], 0);
    }
    const args: Array<Buffer | string> = ["XSETID", key, streamIdString(meta.lastId)];
    if (this.caps.streamMeta && meta.entriesAdded !== undefined) {
      args.push("ENTRIESADDED", String(meta.entriesAdded), "MAXDELETEDID", streamIdString(meta.maxDeletedId ?? { ms: 0n, seq: 0n }));
    }
    this.send(args, 0);
  }

  onStreamGroup(g: StreamGroup): void {
    if (this.path === "restore") return this.builder.streamGroup(g);
    if (this.path !== "commands") return;
    this.group = Buffer.from(g.name);
    this.pel = new Map();
    const args: Array<Buffer | string> = ["XGROUP", "CREATE", this.h!.key, g.name, streamIdString(g.lastId)];
    if (this.caps.streamMeta && g.entriesRead !== undefined && g.entriesRead >= 0) args.push("ENTRIESREAD", String(g.entriesRead));
    this.send(args, 0);
  }

  onStreamPending(p: StreamPendingEntry): void {
    if (this.path === "restore") return this.builder.streamPending(p);
    if (this.path === "commands") this.pel.set(streamIdString(p.id), p);
  }

  onStreamConsumerCount(n: number): void {
    if (this.path === "restore") this.builder.streamConsumerCount(n);
  }

  onStreamConsumer(c: StreamConsumer): void {
    if (this.path === "restore") return this.builder.streamConsumer(c);
    if (this.path !== "commands") return;
    this.consumer = Buffer.from(c.name);
    if (c.pending === 0 && this.caps.createConsumer) this.send(["XGROUP", "CREATECONSUMER", this.h!.key, this.group!, c.name], 0);
  }

  onStreamConsumerPending(id: StreamId): void {
    if (this.path === "restore") return this.builder.streamConsumerPending(id);
    if (this.path !== "commands") return;
    const idText = streamIdString(id);
    const p = this.pel.get(idText);
    const args: Array<Buffer | string> = ["XCLAIM", this.h!.key, this.group!, this.consumer!, "0", idText];
    if (p) args.push("TIME", String(p.deliveryTime), "RETRYCOUNT", String(p.deliveryCount));
    args.push("FORCE", "JUSTID");
    this.send(args, 0);
  }

  onModuleData(raw: Buffer): void {
    if (this.path === "restore") this.builder.moduleData(raw);
  }

  // -------------------------------------------------------------------- commands path

  private startCommands(h: KeyHeader): void {
    this.shared.summary.byCommands++;
    this.streamEntries = 0;
    this.batchCount = 0;
    this.batch.reset();
    if (this.opts.replace === false) this.openGate(h);
    else this.send(["DEL", h.key], 0);
  }

  /** Keep mode: hold this key's commands until EXISTS says it is absent. */
  private openGate(h: KeyHeader): void {
    const gate: Gate = { seq: this.seq, key: Buffer.from(h.key), db: this.writtenDb, held: [], state: "waiting" };
    this.shared.gates.set(this.seq, gate);
    const r = this.router;
    r.begin(h.key, 2);
    r.arg("EXISTS");
    r.arg(h.key);
    r.end(this.seq * 16 + ROLE_GATE);
    this.gate = gate;
  }

  private batchAdd(cmd: string, a: Buffer, b?: Buffer): void {
    if (this.batchCount > 0 && cmd !== this.batchCmd) this.flushBatch(0);
    this.batchCmd = cmd;
    const w = this.batch;
    w.bytes(Buffer.from(`$${a.length}\r\n`, "latin1")).bytes(a).u8(0x0d).u8(0x0a);
    this.batchCount++;
    if (b) {
      w.bytes(Buffer.from(`$${b.length}\r\n`, "latin1")).bytes(b).u8(0x0d).u8(0x0a);
      this.batchCount++;
    }
    if (this.batchCount >= this.shared.batchElements * (b ? 2 : 1) || w.len >= BATCH_BYTES) this.flushBatch(0);
  }

  private flushBatch(flags: number): void {
    if (this.batchCount === 0) return;
    const key = this.h!.key;
    const out = this.sink();
    out.begin(key, 2 + this.batchCount);
    out.arg(this.batchCmd);
    out.arg(key);
    out.rawArgs(this.batch.view());
    out.end(this.seq * 16 + (this.fieldTtls.length ? flags & ~LAST : flags));
    this.batch.reset();
    this.batchCount = 0;
    // field TTLs go right after the HSET that created their fields
    if (this.fieldTtls.length) {
      const ttls = this.fieldTtls;
      this.fieldTtls = [];
      const lastFlags = flags;
      for (let i = 0; i < ttls.length; i++) {
        this.send(["HPEXPIREAT", key, String(ttls[i].at), "FIELDS", "1", ttls[i].field], i === ttls.length - 1 ? lastFlags : 0);
      }
    }
  }

  /** Sends the key's final command, tagged LAST: its reply settles the key's outcome. */
  private endCommands(h: KeyHeader): void {
    if (this.keyFailed) {
      this.flushBatch(0);
      this.send(["DEL", h.key], ROLE_CLEANUP);
      this.shared.failKey(h.db, h.key, this.keyFailed);
      this.shared.forget(this.seq);
      return;
    }
    if (h.type === "string") {
      if (this.pieces && h.expireAt !== -1) this.send(["PEXPIREAT", h.key, String(h.expireAt)], LAST);
      return; // otherwise SET / the last APPEND carried LAST
    }
    if (h.expireAt !== -1) {
      this.flushBatch(0);
      this.send(["PEXPIREAT", h.key, String(h.expireAt)], LAST);
    } else if (this.batchCount > 0) {
      this.flushBatch(LAST);
    } else {
      this.send(["EXISTS", h.key], ROLE_CLEANUP + LAST); // a marker whose reply settles the key
    }
  }

  private sink(): Sink {
    const g = this.gate;
    return g && g.state !== "open" ? this.shared.holdSink(g) : this.router;
  }

  private send(args: ReadonlyArray<Buffer | string>, flags: number): void {
    const out = this.sink();
    out.begin(this.h!.key, args.length);
    for (const a of args) out.arg(a);
    out.end(this.seq * 16 + flags);
  }
}

/** State shared by the visitors of one restore (several RDBs into one target). */
export class RestoreShared {
  nextSeq = 1;
  readonly gates = new Map<number, Gate>();
  private readonly outcomes = new Map<number, { outcome: Outcome; error?: string }>();
  readonly match: Buffer | undefined;
  readonly maxPayload: number;
  readonly batchElements: number;
  private dbMarks: Array<[number, number]> = [];
  private readonly hold = new ByteWriter(256);

  constructor(readonly summary: RestoreSummary, opts: CommandRestoreOptions, private readonly router: CommandRouter) {
    this.match = opts.match !== undefined ? Buffer.from(opts.match) : undefined;
    this.maxPayload = opts.maxPayloadBytes ?? 32 << 20;
    this.batchElements = opts.batchElements ?? 512;
    router.onReply = (tag, kind, text, nil, command) => this.onReply(tag, kind, text, nil, command);
  }

  noteDb(seq: number, db: number): void {
    const last = this.dbMarks[this.dbMarks.length - 1];
    if (!last || last[1] !== db) this.dbMarks.push([seq, db]);
  }

  private dbOf(seq: number): number {
    let db = 0;
    for (const [s, d] of this.dbMarks) {
      if (s > seq) break;
      db = d;
    }
    return db;
  }

  failKey(db: number, key: Buffer, error: string): void {
    const s = this.summary;
    s.failed++;
    if (s.failures.length < 100) s.failures.push({ db, key: key.toString("latin1"), error });
  }

  /** Records a failure that is not a key (function libraries). */
  note(db: number, what: string, error: string): void {
    if (this.summary.failures.length < 100) this.summary.failures.push({ db, key: what, error });
  }

  /** The key was settled locally (failed): ignore its outstanding replies. */
  forget(seq: number): void {
    this.outcomes.delete(seq);
    this.gates.delete(seq);
  }

  /** Bytes held by gates waiting for their EXISTS reply. */
  get heldBytes(): number {
    let n = 0;
    for (const g of this.gates.values()) for (const c of g.held) n += c.bytes.length;
    return n;
  }

  /** A sink that holds (or, once the gate is decided, sends or drops) a gated key's commands. */
  holdSink(g: Gate): Sink {
    const w = this.hold;
    return {
      begin: (_key, argc) => {
        w.reset();
        w.bytes(Buffer.from(`*${argc}\r\n`, "latin1"));
      },
      arg: (a) => {
        const b = typeof a === "string" ? Buffer.from(a) : a;
        w.bytes(Buffer.from(`$${b.length}\r\n`, "latin1")).bytes(b).u8(0x0d).u8(0x0a);
      },
      rawArgs: (b) => void w.bytes(b),
      end: (tag) => {
        if (g.state === "waiting") g.held.push({ bytes: Buffer.from(w.view()), tag });
        else if (g.state === "open") this.router.sendEncoded(g.key, Buffer.from(w.view()), tag, g.db);
        else if (tag & LAST) this.settle(g.seq, () => w.view()); // closed: dropped, but the key is settled
      },
    };
  }

  private onReply(tag: number, kind: ReplyKind, text: string | undefined, nil: boolean, command: () => Buffer): void {
    const seq = Math.floor(tag / 16);
    const flags = tag - seq * 16;
    const role = flags & ROLE_MASK;
    if (role === ROLE_GATE) return this.onGate(seq, kind, text);
    if (role === ROLE_FUNCTION) {
      const f = this.summary.functions;
      if (kind !== ReplyKind.Error) f.loaded++;
      else if (/already exists/i.test(text ?? "")) f.kept++;
      else {
        f.failed++;
        this.note(-1, "(function library)", `FUNCTION LOAD failed: ${text}`);
      }
      return;
    }
    if (role !== ROLE_CLEANUP) {
      if (kind === ReplyKind.Error) {
        if (role === ROLE_RESTORE && text!.startsWith("BUSYKEY")) this.outcomes.set(seq, { outcome: "skipped" });
        else if (!this.outcomes.has(seq)) this.outcomes.set(seq, { outcome: "failed", error: `${text} (${String(decodeCommand(command())[0] ?? "?")})` });
      } else if (role === ROLE_SETNX && nil) {
        this.outcomes.set(seq, { outcome: "skipped" });
      }
    }
    if (flags & LAST) this.settle(seq, command);
  }

  private settle(seq: number, command: () => Buffer): void {
    const o = this.outcomes.get(seq);
    const s = this.summary;
    if (!o) {
      s.keys++;
      return;
    }
    this.outcomes.delete(seq);
    if (o.outcome === "skipped") {
      s.skipped++;
      return;
    }
    s.failed++;
    if (s.failures.length < 100) {
      const args = decodeCommand(command());
      const key = (String(args[0] ?? "").toUpperCase() === "XGROUP" ? args[2] : args[1]) ?? Buffer.alloc(0);
      s.failures.push({ db: this.dbOf(seq), key: key.toString("latin1"), error: o.error ?? "failed" });
    }
  }

  private onGate(seq: number, kind: ReplyKind, text: string | undefined): void {
    const g = this.gates.get(seq);
    if (!g) return;
    this.gates.delete(seq);
    if (kind === ReplyKind.Error) {
      this.outcomes.set(seq, { outcome: "failed", error: `EXISTS failed: ${text}` });
      g.state = "closed";
    } else if (text !== "0") {
      this.outcomes.set(seq, { outcome: "skipped" });
      g.state = "closed";
    } else {
      g.state = "open";
    }
    const held = g.held;
    g.held = [];
    for (const c of held) {
      if (g.state === "open") this.router.sendEncoded(g.key, c.bytes, c.tag, g.db);
      else if (c.tag & LAST) this.settle(seq, () => c.bytes);
    }
    if (g.state === "open") this.router.flush();
  }
}

// ------------------------------------------------------------------------------------------------ driver

/** An RDB: a stream of chunks (file/blob/socket stream, async generator) or a whole Buffer. */
export type RdbSource = AsyncIterable<Buffer> | Readable | Buffer;

async function* bufferChunks(b: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += 1 << 16) yield b.subarray(i, i + (1 << 16));
}

/** Connects to the target: a cluster router when it is a cluster node, else a standalone one. */
export async function connectRouter(opts: CommandRestoreOptions, caps: TargetCapabilities): Promise<CommandRouter> {
  if (caps.cluster) return ClusterRouter.connect(opts.target, { timeoutMs: opts.timeoutMs, slotMap: opts.slotMap });
  return StandaloneRouter.connect(opts.target, opts.timeoutMs);
}

function emptySummary(caps: TargetCapabilities): RestoreSummary {
  return { keys: 0, skipped: 0, filtered: 0, expired: 0, failed: 0, failures: [], byRestore: 0, byCommands: 0, droppedFieldTtls: 0, functions: { loaded: 0, kept: 0, failed: 0 }, bytesRead: 0, bytesSent: 0, ms: 0, target: caps };
}

/**
 * Restores one or more RDB streams (e.g. one per shard of a cluster backup) into the target by commands.
 * Resolves with the summary (per-key failures are counted there, not thrown); rejects with a
 * CommandRestoreError when the RDB is corrupt, the target becomes unreachable or stops answering, or the
 * caller aborts. Keys already written stay written.
 */
export async function restoreByCommands(sources: RdbSource | RdbSource[], opts: CommandRestoreOptions): Promise<RestoreSummary> {
  const t0 = Date.now();
  const where = `${opts.target.host}:${opts.target.port}`;
  let caps: TargetCapabilities;
  try {
    caps = await probeTarget(opts.target, opts.timeoutMs);
  } catch (err) {
    throw new CommandRestoreError(`cannot use restore target ${where}: ${(err as Error).message}`, undefined, { cause: err });
  }
  const summary = emptySummary(caps);
  let router: CommandRouter;
  try {
    router = await connectRouter(opts, caps);
  } catch (err) {
    throw new CommandRestoreError(`cannot connect to restore target ${where}: ${(err as Error).message}`, summary, { cause: err });
  }
  const shared = new RestoreShared(summary, opts, router);
  const maxInFlight = opts.maxInFlightBytes ?? 16 << 20;
  // an abort while we wait for replies closes the connections, which ends the wait at once
  const onAbort = (): void => router.close();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const list = (Array.isArray(sources) ? sources : [sources]).map((x) => (Buffer.isBuffer(x) ? bufferChunks(x) : x));
  const progress = (): void => {
    summary.ms = Date.now() - t0;
    summary.bytesSent = router.bytesSent;
    if (router instanceof ClusterRouter) summary.redirections = { ...router.redirections };
  };
  try {
    for (let i = 0; i < list.length; i++) {
      const visitor = new RestoreVisitor(router, caps, opts, shared);
      const reader = new RdbReader(visitor);
      for await (const chunk of list[i] as AsyncIterable<Buffer>) {
        if (opts.signal?.aborted) throw new CommandRestoreError(`restore aborted after ${summary.bytesRead} bytes of the RDB`, summary);
        summary.bytesRead += chunk.length;
        reader.feed(chunk);
        router.flush();
        if (router.pendingBytes + shared.heldBytes > maxInFlight) await router.waitBelow(maxInFlight / 2);
        if (opts.onProgress) {
          progress();
          opts.onProgress(summary);
        }
      }
      reader.end();
    }
    await router.finish();
    progress();
    return summary;
  } catch (err) {
    progress();
    const base = `restore into ${where} failed after ${summary.keys} keys written, ${summary.bytesRead} RDB bytes read`;
    if (err instanceof CommandRestoreError) throw err;
    if (opts.signal?.aborted) throw new CommandRestoreError(`restore into ${where} aborted after ${summary.keys} keys written, ${summary.bytesRead} RDB bytes read`, summary, { cause: err });
    if (err instanceof RdbParseError) throw new CommandRestoreError(`${base}: corrupt RDB: ${err.message}`, summary, { cause: err });
    if (err instanceof PipelineError) throw new CommandRestoreError(`${base}: ${err.message}`, summary, { cause: err });
    throw new CommandRestoreError(`${base}: ${(err as Error).message}`, summary, { cause: err });
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    router.close();
  }
}

export { readSlotMap };
export type { ModuleInfo };
