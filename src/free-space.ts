// Free space on a disk, for the backup watermark (src/jobs/disk-space.ts), the catalogue's reserve
// (src/catalog/reserve.ts) and the diagnosis of a failed start (src/server/startup-error.ts).
import fs from "node:fs";
import path from "node:path";

/** Bytes available to us on the file system holding `dir` (or its nearest existing parent); undefined if unknown. */
export function freeBytes(dir: string): number | undefined {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      const st = fs.statfsSync(d);
      return st.bavail * st.bsize;
    } catch {
      if (d === path.dirname(d)) return undefined;
    }
  }
}
