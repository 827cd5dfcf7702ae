// RDB engine benchmark, each figure against a native baseline in the same run:
//  1. parse: our streaming reader (a child process, so its peak RSS is its own) vs `redis-check-rdb` (Debian
//     7.0) on the same file. Goal: <= 1.5x the time, RSS < 150 MB. Data sets: A = DEBUG POPULATE (small
//     strings), B = large lists, hashes, sorted sets and streams.
//  2. digest: DEBUG DIGEST from the stream (in-thread and in a worker) — informational, no baseline.
//  3. restore by commands of A into a running server vs `redis-cli --pipe` of a RESP file (our RESP export of
//     the same RDB: the same SET commands). Goal: <= 1.2x.
// Sizes: BENCH_RDB_KEYS (default 3,000,000 keys in A), BENCH_RDB_VALUE_SIZE (default 300 bytes: DEBUG POPULATE
// pads with zeros, so the values are LZF-compressed in the RDB, ~120 MB), BENCH_RDB_ELEMENTS (default 2,000,000
// elements in B), BENCH_ROUNDS (default 2, best round counts).
// Quick check: BENCH_RDB_KEYS=200000 BENCH_RDB_ELEMENTS=200000 npm run bench:rdb
// Run: npm run bench:rdb
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { captureRdb } from "../src/redis/capture/capture";
import { PipelinedConnection } from "../src/redis/client/pipelined";
import { exportResp } from "../src/redis/rdb/index";
import { restoreByCommands } from "../src/redis/restore/commands";
import { RedisProcess, startRedis, withConn } from "../test/support/redis";

const KEYS = Number(process.env.BENCH_RDB_KEYS ?? 3_000_000);
const VALUE_SIZE = Number(process.env.BENCH_RDB_VALUE_SIZE ?? 300);
const ELEMENTS = Number(process.env.BENCH_RDB_ELEMENTS ?? 2_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CHILD = path.join(__dirname, "rdb-parse-child.js");

async function capture(p: RedisProcess, file: string): Promise<number> {
  const out = fs.createWriteStream(file);
  const r = await captureRdb(p.endpoint, out, { timeoutMs: 300_000 });
  return r.bytes;
}

/** Data set B: a few big collections of every kind, written with pipelined variadic commands. */
async function writeLarge(p: RedisProcess): Promise<void> {
  const c = await PipelinedConnection.connect(p.endpoint);
  const per = Math.max(1000, Math.floor(ELEMENTS / 4));
  const batch = 500;
  const pad = "x".repeat(24);
  const kinds = 4;
  for (let k = 0; k < kinds; k++) {
    for (let done = 0; done < per; done += batch) {
      const n = Math.min(batch, per - done);
      const key = `big:${k}:${Math.floor(done / (per / 5))}`; // 5 keys per kind
      const items = Array.from({ length: n }, (_, i) => `${done + i}-${pad}`);
      if (k === 0) c.command(["RPUSH", key, ...items], 0);
      if (k === 1) c.command(["HSET", key, ...items.flatMap((x, i) => [x, String(i)])], 0);
      if (k === 2) c.command(["ZADD", key, ...items.flatMap((x, i) => [String((done + i) / 7), x])], 0);
      if (k === 3) for (const x of items) c.command(["XADD", key, "*", "f", x, "n", "1"], 0);
      await c.waitBelow(4 << 20);
    }
  }
  await c.waitBelow(0);
  c.close();
}

function timeCheckRdb(file: string): number {
  const t0 = process.hrtime.bigint();
  const out = spawnSync("redis-check-rdb", [file], { encoding: "utf8" });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!/RDB looks OK/.test(out.stdout)) throw new Error(`redis-check-rdb failed: ${out.stdout}${out.stderr}`);
  return ms;
}

interface ChildResult {
  ms: number;
  keys: number;
  elements: number;
  maxRssMB: number;
  wallMs: number;
}

function runChild(file: string, mode: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const ch = spawn(process.execPath, [CHILD, file, mode], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    ch.stdout.on("data", (d: Buffer) => (out += d.toString()));
    ch.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`parse child exited ${code}`));
      resolve({ ...(JSON.parse(out) as ChildResult), wallMs: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
  });
}

const best = <T>(xs: T[], by: (x: T) => number): T => xs.reduce((a, b) => (by(b) < by(a) ? b : a));
const f1 = (n: number): string => n.toFixed(0);

async function benchParse(label: string, file: string): Promise<string[]> {
  const base: number[] = [];
  const ours: ChildResult[] = [];
  const digests: ChildResult[] = [];
  const workers: ChildResult[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    base.push(timeCheckRdb(file));
    ours.push(await runChild(file, "parse"));
    digests.push(await runChild(file, "digest"));
    workers.push(await runChild(file, "digest-worker"));
  }
  const b = Math.min(...base);
  const o = best(ours, (x) => x.ms);
  const d = best(digests, (x) => x.ms);
  const w = best(workers, (x) => x.ms);
  const size = fs.statSync(file).size;
  const lines = [
    `${label}: ${o.keys} keys, ${o.elements} elements, ${(size / 1048576).toFixed(1)} MiB`,
    `  redis-check-rdb            ${f1(b)} ms   (rounds: ${base.map(f1).join(", ")})`,
    `  RdbReader (parse)          ${f1(o.ms)} ms   (process wall ${f1(o.wallMs)} ms, peak RSS ${f1(o.maxRssMB)} MB; rounds: ${ours.map((x) => f1(x.ms)).join(", ")})`,
    `  ratio parse / check-rdb    ${(o.ms / b).toFixed(2)}   (goal <= 1.5; wall incl. node start ${(o.wallMs / b).toFixed(2)})`,
    `  RdbDigest (in thread)      ${f1(d.ms)} ms   (peak RSS ${f1(d.maxRssMB)} MB)`,
    `  DigestStream (worker)      ${f1(w.ms)} ms   (peak RSS ${f1(w.maxRssMB)} MB)`,
  ];
  return lines;
}

async function benchRestore(file: string, dir: string): Promise<string[]> {
  const resp = path.join(dir, "a.resp");
  const out = fs.createWriteStream(resp);
  await exportResp(fs.createReadStream(file, { highWaterMark: 1 << 16 }), out, { targetVersion: "7.0.15" });
  await new Promise<void>((resolve) => out.end(resolve));
  const target = await startRedis(["--appendonly", "no"]);
  const pipe: number[] = [];
  const ours: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      await withConn(target, (c) => c.command("FLUSHALL"));
      let t0 = process.hrtime.bigint();
      const res = spawnSync("sh", ["-c", `redis-cli -p ${target.port} --pipe < '${resp}'`], { encoding: "utf8" });
      pipe.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (!/errors: 0/.test(res.stdout)) throw new Error(`redis-cli --pipe: ${res.stdout}${res.stderr}`);
      await withConn(target, (c) => c.command("FLUSHALL"));
      t0 = process.hrtime.bigint();
      const s = await restoreByCommands(fs.createReadStream(file, { highWaterMark: 1 << 16 }), { target: target.endpoint });
      ours.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (s.keys !== KEYS || s.failed) throw new Error(`restore wrote ${s.keys} keys, ${s.failed} failed`);
    }
  } finally {
    await target.stop();
  }
  const b = Math.min(...pipe);
  const o = Math.min(...ours);
  return [
    `restore of A into a running redis-server 7.0 (${KEYS} keys)`,
    `  redis-cli --pipe (RESP file, ${(fs.statSync(resp).size / 1048576).toFixed(1)} MiB)  ${f1(b)} ms   (rounds: ${pipe.map(f1).join(", ")})`,
    `  restoreByCommands (from the RDB)          ${f1(o)} ms   (rounds: ${ours.map(f1).join(", ")})`,
    `  ratio ours / --pipe                       ${(o / b).toFixed(2)}   (goal <= 1.2)`,
  ];
}

async function main(): Promise<void> {
  execFileSync("redis-check-rdb", ["--version"], { stdio: "ignore" });
  const src = await startRedis(["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]);
  const dir = src.dir;
  const fileA = path.join(dir, "a.rdb");
  const fileB = path.join(dir, "b.rdb");
  try {
    await withConn(src, (c) => c.command("DEBUG", "POPULATE", KEYS, "key", VALUE_SIZE));
    await capture(src, fileA);
    await withConn(src, (c) => c.command("FLUSHALL"));
    await writeLarge(src);
    await capture(src, fileB);
  } finally {
    await src.stop();
  }
  const report: string[] = [`node ${process.version}, ${ROUNDS} rounds, best round shown`];
  report.push(...(await benchParse(`A: DEBUG POPULATE ${KEYS} key ${VALUE_SIZE}`, fileA)));
  report.push(...(await benchParse(`B: large lists/hashes/zsets/streams`, fileB)));
  report.push(...(await benchRestore(fileA, dir)));
  console.log(report.join("\n"));
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
