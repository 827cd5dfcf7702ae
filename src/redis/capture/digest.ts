// The digest of a backup, computed while it is captured: the capture's bytes go to the blob writer and, on the
// way, to a DigestStream (the RDB engine in a worker thread, on the other core), so the backup records the
// `DEBUG DIGEST` its server would report for that data set without a second read. The digest is a proof, not
// part of the backup: if it cannot be computed (an RDB the engine does not read, a module type), the backup still
// succeeds without one — the CRC-64 and SHA-256 checks are what make it valid — and the reason is kept.
import { Writable } from "node:stream";
import { DigestStream } from "../rdb";

export interface CapturedDigest {
  digest?: string;
  keys?: number;
  /** Why there is no digest. */
  missing?: string;
}

/**
 * A Writable that forwards every chunk to `primary` (the blob writer, whose backpressure it keeps) and to a
 * digest worker. Ending or destroying it ends or destroys both. `result()` after the end gives the digest.
 */
export class DigestTee extends Writable {
  private digestStream: DigestStream | undefined = new DigestStream();
  private missing: string | undefined;

  constructor(private readonly primary: Writable) {
    super({ highWaterMark: 1 << 20 });
    this.digestStream!.on("error", (err: Error) => this.dropDigest(err));
    primary.on("error", (err) => this.destroy(err));
  }

  private dropDigest(err: Error): void {
    if (!this.digestStream) return;
    this.missing = `the digest could not be computed: ${err.message}`;
    const d = this.digestStream;
    this.digestStream = undefined;
    d.destroy();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let pending = 1;
    const done = () => {
      if (--pending === 0) cb();
    };
    const d = this.digestStream;
    if (d && !d.destroyed) {
      pending++;
      // The worker's queue is bounded; if it falls far behind, the capture waits for it rather than buffering
      // (or stops waiting if the digest is dropped meanwhile).
      if (d.write(chunk)) done();
      else {
        const resume = () => {
          d.off("drain", resume);
          d.off("close", resume);
          done();
        };
        d.on("drain", resume);
        d.on("close", resume);
      }
    }
    if (this.primary.write(chunk)) done();
    else this.primary.once("drain", done);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const finished = (s: Writable) => new Promise<void>((resolve, reject) => {
      if (s.writableFinished) return resolve();
      s.once("finish", () => resolve());
      s.once("error", reject);
    });
    const waits: Array<Promise<void>> = [];
    if (this.digestStream) {
      const d = this.digestStream;
      d.end();
      waits.push(finished(d).catch((err: Error) => this.dropDigest(err)));
    }
    this.primary.end();
    waits.push(finished(this.primary));
    Promise.all(waits).then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.digestStream?.destroy();
    if (!this.primary.destroyed) this.primary.destroy(err ?? undefined);
    cb(err);
  }

  /** The digest of what was written; call after the capture has ended the stream. */
  async result(): Promise<CapturedDigest> {
    if (!this.digestStream) return { missing: this.missing ?? "no digest" };
    try {
      const r = await this.digestStream.result();
      if (r.moduleKeys > 0) return { keys: r.keys, missing: `${r.moduleKeys} key(s) of modules, whose digest only the module can compute` };
      return { digest: r.digest, keys: r.keys };
    } catch (err) {
      return { missing: `the digest could not be computed: ${(err as Error).message}` };
    }
  }
}
