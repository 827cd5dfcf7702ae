// DigestStream: a Writable that computes the DEBUG DIGEST of the RDB written into it, in a worker thread, so a
// capture can tee its chunks into it without the ~1 us/key of hashing slowing the transfer (the digest runs on
// another core; the capture only copies each chunk once). Backpressure: at most `maxQueuedBytes` (default
// 8 MiB) may wait in the worker's queue before write() stops accepting. The result (or an RdbParseError naming
// the offset) comes from result() after end().
//
// The workers are shared: a worker thread is a whole V8 isolate (~35 MB, ~0.1-0.3 s of CPU to start), which fifty
// small captures at once cannot each afford (a fleet of 10,000-key servers took 4x longer with one worker per
// capture). Up to one worker per spare core is started on demand; each serves several streams (sessions), a new
// stream going to the least busy; an idle worker exits after IDLE_MS and never keeps the process alive.
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { Worker } from "node:worker_threads";
import { DigestResult, ScoreFormatOption } from "./digest";
import { RdbParseError } from "./errors";
import { RdbSummary } from "./reader";

export interface DigestStreamOptions extends ScoreFormatOption {
  /** Bytes handed to the worker but not yet digested before writes wait. Default 8 MiB. */
  maxQueuedBytes?: number;
  verifyChecksum?: boolean;
  stringPieceBytes?: number;
}

type Outcome = DigestResult & { rdb: RdbSummary };
type Reply = { id: number; ack?: number; result?: Outcome; error?: { message: string; offset?: number; expected?: string } };

interface Session {
  reply(m: Reply): void;
  crashed(e: Error): void;
}

const IDLE_MS = 30_000;

/** One worker thread and the streams it is digesting. */
class PooledWorker {
  readonly sessions = new Map<number, Session>();
  private readonly worker: Worker;
  private idle: NodeJS.Timeout | undefined;
  dead = false;

  constructor(private readonly onExit: (w: PooledWorker) => void) {
    this.worker = new Worker(path.join(__dirname, "digest-worker-main.js"));
    this.worker.unref();
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
    this.worker.on("exit", (code) => die(new Error(`the digest worker exited (code ${code})`)));
  }

  post(m: unknown, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(m, transfer);
  }

  add(id: number, s: Session): void {
    clearTimeout(this.idle);
    this.idle = undefined;
    this.sessions.set(id, s);
    this.worker.ref(); // a stream waiting for its digest keeps the process alive
  }

  remove(id: number): void {
    if (!this.sessions.delete(id) || this.sessions.size || this.dead) return;
    this.worker.unref();
    this.idle = setTimeout(() => {
      if (this.sessions.size || this.dead) return;
      // Out of the pool before it goes, so no new stream is handed to a worker on its way out.
      this.dead = true;
      this.onExit(this);
      void this.worker.terminate();
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
    this.max = opts.maxQueuedBytes ?? 8 << 20;
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
    const copy = new Uint8Array(chunk.length);
    copy.set(chunk);
    this.queued += copy.length;
    this.worker.post({ id: this.id, chunk: copy }, [copy.buffer]);
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
