// The spool (docs/storage.md "The spool"): where a capture puts the raw RDB bytes as fast as the disk takes them,
// so the replication link — and with it the master's fork child and its output buffer — is released as soon as
// `redis-cli --rdb` would release it. Compressing, hashing, encrypting and uploading happen afterwards, reading
// the spool file. Files are owner-only (0600, in a 0700 directory) and named for their backup, so the recovery
// of an interrupted backup and the start-up sweep find and remove them.
//
// A spool file of an encrypted backup is itself encrypted (AES-256-GCM) with an ephemeral key made for that
// capture and held only in this process's memory: a crash leaves only bytes nobody can read. A plain backup's
// spool is plain: its stored file is not encrypted either, so encrypting the spool would protect nothing.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Readable, Transform, Writable } from "node:stream";
import { freeBytes } from "../free-space";

const SUFFIX = ".spool";
/** Bytes gathered before one write to the spool file. */
const BATCH_BYTES = 1 << 20;
/** ... or once its first bytes have waited this long (a slow master's snapshot reaches the disk as it comes). */
const BATCH_MS = 50;

/** A spool file name's prefix for a backup: every file of it starts so (recovery removes them by it). */
function prefixOf(backupId: string): string {
  return `${backupId}.`;
}

export class SpoolDir {
  /** Paths of spool files this process has open: the sweep leaves them alone. */
  private readonly live = new Set<string>();

  constructor(readonly dir: string) {}

  /** Bytes free on the spool's disk (undefined if unknown). */
  free(): number | undefined {
    return freeBytes(this.dir);
  }

  /** A new spool file for one shard of a backup; `encrypt` gives it an ephemeral AES-256-GCM key. */
  create(backupId: string, shard: number, opts: { encrypt: boolean }): SpoolFile {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(this.dir, 0o700);
    const file = path.join(this.dir, `${prefixOf(backupId)}shard-${shard}.${crypto.randomBytes(6).toString("hex")}${SUFFIX}`);
    this.live.add(file);
    return new SpoolFile(file, opts.encrypt, () => this.live.delete(file));
  }

  /** Removes the spool files of a backup (an interrupted one: recovery); returns how many. */
  removeBackup(backupId: string): number {
    return this.sweep((name) => name.startsWith(prefixOf(backupId)));
  }

  /** Removes every spool file no capture of this process is writing or reading (start-up); returns how many. */
  removeStale(): number {
    return this.sweep(() => true);
  }

  private sweep(match: (name: string) => boolean): number {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return 0;
    }
    let n = 0;
    for (const name of names) {
      const file = path.join(this.dir, name);
      if (!name.endsWith(SUFFIX) || !match(name) || this.live.has(file)) continue;
      fs.rmSync(file, { force: true });
      n++;
    }
    return n;
  }
}

/** One spool file: written once (writer()), then read back (reader()), then removed (remove()). */
export class SpoolFile {
  private readonly key: Buffer | undefined;
  private readonly iv: Buffer | undefined;
  private tag: Buffer | undefined;
  /** Bytes written (plain). */
  written = 0;

  constructor(readonly path: string, readonly encrypted: boolean, private readonly released: () => void) {
    if (encrypted) {
      this.key = crypto.randomBytes(32);
      this.iv = crypto.randomBytes(12);
    }
  }

  /**
   * The sink a capture writes the raw bytes into: the socket's chunks (64 KiB each) are gathered and written by
   * one `writev` per MiB or per 50 ms, whichever comes first (encrypted first when asked), with back-pressure
   * while a full batch is written; 'finish' once every byte is in the file. Created exclusively (0600): never over
   * another file. One system call per MiB instead of a thread-pool write per chunk halves the capture's CPU
   * (docs/benchmarks.md), CPU that on a small machine the master's fork child would otherwise lack.
   */
  writer(): Writable {
    const cipher = this.key && this.iv ? crypto.createCipheriv("aes-256-gcm", this.key, this.iv) : undefined;
    const path = this.path;
    let fd: number | undefined;
    let parts: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    // Writes run one after the other (the file has no positions given): each is chained on the one before.
    let chain: Promise<void> = Promise.resolve();
    let failure: Error | undefined;
    const count = (n: number): void => {
      this.written += n;
    };
    const sealed = (tag: Buffer): void => {
      this.tag = tag;
    };
    /** Queues what is gathered as one write; resolves once it (and every write before it) is in the file. */
    const writeOut = (): Promise<void> => {
      clearTimeout(timer);
      timer = undefined;
      const out = parts;
      parts = [];
      size = 0;
      if (out.length) {
        chain = chain.then(() => new Promise<void>((resolve) => fs.writev(fd!, out, (err) => {
          failure ??= err ?? undefined;
          resolve();
          if (err) sink.destroy(err); // a full disk fails the capture now, not at its next chunk
        })));
      }
      return chain.then(() => {
        if (failure) throw failure;
      });
    };
    const sink: Writable = new Writable({
      highWaterMark: BATCH_BYTES,
      construct(cb) {
        fs.open(path, "wx", 0o600, (err, opened) => {
          fd = opened;
          cb(err);
        });
      },
      writev(chunks, cb) {
        for (const { chunk } of chunks as Array<{ chunk: Buffer }>) {
          count(chunk.length);
          const data = cipher ? cipher.update(chunk) : chunk;
          parts.push(data);
          size += data.length;
        }
        if (failure) return cb(failure);
        // A full batch is written now and holds the next chunks back until it is in the file (back-pressure);
        // a partial one is written once it is BATCH_MS old, so a slow master's snapshot reaches the disk as it comes.
        if (size >= BATCH_BYTES) return void writeOut().then(() => cb(), cb);
        timer ??= setTimeout(() => void writeOut().catch(() => undefined), BATCH_MS);
        cb();
      },
      final(cb) {
        if (cipher) {
          const rest = cipher.final();
          sealed(cipher.getAuthTag());
          if (rest.length) parts.push(rest);
        }
        writeOut().then(() => fs.close(fd!, (e) => {
          fd = undefined;
          cb(e);
        }), cb);
      },
      destroy(err, cb) {
        clearTimeout(timer);
        void chain.then(() => {
          if (fd === undefined) return cb(err);
          fs.close(fd, () => cb(err));
          fd = undefined;
        });
      },
    });
    return sink;
  }

  /** The plain bytes written, read back (decrypted and checked against the GCM tag: a changed file fails). */
  reader(): Readable {
    const input = fs.createReadStream(this.path, { highWaterMark: 1 << 20 });
    if (!this.key || !this.iv) return input;
    if (!this.tag) throw new Error(`spool file ${this.path} was not finished`);
    const decipher = crypto.createDecipheriv("aes-256-gcm", this.key, this.iv);
    decipher.setAuthTag(this.tag);
    const out: Transform = decipher;
    input.on("error", (err) => out.destroy(err));
    return input.pipe(out);
  }

  /** Removes the file (also a partial one); safe to call more than once. */
  remove(): void {
    fs.rmSync(this.path, { force: true });
    this.released();
  }
}
