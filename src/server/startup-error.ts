// A start-up failure caused by a full disk, said as such instead of a raw ENOSPC / SQLITE_FULL.
import path from "node:path";
import { CatalogFullError } from "../catalog/catalog";
import { freeBytes } from "../free-space";

/** The error to report for a start-up failure in `dataDir`: a plain message when the disk is full, else `err`. */
export function startupError(err: unknown, dataDir: string): Error {
  const e = err as NodeJS.ErrnoException;
  // SQLite reports some writes refused for space (its shared-memory index, a journal) as a plain I/O error.
  const ioOnFullDisk = /^(SQLITE_IOERR|SQLITE_CANTOPEN|EIO$)/.test(String(e?.code ?? "")) && (freeBytes(dataDir) ?? Infinity) < 1 << 20;
  if (err instanceof CatalogFullError || e?.code === "ENOSPC" || e?.code === "SQLITE_FULL" || ioOnFullDisk) {
    return new Error(`no space left for the data directory ${path.resolve(dataDir)} (${e.message}); free some space and start again`);
  }
  return err as Error;
}
