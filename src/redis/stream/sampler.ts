// Maps replication offsets to time from the master itself: `MULTI; TIME; INFO replication; EXEC` on a side
// connection gives an exact (master offset, master time) pair — both read in one atomic step — without writing
// anything into the stream. About once a second while the stream keeps up (placement by arrival is then close);
// every 100 ms while the replica link is down or behind, when units arrive late and only samples place them. A
// replica link that drops and resumes loses no second of the timeline as long as this connection stays up.
import { RedisEndpoint, RespConnection, RespValue } from "../client/resp";
import { commandWithin, connectForCapture } from "../capture/capture";

export interface OffsetSample {
  /** The master's `master_repl_offset` at `ms`: every command through it had run by then. */
  offset: number;
  /** The master's clock (TIME), epoch milliseconds. */
  ms: number;
  replid: string;
}

/** Reads (offset, time) from the reply of `EXEC` over TIME and INFO replication. */
export function parseSample(reply: RespValue): OffsetSample {
  if (!Array.isArray(reply) || reply.length !== 2 || !Array.isArray(reply[0])) throw new Error("unexpected reply to MULTI/TIME/INFO/EXEC");
  const [sec, usec] = reply[0].map((v) => Number(Buffer.isBuffer(v) ? v.toString() : v));
  const info = Buffer.isBuffer(reply[1]) ? reply[1].toString("utf8") : String(reply[1]);
  const offset = /^master_repl_offset:(\d+)/m.exec(info);
  const replid = /^master_replid:([0-9a-f]{40})/m.exec(info);
  if (!offset || !replid || !Number.isFinite(sec) || !Number.isFinite(usec)) throw new Error("INFO replication has no master_repl_offset/master_replid");
  return { offset: Number(offset[1]), ms: sec! * 1000 + Math.floor(usec! / 1000), replid: replid[1]! };
}

/** How often the sampler samples while its owner says placement by arrival is off (the link down or behind). */
export const URGENT_SAMPLE_MS = 100;

export class OffsetSampler {
  private conn: RespConnection | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private lastAt = -Infinity;
  /** The last error, cleared by the next good sample. */
  lastError: Error | undefined;

  /**
   * @param urgent asked every URGENT_SAMPLE_MS: true while units will arrive late (the replication link is down,
   *   or the stream runs behind the master), when only samples can place them in time: then it samples every
   *   URGENT_SAMPLE_MS instead of every `intervalMs`.
   */
  constructor(private readonly ep: RedisEndpoint, private readonly onSample: (s: OffsetSample) => void, private readonly intervalMs = 1000, private readonly timeoutMs = 10_000,
    private readonly urgent: () => boolean = () => false) {}

  /** Takes one sample now (connecting if needed). */
  async sample(): Promise<OffsetSample> {
    this.conn ??= await connectForCapture(this.ep, this.timeoutMs);
    const c = this.conn;
    try {
      await commandWithin(c, this.ep, this.timeoutMs, "MULTI");
      // QUEUED replies. Handled at once: when the connection drops before EXEC answers, EXEC's error is the one
      // thrown, and these two must not reject unhandled (an unhandled rejection ends a Node process).
      const queued = Promise.all([c.command("TIME"), c.command("INFO", "replication")]);
      queued.catch(() => undefined);
      const exec = await commandWithin(c, this.ep, this.timeoutMs, "EXEC");
      await queued;
      const s = parseSample(exec);
      this.lastError = undefined;
      return s;
    } catch (err) {
      this.conn = undefined;
      c.close();
      throw err;
    }
  }

  /** Samples every interval (or faster, see `urgent`) until stop(); a failed sample is retried on a later tick. */
  start(): void {
    const tick = async (): Promise<void> => {
      if (this.stopped || this.running) return;
      const now = performance.now();
      const hurry = !this.lastError && this.urgent(); // a master that does not answer is not asked ten times a second
      if (now - this.lastAt < this.intervalMs - URGENT_SAMPLE_MS / 2 && !hurry) return;
      this.lastAt = now;
      this.running = true;
      try {
        this.onSample(await this.sample());
      } catch (err) {
        this.lastError = err as Error;
      } finally {
        this.running = false;
      }
    };
    this.timer = setInterval(() => void tick(), Math.min(this.intervalMs, URGENT_SAMPLE_MS));
    void tick();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.conn?.close();
    this.conn = undefined;
  }
}
