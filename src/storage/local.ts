// The local-directory blob store (the embedded default). A blob is either complete under its final name or
// absent (temp file + fsync + atomic rename + directory fsync), and everything is kept owner-only.
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { pipeline, Readable, Writable } from "node:stream";
import zlib from "node:zlib";
import { BlobCommitResult, BlobInfo, BlobReadOptions, BlobStore, BlobWriter, BlobWriterOptions, checkKey, CommittableWriter, refuseEncryption } from "./blob-store";

const TEMP_SUFFIX = ".partial";

const isTempName = (name: string): boolean => name.startsWith(".") && name.endsWith(TEMP_SUFFIX);
const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

export class LocalBlobStore implements BlobStore {
  readonly root: string;
  /** Temp files of writers still in progress in this process; removeStale leaves them alone. */
  private readonly active = new Set<string>();

  constructor(rootDir: string) {
    this.root = path.resolve(rootDir);
  }

  /** Absolute path of a key (after validation). */
  pathOf(key: string): string {
    return path.join(this.root, ...checkKey(key));
  }

  createWriter(key: string, opts: BlobWriterOptions = {}): BlobWriter {
    refuseEncryption(opts, this.describe());
    const finalPath = this.pathOf(key);
    const tempPath = path.join(path.dirname(finalPath), `.${path.basename(finalPath)}.${crypto.randomBytes(6).toString("hex")}${TEMP_SUFFIX}`);
    return new LocalBlobWriter(this.root, finalPath, tempPath, opts.compress === true, this.active);
  }

  describe(): string {
    return `file:${this.root}`;
  }

  async probe(): Promise<void> {
    try {
      await mkdirPrivate(this.root, this.root);
      await fsp.access(this.root, fs.constants.W_OK | fs.constants.X_OK);
    } catch (err) {
      throw new Error(`cannot store blobs in ${this.describe()}: ${(err as Error).message}`, { cause: err });
    }
  }

  async openRead(key: string, opts: BlobReadOptions = {}): Promise<Readable> {
    refuseEncryption(opts, this.describe());
    // Open first so a missing blob rejects here rather than as a stream error later.
    const fh = await fsp.open(this.pathOf(key), "r");
    // 1 MiB reads and 256 KiB inflate chunks: a restore or download streams hundreds of MB, and the default
    // 64/16 KiB pieces made the replication transfer markedly slower than the file.
    const raw = fh.createReadStream({ start: opts.start, end: opts.end, highWaterMark: 1 << 20 });
    if (!opts.decompress) return raw;
    const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
    pipeline(raw, gunzip, () => undefined); // errors surface on gunzip (pipeline destroys it with the error)
    return gunzip;
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      const st = await fsp.stat(this.pathOf(key));
      return st.isFile() ? { size: st.size } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  async remove(key: string): Promise<void> {
    const p = this.pathOf(key);
    await fsp.rm(p, { force: true });
    await pruneEmptyDirs(this.root, path.dirname(p));
  }

  async *list(prefix: string): AsyncIterable<BlobInfo> {
    // Walk only the directory the prefix names in full ("backups/ab" -> backups/), filtering by the rest.
    const cut = prefix.lastIndexOf("/");
    const base = cut < 0 ? "" : prefix.slice(0, cut);
    if (base) checkKey(base);
    yield* this.walk(base ? path.join(this.root, ...base.split("/")) : this.root, base, prefix);
  }

  /**
   * Lists a directory's committed blobs depth first, and removes directories that are (or become) empty: a
   * capture that failed before its first byte, or blobs removed by hand, leave them behind.
   */
  private async *walk(dir: string, dirKey: string, prefix: string): AsyncGenerator<BlobInfo> {
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return; // removed meanwhile, or a blob's name
      throw err;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith(".")) continue; // temp files of writers, never a valid key segment
      const key = dirKey ? `${dirKey}/${e.name}` : e.name;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        // Descend only where keys can still match the prefix.
        if (prefix.startsWith(`${key}/`) || `${key}/`.startsWith(prefix)) yield* this.walk(p, key, prefix);
      } else if (e.isFile() && key.startsWith(prefix)) {
        try {
          yield { key, size: (await fsp.stat(p)).size };
        } catch (err) {
          if (errno(err) !== "ENOENT") throw err; // removed meanwhile
        }
      }
    }
    if (dir !== this.root) await rmdirIfEmpty(dir);
  }

  /**
   * Removes temp files of writers that are not in progress in this process. `olderThanMs` (default 0) spares
   * files modified more recently: one server owns a data directory, so by default everything not ours is
   * a leftover of a dead process. Empty directories met on the way are removed too.
   */
  async abortUploads(prefix: string): Promise<number> {
    // Temp files sit beside their final name: under the prefix's folder (`backups/<id>/` -> that folder).
    const dir = prefix.includes("/") ? path.join(this.root, ...checkKey(prefix.slice(0, prefix.lastIndexOf("/")))) : this.root;
    let removed = 0;
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === "ENOENT") return 0;
      throw err;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (!e.isFile() || !isTempName(e.name) || this.active.has(p)) continue;
      await fsp.rm(p, { force: true });
      removed++;
    }
    if (dir !== this.root) await rmdirIfEmpty(dir);
    return removed;
  }

  async removeStale(olderThanMs = 0): Promise<number> {
    let removed = 0;
    const cutoff = Date.now() - olderThanMs;
    const walk = async (dir: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (errno(err) === "ENOENT") return;
        throw err;
      }
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile() && isTempName(e.name) && !this.active.has(p)) {
          try {
            if (olderThanMs > 0 && (await fsp.stat(p)).mtimeMs > cutoff) continue;
            await fsp.rm(p, { force: true });
            removed++;
          } catch (err) {
            if (errno(err) !== "ENOENT") throw err;
          }
        }
      }
      if (dir !== this.root) await rmdirIfEmpty(dir);
    };
    await walk(this.root);
    return removed;
  }
}

/** rmdir that only succeeds on an empty directory; false when it was not removed (not empty, gone). */
async function rmdirIfEmpty(dir: string): Promise<boolean> {
  try {
    await fsp.rmdir(dir);
    return true;
  } catch {
    return false; // ENOTEMPTY, ENOENT, ...
  }
}

/** Drops now-empty directories from `dir` up to, not including, `root` (e.g. backups/<id>/ after its last blob). */
async function pruneEmptyDirs(root: string, dir: string): Promise<void> {
  while (dir !== root && dir.startsWith(root + path.sep)) {
    if (!(await rmdirIfEmpty(dir))) break;
    dir = path.dirname(dir);
  }
}

/** Creates each missing directory from root down to dir with mode 0o700. */
async function mkdirPrivate(root: string, dir: string): Promise<void> {
  await fsp.mkdir(root, { recursive: true, mode: 0o700 });
  const rel = path.relative(root, dir);
  if (!rel) return;
  let cur = root;
  for (const seg of rel.split(path.sep)) {
    cur = path.join(cur, seg);
    try {
      await fsp.mkdir(cur, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
}

/** Creates the temp file (owner-only), retrying if a concurrent remove() pruned the fresh directory. */
async function openTemp(root: string, tempPath: string): Promise<fsp.FileHandle> {
  for (let attempt = 0; ; attempt++) {
    await mkdirPrivate(root, path.dirname(tempPath));
    try {
      return await fsp.open(tempPath, "wx", 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || attempt >= 2) throw err;
    }
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a FileHandle sequentially; each write completes before the next is accepted (natural backpressure). */
class FileSink extends Writable {
  storedBytes = 0;
  constructor(private readonly fh: Promise<fsp.FileHandle>) {
    super({ highWaterMark: 1 << 20 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => cb(), cb);
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => cb(), cb);
  }
  private async writeAll(bufs: Buffer[]): Promise<void> {
    const fh = await this.fh;
    // writev may write partially; loop until every byte is on disk.
    let pending = bufs;
    while (pending.length) {
      const { bytesWritten } = await fh.writev(pending);
      this.storedBytes += bytesWritten;
      let skip = bytesWritten;
      const rest: Buffer[] = [];
      for (const b of pending) {
        if (skip >= b.length) skip -= b.length;
        else {
          rest.push(skip ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      pending = rest;
    }
  }
}

class LocalBlobWriter extends CommittableWriter {
  private readonly hash = crypto.createHash("sha256");
  private bytes = 0;
  private readonly fh: Promise<fsp.FileHandle>;
  private readonly sink: FileSink;
  private readonly gzip: zlib.Gzip | undefined;
  private fhClosed = false;

  constructor(
    private readonly root: string,
    private readonly finalPath: string,
    private readonly tempPath: string,
    compress: boolean,
    private readonly active: Set<string>,
  ) {
    super({ highWaterMark: 1 << 20 });
    // Failures are reported by commit() (and to pipeline()/other listeners); never crash the process on an
    // 'error' nobody listens to, e.g. after captureRdb destroyed the writer because the source failed.
    this.on("error", () => undefined);
    active.add(tempPath);
    this.fh = openTemp(root, tempPath);
    this.fh.catch((err: Error) => this.destroy(err)); // surfaces as the stream's error
    this.sink = new FileSink(this.fh);
    this.sink.on("error", (err) => this.destroy(err));
    if (compress) {
      // Level 1: capture speed matters more than the last few percent of size.
      // 64 KiB output chunks: a quarter of the callbacks and file writes of the 16 KiB default.
      this.gzip = zlib.createGzip({ level: 1, chunkSize: 64 * 1024 });
      this.gzip.on("error", (err) => this.destroy(err));
      this.gzip.pipe(this.sink);
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    const target: Writable = this.gzip ?? this.sink;
    // Backpressure: don't accept more until the next stage has room.
    if (target.write(chunk)) cb();
    else target.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.sink.once("finish", () => {
      this.fh
        .then(async (fh) => {
          await fh.sync();
          this.fhClosed = true;
          await fh.close();
        })
        .then(() => cb(), cb);
    });
    if (this.gzip) this.gzip.end(); // gzip's pipe ends the sink once flushed
    else this.sink.end();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.gzip?.destroy();
    this.sink.destroy();
    const cleanFinish = !err && this.writableFinished;
    const closeFh = this.fhClosed
      ? Promise.resolve()
      : this.fh.then((fh) => {
        this.fhClosed = true;
        return fh.close();
      }, () => undefined);
    closeFh
      .catch(() => undefined)
      .then(() => (cleanFinish ? undefined : this.removeTemp()))
      .then(() => cb(err), () => cb(err));
  }

  /** Removes the temp file and the directories it leaves empty (a failed capture's `backups/<id>/`). */
  private async removeTemp(): Promise<void> {
    await fsp.rm(this.tempPath, { force: true });
    this.active.delete(this.tempPath);
    await pruneEmptyDirs(this.root, path.dirname(this.tempPath));
  }

  protected async publish(): Promise<BlobCommitResult> {
    try {
      await fsp.rename(this.tempPath, this.finalPath);
      this.active.delete(this.tempPath);
      await fsyncDir(path.dirname(this.finalPath));
    } catch (err) {
      await this.removeTemp().catch(() => undefined);
      throw err;
    }
    return { bytes: this.bytes, sha256: this.hash.digest("hex"), storedBytes: this.sink.storedBytes };
  }

  protected discardWritten(): Promise<void> {
    return this.removeTemp();
  }
}
