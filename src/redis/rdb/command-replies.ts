// The reply book-keeping of a restore by commands: every command is sent with a tag naming its key and role;
// the replies (in order per key, redirections included) settle each key's outcome in the summary, and decide
// the EXISTS gates that hold a kept key's commands (replace: false) until the target says the key is absent.
import type { CommandRouter } from "../client/cluster";
import { decodeCommand, ReplyKind } from "../client/pipelined";
import { ByteWriter } from "./rdb-writer";
import type { CommandRestoreOptions, RestoreSummary } from "./command-summary";

// A command's tag: key sequence number * 16 + flags. LAST marks the key's final command: its reply settles the
// key's outcome (replies of one key arrive in order, redirections included).
export const LAST = 1;
export const ROLE_RESTORE = 2; // BUSYKEY error -> skipped
export const ROLE_SETNX = 4; // nil reply -> skipped
export const ROLE_GATE = 6; // EXISTS gate: 1 -> skip the key
export const ROLE_CLEANUP = 8; // replies ignored
export const ROLE_FUNCTION = 10; // FUNCTION LOAD: counted in summary.functions
export const ROLE_MASK = 14;

type Outcome = "skipped" | "failed";

export interface Gate {
  seq: number;
  key: Buffer;
  /** Database the key's commands must run in. */
  db: number;
  held: Array<{ bytes: Buffer; tag: number }>;
  state: "waiting" | "open" | "closed";
}

/** Where a key's commands go: the router, or the gate holding them. */
export interface Sink {
  begin(key: Buffer, argc: number): void;
  arg(a: Buffer | string): void;
  rawArgs(b: Buffer): void;
  end(tag: number): void;
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

  failKey(db: number, key: Buffer, error: string, droppable?: "fieldTtls" | "streamIdmp"): void {
    const s = this.summary;
    s.failed++;
    if (droppable) s.refusedDroppable[droppable]++;
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
