// Clone benchmark (CloneInstances, jobs/clones.ts), two figures, each against a baseline in the same run:
//  1. Replaying stream units into a clone (replayRaw: what a clone to a second does after its base) vs
//     `redis-cli --pipe` loading the same commands into a fresh redis-server. Ratio = baseline ms / ours ms
//     (throughput relative to redis-cli); goal >= 0.8. The per-command replay of restore --at (replayUnits) is
//     timed too, for comparison.
//  2. A clone at a second N hours after its base (the base loaded by a provisioned redis-server, then N hours of
//     writes replayed) vs restoring the base alone (the same server loading the same RDB). Scaled down: the writes
//     of N hours are BENCH_HOURS x 3600 x BENCH_WRITES_PER_SEC commands.
//   BENCH_COMMANDS (default 1,000,000), BENCH_BASE_KEYS (default 1,000,000), BENCH_VALUE_SIZE (default 100),
//   BENCH_HOURS (default 1), BENCH_WRITES_PER_SEC (default 100), BENCH_ROUNDS (default 3). Run: npm run bench:clone
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { encodeCommand, RespConnection } from "../src/redis/client/resp";
import { replayUnits } from "../src/redis/stream/replay";
import { replayRaw } from "../src/redis/stream/replay-raw";
import type { StoredUnit } from "../src/redis/stream/segments";
import { LocalProcessProvider } from "../src/instances/local";
import type { InstanceSpec } from "../src/instances/provider";
import { freePort, startRedis, withConn } from "../test/support/redis";

const COMMANDS = Number(process.env.BENCH_COMMANDS ?? 1_000_000);
const BASE_KEYS = Number(process.env.BENCH_BASE_KEYS ?? 1_000_000);
const VALUE_SIZE = Number(process.env.BENCH_VALUE_SIZE ?? 100);
const HOURS = Number(process.env.BENCH_HOURS ?? 1);
const WRITES_PER_SEC = Number(process.env.BENCH_WRITES_PER_SEC ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** `n` writes as stream units (one SET per unit, every 10th a MULTI/INCR/SET/EXEC), from offset 0. */
function units(n: number, prefix: string): StoredUnit[] {
  const value = "v".repeat(VALUE_SIZE);
  const out: StoredUnit[] = [];
  let end = 0;
  for (let i = 0; i < n; i++) {
    const raw = i % 10 === 9
      ? Buffer.concat([encodeCommand(["MULTI"]), encodeCommand(["INCR", `${prefix}c:${i}`]), encodeCommand(["SET", `${prefix}k:${i}`, value]), encodeCommand(["EXEC"])])
      : encodeCommand(["SET", `${prefix}k:${i}`, value]);
    end += raw.length;
    out.push({ end, arrival: 0, db: 0, commands: i % 10 === 9 ? 4 : 1, raw });
  }
  return out;
}

async function dbsize(port: number): Promise<number> {
  const c = await RespConnection.connect({ host: "127.0.0.1", port });
  try {
    return Number(await c.command("DBSIZE"));
  } finally {
    c.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function replayVsPipe(): Promise<void> {
  const us = units(COMMANDS, "");
  const file = path.join(os.tmpdir(), `crs-bench-clone-${process.pid}.resp`);
  fs.writeFileSync(file, Buffer.concat([encodeCommand(["SELECT", "0"]), ...us.map((u) => u.raw)]));
  const ours: number[] = [];
  const perCommand: number[] = [];
  const base: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const a = await startRedis(["--save", "", "--appendonly", "no"]);
      try {
        const t0 = performance.now();
        const res = await replayRaw(a.endpoint, us);
        ours.push(performance.now() - t0);
        if (res.errors) throw new Error(`replay errors: ${res.firstError}`);
        if ((await dbsize(a.port)) !== COMMANDS + COMMANDS / 10) throw new Error("replay loaded the wrong number of keys");
      } finally {
        await a.stop();
      }
      const pc = await startRedis(["--save", "", "--appendonly", "no"]);
      try {
        const t0 = performance.now();
        await replayUnits(pc.endpoint, us);
        perCommand.push(performance.now() - t0);
      } finally {
        await pc.stop();
      }
      const b = await startRedis(["--save", "", "--appendonly", "no"]);
      try {
        const t0 = performance.now();
        await new Promise<void>((resolve, reject) => {
          const p = spawn("redis-cli", ["-p", String(b.port), "--pipe"], { stdio: ["pipe", "ignore", "inherit"] });
          fs.createReadStream(file).pipe(p.stdin);
          p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli --pipe exited ${code}`))));
        });
        base.push(performance.now() - t0);
      } finally {
        await b.stop();
      }
    }
  } finally {
    fs.rmSync(file, { force: true });
  }
  const o = median(ours);
  const bl = median(base);
  console.log(`replay of ${COMMANDS} units (${VALUE_SIZE}-byte values): ours ${o.toFixed(0)} ms (${(COMMANDS / o * 1000).toFixed(0)} units/s), redis-cli --pipe ${bl.toFixed(0)} ms; throughput ratio ours/baseline = ${(bl / o).toFixed(2)} (goal >= 0.8); the per-command replay of restore --at: ${median(perCommand).toFixed(0)} ms (ratio ${(bl / median(perCommand)).toFixed(2)})`);
}

async function cloneAtSecondVsBase(): Promise<void> {
  // The base: BASE_KEYS keys, saved as an RDB.
  const src = await startRedis(["--enable-debug-command", "yes"]);
  const rdb = path.join(src.dir, "base.rdb");
  await withConn(src, (c) => c.command("DEBUG", "POPULATE", BASE_KEYS, "key", VALUE_SIZE));
  execFileSync("redis-cli", ["-p", String(src.port), "--rdb", rdb], { stdio: "ignore" });
  const used = /^used_memory:(\d+)/m.exec(String(await withConn(src, (c) => c.command("INFO", "memory"))))?.[1];
  console.log(`base: ${BASE_KEYS} keys, used_memory ${(Number(used) / 2 ** 30).toFixed(2)} GiB, RDB ${(fs.statSync(rdb).size / 2 ** 30).toFixed(2)} GiB`);
  await src.stop();
  const writes = Math.round(HOURS * 3600 * WRITES_PER_SEC);
  const us = units(writes, "w");
  const provider = new LocalProcessProvider({ redisServer: process.env.BENCH_REDIS_SERVER ?? "redis-server" });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-clone-"));
  const run = async (replay: boolean): Promise<number> => {
    const spec: InstanceSpec = { instanceId: "crs-bench0001", host: "127.0.0.1", port: await freePort(), dataDir: path.join(root, "crs-bench0001") };
    const { dataFile } = await provider.prepare(spec);
    fs.copyFileSync(rdb, dataFile);
    const t0 = performance.now();
    await provider.start(spec);
    for (;;) {
      const ok = await RespConnection.connect({ host: "127.0.0.1", port: spec.port }, 1000).then(async (c) => {
        try {
          return String(await c.command("PING")) === "PONG";
        } finally {
          c.close();
        }
      }, () => false).catch(() => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    if (replay) await replayRaw({ host: "127.0.0.1", port: spec.port }, us);
    const ms = performance.now() - t0;
    const want = BASE_KEYS + (replay ? writes + Math.floor(writes / 10) : 0);
    if ((await dbsize(spec.port)) !== want) throw new Error("the clone holds the wrong number of keys");
    await provider.destroy(spec);
    return ms;
  };
  const withStream: number[] = [];
  const baseOnly: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      baseOnly.push(await run(false));
      withStream.push(await run(true));
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  const a = median(withStream);
  const b = median(baseOnly);
  console.log(`clone at a second ${HOURS} h after its base (${BASE_KEYS} keys + ${writes} writes at ${WRITES_PER_SEC}/s): ${a.toFixed(0)} ms; the base alone: ${b.toFixed(0)} ms; ratio = ${(a / b).toFixed(2)}`);
}

async function main(): Promise<void> {
  await replayVsPipe();
  await cloneAtSecondVsBase();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
