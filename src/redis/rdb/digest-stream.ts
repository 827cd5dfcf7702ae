// DigestStream: a Writable that computes the DEBUG DIGEST of the RDB written into it, in a worker thread, so a
// capture can tee its chunks into it without the ~1 us/key of hashing slowing the transfer (the digest runs on
// another core; the capture only copies each chunk once). Backpressure: at most `maxQueuedBytes` (default
// 8 MiB) may wait in the worker's queue before write() stops accepting. The result (or an RdbParseError naming
// the offset) comes from result() after end().
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

export class DigestStream extends Writable {
  private readonly worker: Worker;
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
    this.worker = new Worker(path.join(__dirname, "digest-worker-main.js"), { workerData: workerOpts });
    this.worker.on("message", (m: { ack?: number; result?: Outcome; error?: { message: string; offset?: number; expected?: string } }) => {
      if (m.ack !== undefined) {
        this.queued -= m.ack;
        if (this.waiting && this.queued < this.max) {
          const w = this.waiting;
          this.waiting = undefined;
          w();
        }
      } else if (m.result) {
        this.outcome = m.result;
        this.resolveDone(m.result);
        void this.worker.terminate();
        this.finalCb?.();
      } else if (m.error) {
        const e = m.error.offset !== undefined ? Object.assign(new RdbParseError(m.error.offset, m.error.expected ?? "", ""), { message: m.error.message }) : new Error(m.error.message);
        this.fail(e);
      }
    });
    this.worker.on("error", (e) => this.fail(e));
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    this.rejectDone(e);
    void this.worker.terminate();
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
    if (this.finalCb) this.finalCb(e);
    else this.destroy(e);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.failure) return cb(this.failure);
    const copy = new Uint8Array(chunk.length);
    copy.set(chunk);
    this.queued += copy.length;
    this.worker.postMessage({ chunk: copy }, [copy.buffer]);
    if (this.queued < this.max) return cb();
    this.waiting = () => cb(this.failure);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.failure) return cb(this.failure);
    this.finalCb = cb;
    this.worker.postMessage({ end: true });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    void this.worker.terminate();
    if (!this.outcome && !this.failure) this.rejectDone(err ?? new Error("digest stream destroyed before the end of the RDB"));
    cb(err);
  }

  /** The digest once the stream has ended (rejects with the parse error if the RDB is malformed). */
  result(): Promise<Outcome> {
    return this.done;
  }
}
