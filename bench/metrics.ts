// bench:metrics — what a Prometheus scrape costs: GET /metrics against GET /healthz (the baseline: same server,
// same connection handling, no work) on a `crs-backup serve` whose catalogue holds 1,000 instances and 100,000
// backups (BENCH_BACKUPS), scraped every 25 ms for BENCH_SECONDS (long enough to include the background
// re-readings of the catalogue, every 5 s). Also: the first scrape (which reads every instance's newest backup)
// and Catalog.stats() itself on that catalogue.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { freePort } from "../test/support/redis";
import { SqliteCatalog } from "../src/catalog/sqlite/sqlite";
import { ALL_WEEKDAYS } from "../src/protocol/schedule";
import { catalogFile } from "../src/config";
import { CLI, spawnLogged } from "./support";

const HOUR = 3_600_000;
const START = Date.UTC(2024, 0, 1);
const ACCOUNT = "1300000000";

function get(port: number, p: string, agent: http.Agent): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: p, agent }, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => (bytes += c.length));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes }));
    }).on("error", reject);
  });
}

async function build(dataDir: string, instances: number, backups: number): Promise<void> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const catalog = new SqliteCatalog(catalogFile(dataDir));
  const per = Math.floor(backups / instances);
  const far = Date.now() + 50 * 365 * 24 * HOUR;
  await catalog.transaction(async (tx) => {
    for (let i = 0; i < instances; i++) {
      const id = `crs-${String(i).padStart(8, "0")}`;
      await tx.upsertInstance({
        instanceId: id, accountId: ACCOUNT, region: "ap-guangzhou", name: `bench-${i}`, redisUrl: `redis://127.0.0.1:${10_000 + i}`,
        instanceType: 17, shardNum: 1, redisVersion: "7.0.15", memSizeMb: 1024, createdAt: START,
        autoBackupWeekDays: ALL_WEEKDAYS, autoBackupPeriod: "00:00-01:00", backupStorageDays: 7, lastAutoWindow: far,
      });
      for (let j = 0; j < per; j++) {
        const start = START + j * HOUR;
        await tx.insertBackup({
          backupId: `${String(i).padStart(8, "0")}-0000-4000-8000-${String(j).padStart(12, "0")}`, instanceId: id, startTime: start, endTime: start + 20_000,
          backupType: "1", status: j % 5 === 4 ? -1 : 2, remark: "", locked: 0, backupSize: 100_000 + j, fullBackup: 0, instanceType: 17, fileType: "RDB-Redis 7.0",
          expireTime: start + 50 * 365 * 24 * HOUR, encrypted: false, files: [],
        });
      }
    }
  });
  catalog.db.pragma("wal_checkpoint(TRUNCATE)");
  await catalog.close();
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function series(port: number, p: string, seconds: number, everyMs: number, agent: http.Agent): Promise<{ times: number[]; bytes: number }> {
  const times: number[] = [];
  let bytes = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const t = process.hrtime.bigint();
    const r = await get(port, p, agent);
    if (r.status !== 200) throw new Error(`${p}: ${r.status}`);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
    bytes = r.bytes;
    await new Promise((res) => setTimeout(res, everyMs));
  }
  return { times: times.sort((a, b) => a - b), bytes };
}

async function main(): Promise<void> {
  const instances = Number(process.env.BENCH_INSTANCES ?? 1000);
  const backups = Number(process.env.BENCH_BACKUPS ?? 100_000);
  const seconds = Number(process.env.BENCH_SECONDS ?? 12);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-metrics-"));
  const data = path.join(dir, "data");
  let t = Date.now();
  await build(data, instances, backups);
  console.log(`catalogue: ${instances} instances, ${backups} backups, built in ${Date.now() - t} ms`);

  const catalog = new SqliteCatalog(catalogFile(data));
  const statTimes: number[] = [];
  for (let i = 0; i < 20; i++) {
    const s = process.hrtime.bigint();
    await catalog.stats();
    statTimes.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  await catalog.close();
  statTimes.sort((a, b) => a - b);

  const port = await freePort();
  const proc = spawnLogged([CLI, "serve", "--data", data, "--port", String(port), "--auto-backups", "off", "--log-level", "warn"], path.join(dir, "serve.log"),
    { CRS_SECRET_ID: "AKIDbenchmetrics000000000000000001", CRS_SECRET_KEY: "benchmetricssecret00000000000001" });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let deadline = Date.now() + 30_000; ; ) {
      const up = await get(port, "/healthz", agent).then((r) => r.status === 200, () => false);
      if (up) break;
      if (Date.now() > deadline) throw new Error("the server did not start");
      await new Promise((r) => setTimeout(r, 20));
    }
    t = Date.now();
    const first = await get(port, "/metrics", agent);
    const firstMs = Date.now() - t;
    const health = await series(port, "/healthz", seconds, 25, agent);
    const metrics = await series(port, "/metrics", seconds, 25, agent);
    const row = (name: string, s: { times: number[] }) => `| ${name} | ${s.times.length} | ${pct(s.times, 0.5).toFixed(2)} | ${pct(s.times, 0.99).toFixed(2)} | ${s.times.at(-1)!.toFixed(2)} |`;
    console.log("\n| request | n | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|");
    console.log(row("GET /healthz (baseline)", health));
    console.log(row("GET /metrics", metrics));
    console.log(`\n- /metrics body: ${metrics.bytes} bytes`);
    console.log(`- /metrics p50 minus /healthz p50: **${(pct(metrics.times, 0.5) - pct(health.times, 0.5)).toFixed(2)} ms** (goal < 5 ms: ${pct(metrics.times, 0.5) - pct(health.times, 0.5) < 5 ? "met" : "not met"}); ratio p50 ${(pct(metrics.times, 0.5) / pct(health.times, 0.5)).toFixed(1)}x`);
    console.log(`- first scrape (reads the newest backup of each of ${instances} instances): ${firstMs} ms, ${first.bytes} bytes`);
    console.log(`- Catalog.stats() on this catalogue (done in the background at most every 5 s): p50 ${pct(statTimes, 0.5).toFixed(2)} ms, max ${statTimes.at(-1)!.toFixed(2)} ms`);
  } finally {
    agent.destroy();
    proc.kill("SIGTERM");
    await new Promise((r) => proc.once("exit", r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
