// npm run bench:api — DescribeInstanceBackups under load against a bare node:http server, in one run.
// A catalogue of 1,000,000 backups (1,000 instances, one with 100,000); signed requests at 50 connections,
// mixed: first pages, deep offsets, time windows, status filters. Env: BENCH_BACKUPS, BENCH_SECONDS.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fs0 from "node:fs";
import { catalogFile } from "../src/app";
import { SqliteCatalog } from "../src/catalog/sqlite/sqlite";
import { LocalTime } from "../src/protocol/time";
import { CLI, load, LoadResult, processCpu, send, SignedRequest, signedRequest, spawnLogged, waitForHttp } from "./support";

const TOTAL = Number(process.env.BENCH_BACKUPS ?? 1_000_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const INSTANCES = 1000;
const BIG = Math.min(100_000, Math.floor(TOTAL / 10));
const KEY = { secretId: "AKIDbench0000000000000000000000001", secretKey: "benchsecret" };
const ACCOUNT = "1300000009";
const START = Date.UTC(2023, 0, 1);
// Expiry far beyond the run, so the scheduler's retention (expire, then purge after --audit-days) leaves the
// catalogue alone: the bench measures reads of a fixed catalogue, not the retirement of a million backups.
const EXPIRE_AFTER = 50 * 365 * 86_400_000;

function instanceId(i: number): string {
  return `crs-${i.toString(36).padStart(8, "0")}`;
}

export async function buildCatalogue(dataDir: string): Promise<void> {
  fs0.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const catalog = new SqliteCatalog(catalogFile(dataDir));
  await catalog.putCredential({ ...KEY, accountId: ACCOUNT });
  const perInstance = Math.floor((TOTAL - BIG) / (INSTANCES - 1));
  const insertInstance = catalog.db.prepare("INSERT INTO instances(instance_id, account_id, region, name, created_at) VALUES (?, ?, 'ap-guangzhou', ?, ?)");
  const insertBackup = catalog.db.prepare(`INSERT INTO backups(backup_id, instance_id, start_time, end_time, backup_type, status, remark, locked, backup_size, instance_type, file_type, expire_time)
    VALUES (?, ?, ?, ?, ?, ?, '', 0, ?, 17, 'RDB-Redis 7.0', ?)`);
  const statuses = [2, 2, 2, 2, -1, -1, 4, -2];
  catalog.db.transaction(() => {
    let made = 0;
    for (let i = 0; i < INSTANCES; i++) {
      const id = instanceId(i);
      insertInstance.run(id, ACCOUNT, `bench-${i}`, START);
      const n = i === 0 ? BIG : i === INSTANCES - 1 ? TOTAL - made : perInstance;
      for (let j = 0; j < n; j++) {
        const start = START + j * 3_600_000;
        const hex = `${i.toString(16).padStart(8, "0")}${j.toString(16).padStart(24, "0")}`;
        const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
        insertBackup.run(uuid, id, start, start + 60_000, j % 7 === 0 ? "1" : "0", statuses[j % statuses.length], 100_000 + j, start + EXPIRE_AFTER);
      }
      made += n;
    }
  })();
  catalog.db.pragma("wal_checkpoint(TRUNCATE)");
  await catalog.close();
}

/** The mix: 40% first pages, 20% deep offsets on the big instance, 20% time windows, 20% status filters. */
export function workload(port: number, count: number): SignedRequest[] {
  const time = new LocalTime("Asia/Shanghai");
  const perInstance = Math.floor((TOTAL - BIG) / (INSTANCES - 1));
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const out: SignedRequest[] = [];
  for (let k = 0; k < count; k++) {
    const kind = k % 5;
    let params: Record<string, unknown>;
    if (kind <= 1) params = { InstanceId: instanceId(rnd(INSTANCES)), Limit: 20, Offset: 0 };
    else if (kind === 2) params = { InstanceId: instanceId(0), Limit: 20, Offset: rnd(Math.floor(BIG / 20)) * 20 };
    else if (kind === 3) {
      const big = rnd(4) === 0;
      const span = big ? BIG : perInstance;
      const from = rnd(span);
      params = { InstanceId: instanceId(big ? 0 : 1 + rnd(INSTANCES - 1)), BeginTime: time.format(START + from * 3_600_000), EndTime: time.format(START + (from + 24 * 14) * 3_600_000), Limit: 20 };
    } else params = { InstanceId: instanceId(rnd(5) === 0 ? 0 : rnd(INSTANCES)), Status: rnd(2) ? [2] : [-1, 4], Limit: 20, Offset: rnd(3) * 20 };
    out.push(signedRequest(port, KEY, JSON.stringify(params)));
  }
  return out;
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
const cpuSeconds = (pid: number): number => processCpu(pid).seconds;

async function main(): Promise<void> {
  // BENCH_DATA: keep the catalogue there and reuse it on the next run (it takes a while to build).
  const keep = process.env.BENCH_DATA;
  const dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-api-"));
  const dataDir = path.join(dir, "data");
  let t = Date.now();
  if (!keep || !fs.existsSync(catalogFile(dataDir))) await buildCatalogue(dataDir);
  const size = fs.statSync(catalogFile(dataDir)).size;
  console.log(`catalogue: ${TOTAL.toLocaleString("en-US")} backups, ${INSTANCES} instances (one with ${BIG.toLocaleString("en-US")}), ${(size / 1e6).toFixed(0)} MB, built in ${((Date.now() - t) / 1000).toFixed(1)} s`);

  const ourPort = 19000 + Math.floor(Math.random() * 1000);
  const barePort = ourPort + 1000;
  t = Date.now();
  // BENCH_CPU_PROF=dir: the server runs under `node --cpu-prof` (the profile is written when it exits).
  const profDir = process.env.BENCH_CPU_PROF;
  // BENCH_SERVER_ROOT=checkout: serve with that build (npx tsc -p . there) instead of this one, on this catalogue.
  const cli = process.env.BENCH_SERVER_ROOT ? path.join(path.resolve(process.env.BENCH_SERVER_ROOT), "dist", "src", "cli", "main.js") : CLI;
  const ours = spawnLogged([...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []), cli, "serve", "--data", dataDir, "--port", String(ourPort), "--rate-limit", "1000000000"], path.join(dir, "server.log"));
  await waitForHttp(ourPort, 30_000);
  const startMs = Date.now() - t;

  const requests = workload(ourPort, 2000);
  // Every kind of request must succeed; a sample page fixes the size of the bare server's answer.
  let sample = "";
  for (const r of requests.slice(0, 10)) {
    const body = await send(ourPort, r);
    if (body.includes('"Error"')) throw new Error(`request failed: ${body}`);
    if (!sample && r.body.includes('"Offset":0') && !r.body.includes("Status")) sample = body;
  }
  const bare = spawnLogged([path.join(__dirname, "bare-server.js"), String(barePort), String(Buffer.byteLength(sample))], path.join(dir, "bare.log"));
  await waitForHttp(barePort, 10_000);

  const rows: Array<{ round: number; name: string; r: LoadResult }> = [];
  const run = { connections: 50, seconds: SECONDS };
  // Warm-up: every request of the mix once (caches filled, listing indexes built), then two seconds of load.
  for (let k = 0; k < requests.length; k += 50) await Promise.all(requests.slice(k, k + 50).map((r) => send(ourPort, r)));
  await load(ourPort, requests.slice(0, 200), { connections: 50, seconds: 2 });
  let served = 0;
  let cpu = 0;
  let bareServed = 0;
  let bareCpu = 0;
  for (let round = 1; round <= 2; round++) {
    const bareBefore = cpuSeconds(bare.pid!);
    const b = await load(barePort, requests, run);
    bareCpu += cpuSeconds(bare.pid!) - bareBefore;
    bareServed += b.total;
    rows.push({ round, name: "bare node:http", r: b });
    const before = cpuSeconds(ours.pid!);
    const r = await load(ourPort, requests, run);
    cpu += cpuSeconds(ours.pid!) - before;
    served += r.total;
    rows.push({ round, name: "crs-backup", r });
  }
  const exited = new Promise((resolve) => ours.once("exit", resolve));
  ours.kill("SIGTERM");
  bare.kill("SIGTERM");
  await exited;

  console.log(`\nbody size ${Buffer.byteLength(sample)} bytes; 50 connections; ${SECONDS} s per run; ${os.cpus().length} cores (load generator on the same machine)\n`);
  console.log("| round | server | req/s | p50 ms | p99 ms | errors |");
  console.log("|---|---|---|---|---|---|");
  for (const { round, name, r } of rows) console.log(`| ${round} | ${name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.errors} |`);
  const avg = (name: string, f: (r: LoadResult) => number) => {
    const xs = rows.filter((x) => x.name === name).map((x) => f(x.r));
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const ratio = avg("crs-backup", (r) => r.rps) / avg("bare node:http", (r) => r.rps);
  console.log(`\nratio crs-backup / bare req/s: ${ratio.toFixed(2)} (goal >= 0.70)`);
  console.log(`crs-backup p99: ${Math.max(...rows.filter((x) => x.name === "crs-backup").map((x) => x.r.p99))} ms (goal <= 15)`);
  console.log(`server start with the catalogue: ${startMs} ms (goal < 2000)`);
  console.log(`crs-backup server process CPU per request (HTTP included): ${((cpu * 1e6) / served).toFixed(0)} µs over ${served} requests; load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  // The bare server's own CPU per request: what HTTP alone costs here (read, parse, a response of the same size).
  console.log(`bare node:http server process CPU per request: ${((bareCpu * 1e6) / bareServed).toFixed(0)} µs over ${bareServed} requests`);
  if (profDir) console.log(`server CPU profile in ${profDir} (node dist/bench/cpuprofile-top.js FILE ${served})`);
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
}

if (require.main === module) main().catch((err) => {
  console.error(err);
  process.exit(1);
});
