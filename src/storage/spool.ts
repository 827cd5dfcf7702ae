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
   * The sink a capture writes the raw bytes into: each write goes to the file (encrypted first when asked) with
   * back-pressure; 'finish' once every byte is in the file. Created exclusively (0600): never over another file.
   */
  writer(): Writable {
    const cipher = this.key && this.iv ? crypto.createCipheriv("aes-256-gcm", this.key, this.iv) : undefined;
    const out = fs.createWriteStream(this.path, { flags: "wx", mode: 0o600, highWaterMark: 1 << 20 });
    const count = (n: number): void => {
      this.written += n;
    };
    const sealed = (tag: Buffer): void => {
      this.tag = tag;
    };
    // A Writable whose writes go straight to the file stream: its back-pressure is the file's.
    const sink = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        count(chunk.length);
        const data = cipher ? cipher.update(chunk) : chunk;
        if (out.write(data)) cb();
        else out.once("drain", () => cb());
      },
      final(cb) {
        if (cipher) {
          const rest = cipher.final();
          sealed(cipher.getAuthTag());
          if (rest.length) out.write(rest);
        }
        out.end((err?: Error | null) => cb(err ?? null));
      },
      destroy(err, cb) {
        if (out.closed) return cb(err);
        out.once("close", () => cb(err));
        out.destroy();
      },
    });
    out.on("error", (err) => sink.destroy(err));
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
