// Opens the catalogue a URL names: `sqlite:PATH` or a plain path (the embedded default), or `postgres://…`.
import fs from "node:fs";
import path from "node:path";
import { isPostgresUrl } from "../config";
import type { Catalog } from "./catalog";
import { SqliteCatalog } from "./sqlite/sqlite";

export function sqlitePath(url: string): string | undefined {
  if (isPostgresUrl(url)) return undefined;
  return url.startsWith("sqlite:") ? url.slice("sqlite:".length) : url;
}

/**
 * Opens (creating the SQLite file owner-only, in an owner-only folder) and migrates the catalogue. `server`: a
 * long-running server's PostgreSQL pool (fixed-size, opened at once; see PostgresCatalog.open), not a command's.
 */
export async function openCatalog(url: string, opts: { server?: boolean } = {}): Promise<Catalog> {
  if (isPostgresUrl(url)) {
    const { PostgresCatalog } = await import("./postgres/postgres");
    return PostgresCatalog.open(url, { fixed: opts.server });
  }
  const file = sqlitePath(url)!;
  if (!file) throw new Error("the catalogue URL names no file");
  if (file !== ":memory:") {
    const dir = path.dirname(path.resolve(file));
    const existed = fs.existsSync(dir);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!existed) fs.chmodSync(dir, 0o700);
  }
  return new SqliteCatalog(file);
}
