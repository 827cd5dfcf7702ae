// The Redis/Valkey versions the RDB tests run against: Debian's redis-server 7.0 on PATH, and the binaries of
// /work/shared/redis-bin (4.0, 5.0, 6.2, 7.2, 7.4, 8.6, Valkey 8.0, 8.1, 9.1). A missing binary makes its tests skip with a
// message instead of failing, so the suite runs elsewhere.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { startRedis, RedisProcess } from "./redis";

export interface ServerVersion {
  /** Short name used in test titles: "4.0", "7.0", "valkey-8.0", ... */
  name: string;
  server: "redis" | "valkey";
  version: string;
  rdbVersion: number;
  /** redis-server binary, or undefined when this machine does not have it. */
  bin: string | undefined;
  cli: string | undefined;
  checkRdb: string | undefined;
  /** Extra arguments every server of this version needs (DEBUG enabled). */
  args: string[];
  streams: boolean;
  functions: boolean;
  /** OBJECT ENCODING names listpack (7.0+) rather than ziplist. */
  listpack: boolean;
  /** Small sets of strings as listpacks (7.2+). */
  setListpack: boolean;
  /** Hash field TTLs (HEXPIRE, Redis 7.4, Valkey 9). */
  hfe: boolean;
  /** HSETEX (Redis 8.0, Valkey 9). */
  hsetex: boolean;
  /** XADD IDMP, streams saved as type 26 (Redis 8.6). */
  idmp: boolean;
}

/** The project root (this file runs from dist/test/support). */
const ROOT = path.resolve(__dirname, "..", "..", "..");

/** Where the extra binaries are: $CRS_REDIS_BIN_DIR, or ../shared/redis-bin next to the project (or its parent). */
function binDir(): string | undefined {
  const candidates = [process.env.CRS_REDIS_BIN_DIR, path.join(ROOT, "..", "shared", "redis-bin"), path.join(ROOT, "..", "..", "shared", "redis-bin")];
  return candidates.find((c) => c !== undefined && fs.existsSync(c));
}

function which(cmd: string): string | undefined {
  try {
    return execFileSync("which", [cmd], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function shared(folder: string, file: string): string | undefined {
  const dir = binDir();
  if (!dir) return undefined;
  const p = path.join(dir, folder, file);
  return fs.existsSync(p) ? p : undefined;
}

function v(name: string, server: "redis" | "valkey", version: string, rdbVersion: number, folder: string | null): ServerVersion {
  const num = Number(version.split(".")[0]) * 100 + Number(version.split(".")[1]);
  const compat = server === "valkey" ? 702 : num;
  const bin = folder ? shared(folder, "redis-server") : which("redis-server");
  return {
    name, server, version, rdbVersion, bin,
    cli: folder ? shared(folder, "redis-cli") : which("redis-cli"),
    checkRdb: folder ? shared(folder, "redis-check-rdb") : which("redis-check-rdb"),
    // no delay before a diskless replication transfer (7.0+ defaults to 5 s): captures start at once
    args: [...(compat >= 700 ? ["--enable-debug-command", "yes"] : []), "--repl-diskless-sync-delay", "0"],
    streams: compat >= 500,
    functions: compat >= 700,
    listpack: compat >= 700,
    setListpack: compat >= 702,
    hfe: server === "redis" ? num >= 704 : num >= 900,
    hsetex: server === "redis" ? num >= 800 : num >= 900,
    idmp: server === "redis" && num >= 806,
  };
}

export const VERSIONS: ServerVersion[] = [
  v("4.0", "redis", "4.0.14", 8, "redis-4.0.14"),
  v("5.0", "redis", "5.0.14", 9, "redis-5.0.14"),
  v("6.2", "redis", "6.2.16", 9, "redis-6.2.16"),
  v("7.0", "redis", "7.0.15", 10, null),
  v("7.2", "redis", "7.2.6", 11, "redis-7.2.6"),
  v("7.4", "redis", "7.4.1", 12, "redis-7.4.1"),
  v("8.6", "redis", "8.6.3", 13, "redis-8.6.3"),
  v("valkey-8.0", "valkey", "8.0.1", 11, "valkey-8.0.1"),
  v("valkey-8.1", "valkey", "8.1.1", 11, "valkey-8.1.1"),
  v("valkey-9.1", "valkey", "9.1.2", 80, "valkey-9.1.2"),
];

export function version(name: string): ServerVersion {
  const found = VERSIONS.find((x) => x.name === name);
  if (!found) throw new Error(`unknown version ${name}`);
  return found;
}

/** A skip message when the version's binary is missing, else undefined. */
export function missing(v: ServerVersion): string | undefined {
  return v.bin ? undefined : `redis-server ${v.version} not found (set CRS_REDIS_BIN_DIR to the redis-bin folder)`;
}

export function startVersion(v: ServerVersion, extra: string[] = []): Promise<RedisProcess> {
  if (!v.bin) throw new Error(missing(v));
  return startRedis([...v.args, ...extra], { bin: v.bin });
}
