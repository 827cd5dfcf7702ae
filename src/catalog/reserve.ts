// A reserve of disk space for the embedded catalogue, so it can always record a failure. A disk that fills up
// (a backup, another program) leaves SQLite unable to append to its WAL, and the outcome of the task that failed
// because of it could not be written. The server keeps a file of a few MB (`--disk-reserve`, default 4 MB) next
// to catalog.db; when a catalogue write that records an outcome fails with SQLITE_FULL, the runner releases
// (removes) it and retries at once: the freed pages are what the WAL grows into. The file is made again once
// the disk has room for it and for `--min-free-space` besides.
//
// Why a file and not SQLite's own preallocation: SQLite has no WAL preallocation (the WAL grows a frame at a
// time), and space reserved inside the database file is not usable by the WAL. A plain file of written (not
// sparse) bytes occupies real blocks on ext4/xfs and real pages on tmpfs, and unlinking it returns them at
// once. test/hardening-disk.test.ts proves it on a full tmpfs.
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "../log";
import { freeBytes } from "../free-space";

export const RESERVE_FILE = "catalog.reserve";

export class DiskReserve {
  readonly file: string;

  /**
   * @param dir the catalogue's directory; @param bytes the reserve's size (0: no reserve);
   * @param spareBytes free space that must remain besides the reserve before it is made again.
   */
  constructor(dir: string, readonly bytes: number, private readonly spareBytes: number, private readonly logger: Logger) {
    this.file = path.join(dir, RESERVE_FILE);
  }

  get present(): boolean {
    return this.bytes > 0 && fs.existsSync(this.file);
  }

  /**
   * Makes the reserve file if it is missing and the disk has room for it and the spare space; true when the
   * reserve is in place afterwards. Never throws: a disk too full for it is retried on a later call.
   */
  ensure(): boolean {
    if (this.bytes <= 0) return false;
    try {
      if (fs.statSync(this.file).size >= this.bytes) return true;
    } catch {
      // absent
    }
    const free = freeBytes(path.dirname(this.file));
    if (free !== undefined && free < this.bytes + this.spareBytes) return false;
    // One server owns a data directory, so a leftover of a killed start is simply overwritten.
    const temp = `${this.file}.partial`;
    let fd: number | undefined;
    try {
      fd = fs.openSync(temp, "w", 0o600);
      const chunk = Buffer.alloc(Math.min(this.bytes, 1 << 20));
      // Written bytes, not a truncate(): a sparse file would reserve nothing. No fsync: the space is taken
      // when the bytes are written (delayed allocation counts it too), and a crash only means making it again.
      for (let done = 0; done < this.bytes; ) done += fs.writeSync(fd, chunk, 0, Math.min(chunk.length, this.bytes - done));
      fs.closeSync(fd);
      fd = undefined;
      fs.renameSync(temp, this.file);
      this.logger.info({ file: this.file, bytes: this.bytes }, "disk reserve for the catalogue in place");
      return true;
    } catch (err) {
      if (fd !== undefined) fs.closeSync(fd);
      fs.rmSync(temp, { force: true });
      this.logger.debug({ err, file: this.file }, "the disk reserve could not be made; retried later");
      return false;
    }
  }

  /** Removes the reserve, freeing its space for the catalogue; true when there was one to free. */
  release(): boolean {
    if (this.bytes <= 0) return false;
    try {
      fs.unlinkSync(this.file);
    } catch {
      return false;
    }
    this.logger.warn({ file: this.file, bytes: this.bytes }, "the catalogue's disk is full: released the disk reserve so the outcome can be recorded; it is made again once there is room");
    return true;
  }
}
