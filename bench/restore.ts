// Restore benchmark: how much slower is loading a stored (gzip) backup through restoreRdb (replication protocol)
// than the native baseline of starting redis-server on the plain RDB file? Goal: ours/baseline <= 1.05.
// "socket" is the path RestoreInstance takes (loadFromSocket: the target parses while receiving, our reader
// validating the stream on the way); "disk" is the target's default (the transfer written to disk, then loaded).
//   BENCH_KEYS (default 3,000,000), BENCH_VALUE_SIZE (default 300 bytes, ~1 GB used_memory at 3M keys),
//   BENCH_ROUNDS (default 3). Run: npm run bench:restore
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { restoreRdb } from "../src/redis/restore/replication";
import { LocalBlobStore } from "../src/storage/local";
import { pipeline } from "node:stream/promises";
import { startRedis, RedisProcess, withConn } from "../test/support/redis";

const KEYS = Number(process.env.BENCH_KEYS ?? 3_000_000);
const VALUE_SIZE = Number(process.env.BENCH_VALUE_SIZE ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

async function infoField(p: RedisProcess, section: string, field: string): Promise<string> {
  const text = String(await withConn(p, (c) => c.command("INFO", section)));
  return new RegExp(`^${field}:(.*)\r$`, "m").exec(text)?.[1] ?? "";
}

async function dbsize(p: RedisProcess): Promise<number> {
  return Number(await withConn(p, (c) => c.command("DBSIZE")));
}

/** Builds the data set and returns the path of its RDB (taken the way a backup would be: over the network). */
async function makeRdb(): Promise<{ file: string; usedMemory: string }> {
  const src = await startRedis(["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]);
  try {
    await withConn(src, (c) => c.command("DEBUG", "POPULATE", KEYS, "key", VALUE_SIZE));
    const usedMemory = await infoField(src, "memory", "used_memory_human");
    const file = path.join(src.dir, "bench.rdb");
    execFileSync("redis-cli", ["-p", String(src.port), "--rdb", file], { stdio: "ignore" });
    return { file, usedMemory };
  } finally {
    await src.stop();
  }
}

/** Native load: spawn until it answers PING with loading:0 (startRedis polls PING; LOADING counts as not ready). */
async function baseline(file: string): Promise<number> {
  const t0 = performance.now();
  const p = await startRedis(["--dbfilename", path.basename(file)], { dir: path.dirname(file) });
  try {
    while ((await infoField(p, "persistence", "loading")) !== "0") await new Promise((r) => setTimeout(r, 5));
    const ms = performance.now() - t0;
    const n = await dbsize(p);
    if (n !== KEYS) throw new Error(`baseline loaded ${n} keys, expected ${KEYS}`);
    return ms;
  } finally {
    await p.stop();
  }
}

/** Stores the RDB as a backup is stored: gzip-compressed in a LocalBlobStore. */
async function storeAsBackup(file: string): Promise<{ store: LocalBlobStore; key: string }> {
  const store = new LocalBlobStore(path.join(path.dirname(file), "store"));
  const key = "backups/bench/shard-0.rdb.gz";
  const writer = store.createWriter(key, { compress: true });
  await pipeline(fs.createReadStream(file), writer);
  await writer.commit();
  return { store, key };
}

/** Ours, as RestoreInstance runs it: the stored backup decompressed on the fly into the replication stream. */
async function ours(file: string, stored: { store: LocalBlobStore; key: string }, loadFromSocket: boolean): Promise<{ ms: number; loadMs: number }> {
  const size = fs.statSync(file).size;
  const p = await startRedis();
  try {
    const t0 = performance.now();
    const r = await restoreRdb(p.endpoint, { size, open: () => stored.store.openRead(stored.key, { decompress: true }) }, { loadFromSocket });
    const ms = performance.now() - t0;
    if (r.keys !== KEYS) throw new Error(`restore loaded ${r.keys} keys, expected ${KEYS}`);
    if (r.load !== (loadFromSocket ? "socket" : "disk")) throw new Error(`expected a ${loadFromSocket ? "socket" : "disk"} load, got ${r.load}`);
    return { ms, loadMs: r.loadMs };
  } finally {
    await p.stop();
    fs.rmSync(p.dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`building ${KEYS.toLocaleString("en-US")} keys x ${VALUE_SIZE} B ...`);
  const { file, usedMemory } = await makeRdb();
  const size = fs.statSync(file).size;
  const stored = await storeAsBackup(file);
  console.log(`source used_memory ${usedMemory}, RDB ${size.toLocaleString("en-US")} bytes\n`);
  const rows: Array<{ base: number; socket: number; disk: number }> = [];
  console.log("| round | baseline: redis-server on the file (ms) | restoreRdb, socket load (ms) | socket/baseline | restoreRdb, disk load (ms) | disk/baseline |");
  console.log("|---|---|---|---|---|---|");
  for (let i = 1; i <= ROUNDS; i++) {
    const base = await baseline(file);
    const socket = (await ours(file, stored, true)).ms;
    const disk = (await ours(file, stored, false)).ms;
    rows.push({ base, socket, disk });
    console.log(`| ${i} | ${base.toFixed(0)} | ${socket.toFixed(0)} | ${(socket / base).toFixed(2)} | ${disk.toFixed(0)} | ${(disk / base).toFixed(2)} |`);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const mb = median(rows.map((r) => r.base));
  const ms = median(rows.map((r) => r.socket));
  const md = median(rows.map((r) => r.disk));
  console.log(`| median | ${mb.toFixed(0)} | ${ms.toFixed(0)} | ${(ms / mb).toFixed(2)} | ${md.toFixed(0)} | ${(md / mb).toFixed(2)} |`);
  console.log(`\nratio ours/baseline (medians): ${(ms / mb).toFixed(2)} as RestoreInstance runs it (socket load; goal <= 1.05), ${(md / mb).toFixed(2)} with a disk load`);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
