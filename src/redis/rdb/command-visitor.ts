// The RDB visitor of a restore by commands: turns each key the reader reports into commands on a router
// (RESTORE with a re-encoded DUMP payload, SET, or plain collection commands; see commands.ts for the paths).
import type { CommandRouter } from "../client/cluster";
import { RDB_MAX_KNOWN_VERSION, RdbType, VALKEY_RDB_VERSION } from "./constants";
import { DROP_FIELD_TTLS_HINT, DumpBuilder, DumpUnsupportedError, hasIdmpState, idmpRefusal } from "./dump";
import { ByteWriter } from "./rdb-writer";
import { KeyHeader, RdbReader, RdbVisitor, StreamConsumer, StreamGroup, StreamIdmp, StreamIdmpCounters, StreamMeta, StreamPendingEntry } from "./reader";
import { StreamId, streamIdString } from "./stream";
import type { CommandRestoreOptions, TargetCapabilities } from "./command-summary";
import { Gate, LAST, RestoreShared, ROLE_CLEANUP, ROLE_FUNCTION, ROLE_GATE, ROLE_RESTORE, ROLE_SETNX, Sink } from "./command-replies";
import { globMatch } from "./glob";

const BATCH_BYTES = 64 * 1024;

/** Formats a score for ZADD so that it parses back to the same double. */
function scoreArg(v: number): string {
  if (v === Infinity) return "+inf";
  if (v === -Infinity) return "-inf";
  return String(v);
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
  /** What a drop option would have let through for the key that failed (keyFailed). */
  private keyDroppable: "fieldTtls" | "streamIdmp" | undefined;
  /** The key's field TTLs are being dropped (counted once per key). */
  private keyTtlsDropped = false;
  private gate: Gate | undefined;
  private pieces = false;
  private writtenDb = -1;
  // streams on the commands path
  private streamEntries = 0;
  private group: Buffer | undefined;
  private pel = new Map<string, StreamPendingEntry>();
  private consumer: Buffer | undefined;
  private idmp: StreamIdmp | undefined;

  constructor(
    private readonly router: CommandRouter,
    private readonly caps: TargetCapabilities,
    private readonly opts: CommandRestoreOptions,
    private readonly shared: RestoreShared,
  ) {
    // Valkey 9 takes its own numbering (80) besides the shared one; a Redis newer than this engine gets our newest
    const rdbVersion = caps.rdbVersion >= VALKEY_RDB_VERSION ? VALKEY_RDB_VERSION : Math.min(caps.rdbVersion, RDB_MAX_KNOWN_VERSION);
    this.builder = new DumpBuilder({ rdbVersion, dropFieldTtls: opts.dropFieldTtls, dropStreamIdmp: opts.dropStreamIdmp });
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
    if (h.keyMeta) {
      const specs = h.keyMeta.map((c) => `0x${c.toString(16).padStart(8, "0")}`).join(", ");
      this.shared.failKey(h.db, h.key, `the key carries module key metadata (Redis 8.6 KEY_META, class ${specs}) that only its module can restore; restore such a backup by replication into a server with that module loaded`);
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
    this.keyDroppable = undefined;
    this.keyTtlsDropped = false;
    this.idmp = undefined;
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
        this.shared.failKey(h.db, h.key, err.message, err.droppable);
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
      if (err instanceof DumpUnsupportedError) return this.shared.failKey(h.db, h.key, err.message, err.droppable);
      throw err;
    }
    this.shared.summary.droppedFieldTtls += this.builder.droppedFieldTtls;
    if (this.builder.droppedFieldTtls > 0) this.shared.summary.droppedFieldTtlKeys++;
    if (this.builder.droppedStreamIdmp) this.shared.summary.droppedStreamIdmp++;
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
      this.shared.failKey(h.db, h.key, err.message, err.droppable);
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
      else if (this.opts.dropFieldTtls) {
        this.shared.summary.droppedFieldTtls++;
        if (!this.keyTtlsDropped) this.shared.summary.droppedFieldTtlKeys++;
        this.keyTtlsDropped = true;
      } else if (this.keyFailed === undefined) {
        this.keyFailed = `hash field TTLs (Redis 7.4 HEXPIRE) cannot be kept on ${this.caps.server} ${this.caps.version}; allow dropping field TTLs (${DROP_FIELD_TTLS_HINT}) to restore the fields without expiry`;
        this.keyDroppable = "fieldTtls";
      }
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

  onStreamIdmp(idmp: StreamIdmp): void {
    if (this.path === "restore") this.builder.streamIdmp(idmp);
    else this.idmp = idmp;
  }

  onStreamIdmpProducer(pid: Buffer, iids: number): void {
    if (this.path === "restore") this.builder.streamIdmpProducer(pid, iids);
  }

  onStreamIdmpEntry(iid: Buffer, id: StreamId): void {
    if (this.path === "restore") this.builder.streamIdmpEntry(iid, id);
  }

  /** The end of a type-26 stream. By commands, its IDMP history cannot be recreated (XADD IDMP takes no ID). */
  onStreamIdmpCounters(c: StreamIdmpCounters): void {
    if (this.path === "restore") return this.builder.streamIdmpCounters(c);
    if (this.path !== "commands" || !hasIdmpState(this.idmp, c)) return;
    if (this.opts.dropStreamIdmp) this.shared.summary.droppedStreamIdmp++;
    else if (this.keyFailed === undefined) {
      this.keyFailed = idmpRefusal(this.idmp!, c, `${this.caps.server} ${this.caps.version} by commands`);
      this.keyDroppable = "streamIdmp";
    }
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
      this.shared.failKey(h.db, h.key, this.keyFailed, this.keyDroppable);
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
