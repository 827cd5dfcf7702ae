// A pipelined RESP2 connection for bulk writes (restoring keys by commands). Unlike RespConnection (one
// Promise per command, fine for admin traffic), it encodes commands straight into large output chunks, sends
// them in batches, and hands every reply to one callback with the small numeric tag the caller gave the
// command. It keeps, per command in flight, a reference to its bytes so a caller can read the command back
// (error messages, cluster redirections) without copying anything on the success path.
//
// Flow control is by bytes in flight (sent, reply not yet received): the owner calls waitBelow(limit) between
// batches. A connection that closes, errors, or sends nothing for `timeoutMs` while replies are outstanding
// fails: every waiter is rejected with a PipelineError naming the address and how many replies were missing.
import net from "node:net";
import { RedisEndpoint, RespConnection } from "./resp";

export class PipelineError extends Error {
  override name = "PipelineError";
}

/** Reply kinds (the RESP2 type byte). */
export const enum ReplyKind {
  Status = 0x2b, // +
  Error = 0x2d, // -
  Integer = 0x3a, // :
  Bulk = 0x24, // $
  Array = 0x2a, // *
}

/**
 * Called for every reply in order. `text` is set for status, error and integer replies; `nil` for null
 * bulk/array replies. During the call, conn.currentCommand() returns the command's bytes.
 */
export type ReplyHandler = (tag: number, kind: ReplyKind, text: string | undefined, nil: boolean) => void;

const CHUNK = 256 * 1024;
const CRLF = 0x0d;

/** Small integers as ASCII, for RESP headers ("*3", "$5"). */
const DIGITS: Buffer[] = Array.from({ length: 1024 }, (_, i) => Buffer.from(String(i), "latin1"));

export interface PipelineOptions {
  /** Fail when replies are outstanding and nothing arrives for this long. Default 60000. */
  timeoutMs?: number;
}

export class PipelinedConnection {
  onReply: ReplyHandler = () => undefined;
  readonly address: string;

  // output
  private out: Buffer = Buffer.allocUnsafe(CHUNK);
  private outLen = 0;
  private flushedTo = 0;
  private cmdStart = 0;

  // commands awaiting replies: a ring (power-of-two capacity, grown by doubling) of parallel arrays
  private qTag = new Float64Array(1024);
  private qStart = new Int32Array(1024);
  private qEnd = new Int32Array(1024);
  private qBuf: Buffer[] = new Array<Buffer>(1024);
  private qMask = 1023;
  private head = 0; // next reply's slot (monotonic counter; slot = counter & mask)
  private tail = 0; // next command's slot
  private inflight = 0;
  private sentCommands = 0;
  private sentBytes = 0;
  private repliedCommands = 0;

  // input
  private inBuf: Buffer = Buffer.alloc(0);
  private rText: string | undefined;
  private rNil = false;
  private current = -1;

  private failure: PipelineError | undefined;
  private waiters: Array<{ limit: number; resolve: () => void; reject: (e: Error) => void }> = [];
  private lastData = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly timeoutMs: number;
  private closing = false;

  private constructor(readonly socket: net.Socket, readonly endpoint: RedisEndpoint, opts: PipelineOptions) {
    this.address = `${endpoint.host}:${endpoint.port}`;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    socket.on("data", (d: Buffer) => this.onData(d));
    socket.on("error", (e) => this.fail(`connection to ${this.address} failed: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    socket.on("close", () => this.fail(`${this.address} closed the connection`));
  }

  /** Connects (TLS as the endpoint says), authenticates, and switches to pipelined mode. */
  static async connect(ep: RedisEndpoint, opts: PipelineOptions = {}): Promise<PipelinedConnection> {
    // RespConnection does the connect/TLS/AUTH dance; then we take over its socket.
    const rc = await RespConnection.connect(ep, opts.timeoutMs ?? 10_000);
    const { socket, buffered } = rc.detach();
    const c = new PipelinedConnection(socket, ep, opts);
    if (buffered.length) c.onData(buffered);
    return c;
  }

  get inflightBytes(): number {
    return this.inflight;
  }

  get pendingReplies(): number {
    return this.tail - this.head;
  }

  get error(): PipelineError | undefined {
    return this.failure;
  }

  get stats(): { sent: number; replied: number; bytes: number } {
    return { sent: this.sentCommands, replied: this.repliedCommands, bytes: this.sentBytes };
  }

  // ------------------------------------------------------------------ encoding

  /** Starts a command of `argc` arguments; follow with argc arg() calls and end(tag). */
  begin(argc: number): void {
    this.cmdStart = this.outLen;
    this.header(0x2a, argc);
  }

  arg(a: Buffer | string): void {
    if (typeof a === "string") {
      if (a.length < 32 && isAscii(a)) {
        // command names and numbers: a byte loop beats the utf8 encoder's call overhead
        const n = a.length;
        this.header(0x24, n);
        this.room(n + 2);
        const o = this.out;
        for (let i = 0; i < n; i++) o[this.outLen + i] = a.charCodeAt(i);
        this.outLen += n;
      } else {
        const n = Buffer.byteLength(a);
        this.header(0x24, n);
        this.room(n + 2);
        this.out.write(a, this.outLen, "utf8");
        this.outLen += n;
      }
    } else {
      this.header(0x24, a.length);
      this.room(a.length + 2);
      if (a.length < 64) {
        for (let i = 0; i < a.length; i++) this.out[this.outLen + i] = a[i];
      } else {
        this.out.set(a, this.outLen);
      }
      this.outLen += a.length;
    }
    this.out[this.outLen++] = 0x0d;
    this.out[this.outLen++] = 0x0a;
  }

  /** Appends already RESP-encoded arguments ($len CRLF bytes CRLF ...) to the command in progress. */
  rawArgs(bytes: Buffer): void {
    this.room(bytes.length);
    this.out.set(bytes, this.outLen);
    this.outLen += bytes.length;
  }

  /** Finishes the command started by begin(); its reply will be reported with `tag`. */
  end(tag: number): void {
    this.enqueue(tag, this.out, this.cmdStart, this.outLen);
    if (this.outLen - this.flushedTo >= CHUNK / 2) this.flush();
  }

  /** Sends already-encoded command bytes (a redirected command) with a tag. */
  sendRaw(bytes: Buffer, tag: number): void {
    this.flush();
    this.enqueue(tag, bytes, 0, bytes.length);
    if (!this.failure) this.socket.write(bytes);
  }

  command(args: ReadonlyArray<Buffer | string | number>, tag: number): void {
    this.begin(args.length);
    for (const a of args) this.arg(typeof a === "number" ? String(a) : a);
    this.end(tag);
  }

  private enqueue(tag: number, buf: Buffer, start: number, end: number): void {
    // the "no reply for timeoutMs" clock starts when the first outstanding command is sent
    if (this.head === this.tail) this.lastData = Date.now();
    if (this.tail - this.head > this.qMask) this.grow();
    const i = this.tail & this.qMask;
    this.qTag[i] = tag;
    this.qBuf[i] = buf;
    this.qStart[i] = start;
    this.qEnd[i] = end;
    this.tail++;
    this.inflight += end - start;
    this.sentBytes += end - start;
    this.sentCommands++;
    if (this.timer === undefined) this.armTimer();
  }

  private header(type: number, n: number): void {
    this.room(24);
    const o = this.out;
    o[this.outLen++] = type;
    if (n < 1024) {
      const d = DIGITS[n];
      for (let i = 0; i < d.length; i++) o[this.outLen++] = d[i];
    } else {
      this.outLen += o.write(String(n), this.outLen, "latin1");
    }
    o[this.outLen++] = 0x0d;
    o[this.outLen++] = 0x0a;
  }

  /** Makes room for n more bytes in the output chunk, moving the command in progress to a new chunk. */
  private room(n: number): void {
    if (this.outLen + n <= this.out.length) return;
    this.flushUpTo(this.cmdStart);
    const partial = this.outLen - this.cmdStart;
    const next = Buffer.allocUnsafe(Math.max(CHUNK, partial + n + 64));
    this.out.copy(next, 0, this.cmdStart, this.outLen);
    this.out = next;
    this.outLen = partial;
    this.cmdStart = 0;
    this.flushedTo = 0;
  }

  /** Writes everything encoded so far. */
  flush(): void {
    this.flushUpTo(this.outLen);
  }

  private flushUpTo(end: number): void {
    if (end > this.flushedTo) {
      if (!this.failure) this.socket.write(this.out.subarray(this.flushedTo, end));
      this.flushedTo = end;
    }
  }

  // ------------------------------------------------------------------ flow control

  /** Resolves when the bytes in flight are at most `limit` (0: every reply received). */
  waitBelow(limit: number): Promise<void> {
    this.flush();
    if (this.failure) return Promise.reject(this.failure);
    if (this.inflight <= limit && (limit > 0 || this.pendingReplies === 0)) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ limit, resolve, reject }));
  }

  /** The command whose reply is being delivered (valid during onReply only). */
  currentCommand(): Buffer {
    const i = this.current;
    if (i < 0) return Buffer.alloc(0);
    const j = i & this.qMask;
    return this.qBuf[j].subarray(this.qStart[j], this.qEnd[j]);
  }

  close(): void {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket.destroy();
  }

  // ------------------------------------------------------------------ replies

  private onData(d: Buffer): void {
    this.lastData = Date.now();
    let buf = this.inBuf.length ? Buffer.concat([this.inBuf, d]) : d;
    let p = 0;
    const n = buf.length;
    while (p < n) {
      if (this.head === this.tail) {
        this.fail(`${this.address} sent an unexpected reply (no command pending)`);
        return;
      }
      const e = this.parseReply(buf, p);
      if (e < 0) break;
      const h = this.head & this.qMask;
      const kind = buf[p] as ReplyKind;
      p = e;
      this.current = this.head;
      this.inflight -= this.qEnd[h] - this.qStart[h];
      this.repliedCommands++;
      try {
        this.onReply(this.qTag[h], kind, this.rText, this.rNil);
      } catch (err) {
        this.fail(`reply handler failed: ${(err as Error).message}`);
        return;
      }
      this.current = -1;
      this.qBuf[h] = EMPTY; // let the chunk go once nothing refers to it
      this.head++;
    }
    this.inBuf = p < n ? Buffer.from(buf.subarray(p)) : EMPTY;
    buf = EMPTY;
    this.wake();
  }

  /** Doubles the ring, keeping the outstanding commands in order. */
  private grow(): void {
    const n = this.qMask + 1;
    const tag = new Float64Array(n * 2);
    const start = new Int32Array(n * 2);
    const end = new Int32Array(n * 2);
    const bufs = new Array<Buffer>(n * 2);
    for (let c = this.head; c < this.tail; c++) {
      const from = c & this.qMask;
      const to = c & (n * 2 - 1);
      tag[to] = this.qTag[from];
      start[to] = this.qStart[from];
      end[to] = this.qEnd[from];
      bufs[to] = this.qBuf[from];
    }
    this.qTag = tag;
    this.qStart = start;
    this.qEnd = end;
    this.qBuf = bufs;
    this.qMask = n * 2 - 1;
  }

  private wake(): void {
    if (!this.waiters.length) return;
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.inflight <= w.limit && (w.limit > 0 || this.pendingReplies === 0)) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  /** Parses one reply at p; returns the offset after it, or -1 if incomplete. Sets rText / rNil. */
  private parseReply(b: Buffer, p: number): number {
    const t = b[p];
    const eol = b.indexOf(CRLF, p + 1);
    if (eol < 0 || eol + 1 >= b.length) return -1;
    this.rNil = false;
    this.rText = undefined;
    switch (t) {
      case 0x2b: // +
        this.rText = eol - p === 3 && b[p + 1] === 0x4f && b[p + 2] === 0x4b ? "OK" : b.toString("utf8", p + 1, eol);
        return eol + 2;
      case 0x2d: // -
      case 0x3a: // :
        this.rText = b.toString("utf8", p + 1, eol);
        return eol + 2;
      case 0x24: { // $
        const len = parseInt(b.toString("latin1", p + 1, eol), 10);
        if (len < 0) {
          this.rNil = true;
          return eol + 2;
        }
        const end = eol + 2 + len + 2;
        return end <= b.length ? end : -1;
      }
      case 0x2a: { // *
        const count = parseInt(b.toString("latin1", p + 1, eol), 10);
        if (count < 0) {
          this.rNil = true;
          return eol + 2;
        }
        let q = eol + 2;
        for (let i = 0; i < count; i++) {
          if (q >= b.length) return -1;
          q = this.parseReply(b, q);
          if (q < 0) return -1;
        }
        this.rNil = false;
        this.rText = undefined;
        return q;
      }
      default:
        this.fail(`${this.address} sent a malformed reply (type byte 0x${t.toString(16)})`);
        return -1;
    }
  }

  private armTimer(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.failure || this.closing) return;
      if (this.pendingReplies === 0) return; // re-armed by the next command
      const quiet = Date.now() - this.lastData;
      if (quiet >= this.timeoutMs) {
        this.fail(`no reply from ${this.address} for ${this.timeoutMs} ms with ${this.pendingReplies} replies outstanding`);
        this.socket.destroy();
        return;
      }
      this.armTimer();
    }, Math.max(50, this.timeoutMs - (Date.now() - this.lastData)));
    this.timer.unref();
  }

  private fail(message: string): void {
    if (this.failure) return;
    if (this.closing) {
      this.failure = new PipelineError(`${this.address}: connection closed`);
    } else {
      const missing = this.pendingReplies;
      this.failure = new PipelineError(missing > 0 ? `${message} with ${missing} replies outstanding (${this.repliedCommands} of ${this.sentCommands} commands answered)` : message);
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(this.failure);
    this.socket.destroy();
  }
}

const EMPTY = Buffer.alloc(0);

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}

/** Splits encoded RESP command bytes back into arguments (for messages and redirections). */
export function decodeCommand(cmd: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let p = cmd.indexOf(CRLF) + 2;
  const argc = parseInt(cmd.toString("latin1", 1, p - 2), 10);
  for (let i = 0; i < argc && p < cmd.length; i++) {
    const eol = cmd.indexOf(CRLF, p);
    const len = parseInt(cmd.toString("latin1", p + 1, eol), 10);
    out.push(cmd.subarray(eol + 2, eol + 2 + len));
    p = eol + 2 + len + 2;
  }
  return out;
}
