// Free space before a backup. A backup is refused up front (no task, no Status-1 record) when a disk it would
// write to has less free space than the watermark: 1.2x the instance's last backup size, and at least
// `--min-free-space` (default 64 MB). Which disks: the local blob store's directory and the SQLite catalogue's.
// An S3 store cannot be measured (and its writer spools nothing to disk: parts are held in memory), nor can a
// PostgreSQL catalogue's disk, so those are not checked.
import { freeBytes } from "../free-space";
import { formatBytes } from "../units";

/** A disk a backup writes to: what it is (for the message) and a path on it. */
export interface SpaceTarget {
  /** e.g. "the backup storage file:/data/files", "the catalogue sqlite:/data/catalog.db". */
  what: string;
  dir: string;
}

/** A backup refused because a disk has less free space than the watermark; the API answers ResourceInsufficient. */
export class DiskSpaceError extends Error {
  override name = "DiskSpaceError";
  constructor(readonly what: string, readonly dir: string, readonly free: number, readonly watermark: number, readonly why: string) {
    super(`not enough free space for a backup: ${what} (${dir}) has ${free} bytes free (${formatBytes(free)}), `
      + `below the watermark of ${watermark} bytes (${formatBytes(watermark)}: ${why}); free some space and retry`);
  }
}

/** How much free space a backup needs and where. */
export class SpaceGuard {
  /** The factor applied to the instance's last backup size. */
  static readonly FACTOR = 1.2;

  constructor(private readonly targets: readonly SpaceTarget[], readonly minFreeBytes: number) {}

  /** The watermark for an instance whose newest kept backup holds `lastBackupBytes` (0: none yet). */
  watermark(lastBackupBytes: number): { bytes: number; why: string } {
    const scaled = Math.ceil(lastBackupBytes * SpaceGuard.FACTOR);
    const floor = `at least --min-free-space ${this.minFreeBytes} bytes`;
    return scaled > this.minFreeBytes
      ? { bytes: scaled, why: `${SpaceGuard.FACTOR}x the instance's last backup of ${lastBackupBytes} bytes` }
      : { bytes: this.minFreeBytes, why: lastBackupBytes > 0 ? `${floor}, more than ${SpaceGuard.FACTOR}x the instance's last backup of ${lastBackupBytes} bytes` : `${floor}; the instance has no backup yet` };
  }

  /** Throws DiskSpaceError for the first disk with less free space than the watermark. */
  check(lastBackupBytes: number): void {
    const mark = this.watermark(lastBackupBytes);
    for (const t of this.targets) {
      const free = freeBytes(t.dir);
      if (free !== undefined && free < mark.bytes) throw new DiskSpaceError(t.what, t.dir, free, mark.bytes, mark.why);
    }
  }
}
