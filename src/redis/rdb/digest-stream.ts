// DigestStream: a Writable that computes the DEBUG DIGEST of the RDB written into it in a worker process at the
// lowest CPU priority (nice 19, digest-worker-main.ts), so the ~1 us/key of hashing only uses CPU nothing else
// wants. With `gzip`, what is written is a stored (gzip) file: the worker inflates it too and the result carries
// the plain bytes' count and SHA-256 (the caller checks them against the record). Backpressure: at most
// `maxQueuedBytes` (default 8 MiB) may wait in the worker's queue before write() stops accepting. The result (or
// an RdbParseError naming the offset) comes from result() after end().
//
// A process, not a worker thread: a thread's V8 isolate (~35 MB) would count in the server's own memory (a
// capture plus a digest went from 94 to 130 MB), and a thread cannot be given a lower priority portably. The
// workers are shared (starting one costs ~50 ms of CPU, which fifty small backups cannot each afford): up to one
// per spare core, started on demand, each serving several streams (sessions), a new stream going to the least
// busy; an idle worker exits after IDLE_MS and never keeps the process alive.
import { ChildProcess, fork } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { DigestResult, ScoreFormatOption } from "./digest";
import { RdbParseError } from "./errors";
import { RdbSummary } from "./reader";

export interface DigestStreamOptions extends ScoreFormatOption {
  /** Bytes handed to the worker but not yet digested before writes wait. Default 8 MiB (2 MiB with `gzip`). */
  maxQueuedBytes?: number;
  /** What is written is gzip (a stored file): inflated in the worker, the result has `plain`. */
  gzip?: boolean;
  verifyChecksum?: boolean;
  stringPieceBytes?: number;
}

export type DigestOutcome = DigestResult & { rdb: RdbSummary; plain?: { bytes: number; sha256: string } };
type Outcome = DigestOutcome;
type Reply = { id: number; ack?: number; result?: Outcome; error?: { message: string; offset?: number; expected?: string } };

interface Session {
  reply(m: Reply): void;
  crashed(e: Error): void;
}

const IDLE_MS = 30_000;

/** One worker process and the streams it is digesting. */
class PooledWorker {
  readonly sessions = new Map<number, Session>();
  private readonly worker: ChildProcess;
  private idle: NodeJS.Timeout | undefined;
  dead = false;

  constructor(private readonly onExit: (w: PooledWorker) => void) {
    // execArgv: none of the parent's (--cpu-prof, --inspect, a test runner's flags) belong to the worker.
    this.worker = fork(path.join(__dirname, "digest-worker-main.js"), [], { serialization: "advanced", execArgv: [], stdio: ["ignore", "ignore", "inherit", "ipc"] });
    // Lowered from here at once, so the worker's own start-up (~50 ms of CPU: Node's bootstrap, loading the
    // digest code) already runs at nice 19; the threads it starts inherit it (the worker also lowers every
    // thread of its own, for what ran before this call).
    try {
      if (this.worker.pid !== undefined) os.setPriority(this.worker.pid, 19);
    } catch {
      // exited already, or not permitted: the worker lowers itself
    }
    this.unref();
    this.worker.on("message", (m: Reply) => this.sessions.get(m.id)?.reply(m));
    const die = (e: Error) => {
      if (this.dead) return;
      this.dead = true;
      clearTimeout(this.idle);
      this.onExit(this);
      for (const s of [...this.sessions.values()]) s.crashed(e);
      this.sessions.clear();
    };
    this.worker.on("error", die);
    this.worker.on("exit", (code, signal) => die(new Error(`the digest worker exited (${signal ?? `code ${code}`})`)));
  }

  private ref(): void {
    this.worker.ref();
    this.worker.channel?.ref();
  }

  private unref(): void {
    this.worker.unref();
    this.worker.channel?.unref();
  }

  get pid(): number | undefined {
    return this.worker.pid;
  }

  post(m: unknown): void {
    if (this.dead || !this.worker.connected) return;
    this.worker.send(m as Parameters<ChildProcess["send"]>[0]);
  }

  add(id: number, s: Session): void {
    clearTimeout(this.idle);
    this.idle = undefined;
    this.sessions.set(id, s);
    this.ref(); // a stream waiting for its digest keeps the process alive
  }

  remove(id: number): void {
    if (!this.sessions.delete(id) || this.sessions.size || this.dead) return;
    this.unref();
    this.idle = setTimeout(() => {
      if (this.sessions.size || this.dead) return;
      // Out of the pool before it goes, so no new stream is handed to a worker on its way out.
      this.dead = true;
      this.onExit(this);
      this.worker.kill();
    }, IDLE_MS);
    this.idle.unref();
  }
}

const pool: PooledWorker[] = [];
let nextId = 1;
/** Workers at most: one per core beyond the one the capture itself runs on. */
const maxWorkers = () => Math.max(1, (os.availableParallelism?.() ?? os.cpus().length) - 1);

function pickWorker(): PooledWorker {
  let best = [...pool].sort((a, b) => a.sessions.size - b.sessions.size)[0];
  if (!best || (best.sessions.size > 0 && pool.length < maxWorkers())) {
    best = new PooledWorker((gone) => {
      const i = pool.indexOf(gone);
      if (i >= 0) pool.splice(i, 1);
    });
    pool.push(best);
  }
  return best;
}

/** The process ids of the running digest workers (benchmarks read their peak memory). */
export function digestWorkerPids(): number[] {
  return pool.map((w) => w.pid).filter((p): p is number => p !== undefined);
}

export class DigestStream extends Writable {
  private readonly worker: PooledWorker;
  private readonly id = nextId++;
  private queued = 0;
  private readonly max: number;
  private waiting: (() => void) | undefined;
  private finalCb: ((err?: Error | null) => void) | undefined;
  private outcome: Outcome | undefined;
  private failure: Error | undefined;
  private readonly done: Promise<Outcome>;
  private resolveDone!: (o: Outcome) => void;
  private rejectDone!: (e: Error) => void;

  constructor(opts: DigestStreamOptions = {}) {
    super({ highWaterMark: 1 << 16 });
    // Stored (gzip) bytes inflate ~4-5x: 2 MiB of them is as much work queued as 8 MiB of plain RDB.
    this.max = opts.maxQueuedBytes ?? (opts.gzip ? 2 << 20 : 8 << 20);
    this.done = new Promise<Outcome>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined); // observed through result()
    const { maxQueuedBytes: _m, ...workerOpts } = opts;
    this.worker = pickWorker();
    this.worker.add(this.id, { reply: (m) => this.onReply(m), crashed: (e) => this.fail(e) });
    this.worker.post({ id: this.id, open: workerOpts });
  }

  private onReply(m: Reply): void {
    if (m.ack !== undefined) {
      this.queued -= m.ack;
      if (this.waiting && this.queued < this.max) {
        const w = this.waiting;
        this.waiting = undefined;
        w();
      }
    } else if (m.result) {
      this.outcome = m.result;
      this.worker.remove(this.id);
      this.resolveDone(m.result);
      this.finalCb?.();
    } else if (m.error) {
      const e = m.error.offset !== undefined ? Object.assign(new RdbParseError(m.error.offset, m.error.expected ?? "", ""), { message: m.error.message }) : new Error(m.error.message);
      this.fail(e);
    }
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    this.release();
    this.rejectDone(e);
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
    if (this.finalCb) this.finalCb(e);
    else this.destroy(e);
  }

  /** Leaves the worker (which drops what it holds for this stream). */
  private release(): void {
    if (!this.worker.sessions.has(this.id)) return;
    if (!this.worker.dead) this.worker.post({ id: this.id, abort: true });
    this.worker.remove(this.id);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.failure) return cb(this.failure);
    this.queued += chunk.length;
    this.worker.post({ id: this.id, chunk });
    if (this.queued < this.max) return cb();
    this.waiting = () => cb(this.failure);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.failure) return cb(this.failure);
    this.finalCb = cb;
    this.worker.post({ id: this.id, end: true });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.release();
    if (!this.outcome && !this.failure) this.rejectDone(err ?? new Error("digest stream destroyed before the end of the RDB"));
    cb(err);
  }

  /** The digest once the stream has ended (rejects with the parse error if the RDB is malformed). */
  result(): Promise<Outcome> {
    return this.done;
  }
}
