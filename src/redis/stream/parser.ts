// Cuts a master's replication stream into units at command boundaries: one command, or a whole MULTI ... EXEC
// (a script's effects arrive wrapped in one), never a part of either. Each unit knows the replication offsets
// around it and the database selected before it, so a durable offset is always a point a replica can resume
// from (`PSYNC <replid> <end+1>`) and a replay can start from (`SELECT <db>`).
//
// PING (the master's keep-alive) and REPLCONF GETACK advance the offset but carry no data: they come out as
// units with no bytes, so the offset still moves while nothing is stored.

export interface StreamUnit {
  /** Offset before the unit's first byte. */
  start: number;
  /** Offset after its last byte: the master's `master_repl_offset` once it has sent it. */
  end: number;
  /** The database selected before the unit. */
  db: number;
  /** The database selected after it (a SELECT unit changes it). */
  dbAfter: number;
  /** The unit's RESP bytes as the master sent them; empty for PING and REPLCONF. */
  raw: Buffer;
  /** Commands in `raw` (MULTI and EXEC included); 0 for PING and REPLCONF. */
  commands: number;
  /**
   * The unit moves keys between a cluster's masters (movesKeys): a RESTORE-ASKING (a key MIGRATE moved into this
   * master; the source master's stream has a plain DEL of it), or an atomic slot migration's own commands. Between
   * shards the order matters again, so replay shard by shard is not exact around it.
   */
  keyMove?: true;
}

/**
 * Whether a command of the stream marks keys moving between a cluster's masters:
 * - `RESTORE-ASKING`: classic migration (SETSLOT IMPORTING/MIGRATING + MIGRATE), on the importing master;
 * - `CLUSTER SYNCSLOTS ...`: atomic slot migration, on the importing master in Valkey 9 (ESTABLISH ... FINISH;
 *   the keys then arrive as plain SET/HSET/... and the source's stream has only plain UNLINKs) and on both
 *   masters in Redis 8.4+ (`CONF ASM-TASK`);
 * - `TRIMSLOTS`: Redis 8.4+ drops a migrated slot's keys (the source after a migration, the target after a
 *   failed one).
 */
export function movesKeys(name: string, arg1: string | undefined): boolean {
  return name === "restore-asking" || name === "trimslots" || (name === "cluster" && arg1?.toLowerCase() === "syncslots");
}

export class StreamFormatError extends Error {
  override name = "StreamFormatError";
}

interface Parsed {
  next: number;
  /** Lower-cased name of the command (first argument). */
  name: string;
  /** The second argument as text (SELECT's db, REPLCONF's sub-command), when short. */
  arg1?: string;
}

const CR = 0x0d;
const MAX_LINE = 32;

/** Reads the decimal number of a `*N` / `$N` header at `p` (the type byte), or undefined if incomplete. */
function header(buf: Buffer, p: number, type: number): { n: number; next: number } | undefined {
  if (p >= buf.length) return undefined;
  if (buf[p] !== type) throw new StreamFormatError(`expected '${String.fromCharCode(type)}' at a command boundary, got byte 0x${buf[p]!.toString(16)}`);
  let n = 0;
  let i = p + 1;
  for (; i < buf.length && buf[i] !== CR; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9 || i - p > MAX_LINE) throw new StreamFormatError(`bad length in the replication stream at byte ${i}`);
    n = n * 10 + d;
  }
  if (i + 1 >= buf.length) return undefined;
  return { n, next: i + 2 };
}

/** One multibulk command at `p`, or undefined when the buffer ends inside it. */
function parseCommand(buf: Buffer, p: number): Parsed | undefined {
  const argc = header(buf, p, 0x2a);
  if (!argc) return undefined;
  if (argc.n === 0) throw new StreamFormatError("empty command in the replication stream");
  let at = argc.next;
  let name = "";
  let arg1: string | undefined;
  for (let k = 0; k < argc.n; k++) {
    const len = header(buf, at, 0x24);
    if (!len) return undefined;
    const end = len.next + len.n;
    if (end + 2 > buf.length) return undefined;
    if (k === 0) name = buf.toString("latin1", len.next, Math.min(end, len.next + 16)).toLowerCase();
    else if (k === 1 && len.n <= 16) arg1 = buf.toString("latin1", len.next, end);
    at = end + 2;
  }
  return { next: at, name, arg1 };
}

export class CommandStreamParser {
  private buf: Buffer = Buffer.alloc(0);
  /** Position in buf of the next command to parse. */
  private pos = 0;
  /** Position in buf where the open transaction (MULTI) began, or -1. */
  private txStart = -1;
  private txCommands = 0;
  private txDb = 0;
  private txKeyMove = false;

  /**
   * @param offset the replication offset of the last byte before the stream's first byte (FULLRESYNC's offset, or
   *   the durable offset a PSYNC continued from)
   * @param db the database selected at that offset
   */
  constructor(public offset: number, public db: number) {}

  /** Offset of every byte received so far, complete units or not. */
  get received(): number {
    return this.offset + (this.buf.length - this.consumedBase());
  }

  private consumedBase(): number {
    return this.txStart >= 0 ? this.txStart : this.pos;
  }

  /** Feeds received bytes; returns the units they completed, in order. */
  push(chunk: Buffer): StreamUnit[] {
    const keep = this.consumedBase();
    this.buf = keep < this.buf.length ? Buffer.concat([this.buf.subarray(keep), chunk]) : chunk;
    this.pos -= keep;
    if (this.txStart >= 0) this.txStart -= keep;
    const units: StreamUnit[] = [];
    let unitStart = this.txStart >= 0 ? this.txStart : this.pos;
    for (;;) {
      const c = parseCommand(this.buf, this.pos);
      if (!c) break;
      const at = this.pos;
      this.pos = c.next;
      if (this.txStart >= 0) {
        this.txCommands++;
        if (c.name === "select" && c.arg1 !== undefined) this.db = Number(c.arg1);
        if (movesKeys(c.name, c.arg1)) this.txKeyMove = true;
        if (c.name === "exec" || c.name === "discard") {
          units.push(this.unit(unitStart, c.next, this.txDb, this.txCommands, false, this.txKeyMove));
          this.txKeyMove = false;
          this.txStart = -1;
          unitStart = c.next;
        }
        continue;
      }
      if (c.name === "multi") {
        this.txStart = at;
        this.txCommands = 1;
        this.txDb = this.db;
        this.txKeyMove = false;
        unitStart = at;
        continue;
      }
      const before = this.db;
      if (c.name === "select" && c.arg1 !== undefined) {
        const n = Number(c.arg1);
        if (!Number.isInteger(n) || n < 0) throw new StreamFormatError(`bad SELECT ${JSON.stringify(c.arg1)} in the replication stream`);
        this.db = n;
      }
      const empty = c.name === "ping" || c.name === "replconf";
      units.push(this.unit(at, c.next, before, empty ? 0 : 1, empty, movesKeys(c.name, c.arg1)));
      unitStart = c.next;
    }
    return units;
  }

  private unit(from: number, to: number, db: number, commands: number, empty = false, keyMove = false): StreamUnit {
    const start = this.offset;
    const end = start + (to - from);
    this.offset = end;
    // Copied: the unit outlives this buffer (held until its segment is committed).
    const u: StreamUnit = { start, end, db, dbAfter: this.db, raw: empty ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(from, to)), commands };
    if (keyMove) u.keyMove = true;
    return u;
  }
}

/** Splits stored unit bytes back into commands (for replay through a pipelined connection). */
export function splitCommands(raw: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  while (p < raw.length) {
    const c = parseCommand(raw, p);
    if (!c) throw new StreamFormatError(`a stored unit ends inside a command (at byte ${p} of ${raw.length})`);
    out.push(raw.subarray(p, c.next));
    p = c.next;
  }
  return out;
}
