// npm run bench:scale — the service outgrowing one machine, each part against a baseline in the same run:
//   1. api:   bench:api's DescribeInstanceBackups mix on a PostgreSQL catalogue of 1,000,000 backups against the
//             SQLite one (same rows): req/s ratio (goal >= 0.7) and p99 ratio (goal <= 1.5).
//   2. s3:    capture of the 3,000,000-key Redis into an S3 server (s3rver) against into a local directory: wall
//             time ratio (goal <= 1.1) and the capture's peak RSS (goal < 150 MB) — bench:storage's function.
//   3. fleet: 50 small redis-servers (10,000 keys each) backed up at once by two nodes (PostgreSQL catalogue,
//             one shared directory) with --concurrency 4: total wall time and each node's peak RSS, against the
//             sum of `redis-cli --rdb` over the same servers.
// Env: SCALE_PARTS=api,s3,fleet (default all), BENCH_BACKUPS, BENCH_SECONDS, BENCH_KEYS, FLEET_SERVERS, FLEET_KEYS,
// FLEET_ROUNDS (default 3: the nodes' first backups after their start, the same fleet again on warm nodes, then once
// more after the nodes sat idle FLEET_IDLE_S, default 35 s: past every 30 s idle timeout a node has, as before a
// scheduled backup window);
// for the fleet's analysis: FLEET_SERVE_ARGS (more `serve` options), FLEET_CPU_BY_COMM=1 (CPU by command name),
// FLEET_CPU_PROF=DIR (the nodes' V8 CPU profiles, with the window to read them by), FLEET_NODE_ARGS (Node/V8 flags),
// FLEET_LOGS=DIR (the nodes' logs copied there).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { catalogFile } from "../src/app";
import { openCatalog } from "../src/catalog/open";
import { SqliteCatalog } from "../src/catalog/sqlite/sqlite";
import { freshDatabase } from "../test/support/postgres";
import { freePort, RedisProcess, startRedis, waitFor } from "../test/support/redis";
import { send as redisSend } from "../test/support/dataset";
import { buildCatalogue, workload } from "./api";
import { benchStorage } from "./storage";
import { CLI, load, LoadResult, processCpu, send, spawnLogged, waitForHttp } from "./support";
import { RedisClient } from "../test/support/server";

const PARTS = (process.env.SCALE_PARTS ?? "api,s3,fleet").split(",");
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

/** Copies the SQLite bench catalogue into PostgreSQL: the same rows, bulk-loaded, then the counts and versions. */
async function copyToPostgres(dataDir: string, url: string): Promise<void> {
  const cat = await openCatalog(url); // migrations
  await cat.close();
  const src = new SqliteCatalog(catalogFile(dataDir));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Triggers off for the bulk load (the counts and versions are computed once at the end, as migration 2 does).
    await client.query("SET session_replication_role = replica");
    for (const table of ["accounts", "credentials", "instances"]) {
      const rows = src.db.prepare(`SELECT * FROM ${table}`).all() as Array<Record<string, unknown>>;
      for (const r of rows) {
        const cols = Object.keys(r);
        await client.query(`INSERT INTO ${table}(${cols.join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")}) ON CONFLICT DO NOTHING`, cols.map((c) => r[c]));
      }
    }
    const cols = ["backup_id", "instance_id", "start_time", "end_time", "backup_type", "status", "remark", "locked", "backup_size", "full_backup", "instance_type", "file_type", "expire_time", "encrypted", "files", "deleted_at", "fixture"];
    const it = src.db.prepare(`SELECT ${cols.join(", ")} FROM backups`).raw().iterate() as IterableIterator<unknown[]>;
    let batch: unknown[][] = [];
    const flush = async () => {
      if (!batch.length) return;
      const values: unknown[] = [];
      const rows = batch.map((r) => `(${r.map((v) => { values.push(v); return `$${values.length}`; }).join(", ")})`);
      await client.query(`INSERT INTO backups(${cols.join(", ")}) VALUES ${rows.join(", ")}`, values);
      batch = [];
    };
    for (const r of it) {
      batch.push(r);
      if (batch.length === 1000) await flush();
    }
    await flush();
    await client.query("SET session_replication_role = origin");
    await client.query("INSERT INTO backup_counts(instance_id, status, n) SELECT instance_id, status, count(*) FROM backups GROUP BY instance_id, status");
    await client.query("INSERT INTO backup_versions(instance_id, version) SELECT instance_id, nextval('backup_version_seq') FROM backups GROUP BY instance_id");
    await client.query("VACUUM ANALYZE");
  } finally {
    await client.end();
    await src.close();
  }
}

async function partApi(dir: string): Promise<void> {
  console.log("\n## 1. bench:api on PostgreSQL against SQLite (same 1,000,000 backups)\n");
  const dataDir = path.join(dir, "api");
  let t = Date.now();
  await buildCatalogue(dataDir);
  console.log(`SQLite catalogue built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const db = await freshDatabase("scale");
  t = Date.now();
  await copyToPostgres(dataDir, db.url);
  console.log(`PostgreSQL catalogue loaded in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const servers: Array<{ name: string; port: number; kill(): void }> = [];
  try {
    for (const [name, extra] of [["sqlite", []], ["postgres", ["--catalog", db.url]]] as const) {
      const port = await freePort();
      const proc = spawnLogged([CLI, "serve", "--data", dataDir, "--port", String(port), "--rate-limit", "0", "--auto-backups", "off", ...extra], path.join(dir, `api-${name}.log`));
      await waitForHttp(port, 60_000);
      servers.push({ name, port, kill: () => proc.kill("SIGTERM") });
      // SQLite's server holds the data directory; PostgreSQL's needs none of it but the lock: run them one at a time.
      const requests = workload(port, 2000);
      for (const r of requests.slice(0, 10)) {
        const body = await send(port, r);
        if (body.includes('"Error"')) throw new Error(`${name}: request failed: ${body}`);
      }
      await load(port, requests.slice(0, 200), { connections: 50, seconds: 2 });
      const rounds: LoadResult[] = [];
      for (let i = 0; i < 2; i++) rounds.push(await load(port, requests, { connections: 50, seconds: SECONDS }));
      (servers[servers.length - 1] as unknown as { rounds: LoadResult[] }).rounds = rounds;
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
    }
  } finally {
    for (const s of servers) s.kill();
    await db.drop();
  }
  console.log("| catalogue | round | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|");
  const roundsOf = (name: string) => (servers.find((s) => s.name === name) as unknown as { rounds: LoadResult[] }).rounds;
  for (const name of ["sqlite", "postgres"]) roundsOf(name).forEach((r, i) => console.log(`| ${name} | ${i + 1} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.errors} |`));
  const avg = (name: string, f: (r: LoadResult) => number) => {
    const rs = roundsOf(name);
    return rs.reduce((a, r) => a + f(r), 0) / rs.length;
  };
  const sqliteRps = avg("sqlite", (r) => r.rps);
  const sqliteP99 = avg("sqlite", (r) => r.p99);
  const pgRps = avg("postgres", (r) => r.rps);
  const pgP99 = avg("postgres", (r) => r.p99);
  console.log(`\nPostgreSQL / SQLite req/s: ${(pgRps / sqliteRps).toFixed(2)} (goal >= 0.70); p99: ${(pgP99 / sqliteP99).toFixed(2)}x (goal <= 1.5)`);
}

async function partS3(): Promise<void> {
  console.log("\n## 2. capture into S3 (s3rver) against into a local directory\n");
  const keys = Number(process.env.BENCH_KEYS ?? 3_000_000);
  const r = await benchStorage({ keys, rounds: 2, log: (l) => console.log(l) });
  console.log(`\n${r.text}`);
}

/** CPU seconds a process has used, its own and its reaped children's; 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const c = processCpu(pid);
    return c.seconds + c.childrenSeconds;
  } catch {
    return 0;
  }
}

/** Every live process's CPU (processCpu), by pid. */
function liveProcesses(): Map<number, ReturnType<typeof processCpu>> {
  const out = new Map<number, ReturnType<typeof processCpu>>();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      out.set(Number(d), processCpu(Number(d)));
    } catch { /* gone */ }
  }
  return out;
}

/** CPU seconds used by every process whose command name is `comm` (PostgreSQL's backends), reaped children included. */
function cpuSecondsOf(comm: string): number {
  let sum = 0;
  for (const c of liveProcesses().values()) if (c.comm === comm) sum += c.seconds + c.childrenSeconds;
  return sum;
}

/** CPU seconds of every live process by "pid comm" (a process started since counts whole; one ended since, if
 *  not reaped by a live parent, is missed). */
function cpuByComm(): Map<string, number> {
  return new Map([...liveProcesses()].map(([pid, c]) => [`${pid} ${c.comm}`, c.seconds]));
}

/** The machine's busy CPU seconds so far (all cores; /proc/stat's first line without idle and iowait). */
function machineBusySeconds(): number {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / 100;
}

/** Waits until the machine's CPUs are nearly idle (under 10 % busy over 200 ms), or the deadline passes. */
async function quiet(deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const a = machineBusySeconds();
    await new Promise((r) => setTimeout(r, 200));
    if ((machineBusySeconds() - a) / 0.2 < 0.1 * os.cpus().length) return;
  }
}

/** The space-separated words of an environment variable (none when unset). */
function envWords(name: string): string[] {
  return (process.env[name] ?? "").split(" ").filter(Boolean);
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function partFleet(dir: string): Promise<void> {
  const n = Number(process.env.FLEET_SERVERS ?? 50);
  const keys = Number(process.env.FLEET_KEYS ?? 10_000);
  console.log(`\n## 3. a fleet: ${n} redis-servers of ${keys.toLocaleString("en-US")} keys, two nodes with --concurrency 4\n`);
  const redis: RedisProcess[] = [];
  const db = await freshDatabase("fleet");
  try {
    for (let i = 0; i < n; i += 10) redis.push(...(await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => startRedis(["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"])))));
    await Promise.all(redis.map((r, i) => redisSend(r.endpoint, [["DEBUG", "POPULATE", keys, `k${i}`, 32]])));
    // Baseline: redis-cli --rdb over the same servers, one after another.
    const base0 = { machine: machineBusySeconds(), all: cpuByComm() };
    let t = Date.now();
    for (const r of redis) execFileSync("redis-cli", ["-p", String(r.port), "--rdb", path.join(dir, `base-${r.port}.rdb`)], { stdio: "ignore" });
    const baselineMs = Date.now() - t;
    const base1 = { machine: machineBusySeconds(), all: cpuByComm() };
    for (const r of redis) fs.rmSync(path.join(dir, `base-${r.port}.rdb`), { force: true });

    const key = { secretId: "AKIDfleet00000000000000000000001", secretKey: "fleetkey" };
    const seed = path.join(dir, "fleet-seed.json");
    fs.writeFileSync(seed, JSON.stringify({
      Credentials: [{ SecretId: key.secretId, SecretKey: key.secretKey }],
      Instances: redis.map((r, i) => ({ InstanceId: `crs-fleet${String(i).padStart(3, "0")}`, Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${r.port}` })),
    }));
    const shared = path.join(dir, "fleet-files");
    const nodes: Array<{ port: number; pid: number; spawnedAt: number; kill(): void }> = [];
    // FLEET_CPU_PROF=DIR: each node writes a V8 CPU profile there when it stops; the fleet's window in each is printed.
    const prof = process.env.FLEET_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.FLEET_CPU_PROF}`] : [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const spawnedAt = Date.now();
      const proc = spawnLogged([...prof, ...envWords("FLEET_NODE_ARGS"), CLI, "serve", "--port", String(port), "--data", path.join(dir, `fleet-node-${i}`), "--seed", seed, "--catalog", db.url,
        "--storage", shared, "--concurrency", "4", "--rate-limit", "0", "--auto-backups", "off", "--log-level", "warn",
        ...envWords("FLEET_SERVE_ARGS")], path.join(dir, `fleet-node-${i}.log`));
      await waitForHttp(port, 60_000);
      nodes.push({ port, pid: proc.pid!, spawnedAt, kill: () => proc.kill("SIGTERM") });
    }
    try {
      const clients = nodes.map((nd) => new RedisClient({ credential: key, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${nd.port}`, protocol: "http://" } } }));
      const cpu = () => ({ nodes: nodes.map((nd) => cpuSeconds(nd.pid)), redis: redis.reduce((a, r) => a + cpuSeconds(r.proc.pid!), 0), pg: cpuSecondsOf("postgres"), all: cpuByComm(), bench: process.cpuUsage(), machine: machineBusySeconds() });
      // FLEET_ROUNDS=N: the fleet backed up N times by the same two nodes; round 1 is their first backups after start
      // (code still being compiled, connections and the digest workers started), the later rounds what a
      // long-running node pays. Between rounds, the machine is let go quiet (the digests of the round done).
      const rounds = Number(process.env.FLEET_ROUNDS ?? 3);
      const idleS = Number(process.env.FLEET_IDLE_S ?? 35);
      const what = (round: number) => round === 1 ? "the nodes just started" : round === 3 ? `the nodes warm, then idle ${idleS} s` : "the nodes warm: each has run backups before";
      for (let round = 1; round <= rounds; round++) {
        if (round > 1) await quiet(30_000);
        if (round === 3) await new Promise((r) => setTimeout(r, idleS * 1000));
        const cpu0 = cpu();
        const mono0 = process.hrtime.bigint(); // CLOCK_MONOTONIC, what `perf record -k CLOCK_MONOTONIC` stamps
        t = Date.now();
        const tasks = await Promise.all(redis.map((_, i) => clients[i % 2]!.ManualBackupInstance({ InstanceId: `crs-fleet${String(i).padStart(3, "0")}` })));
        if (tasks.some((x) => !x.TaskId)) throw new Error("a ManualBackupInstance answered no TaskId");
        // One request per look (how many of the fleet's backups are still queued or running), every 20 ms: the
        // client sees the last success at most ~20 ms late, and the looks cost the nodes ~50 requests/s instead of
        // the 250/s of 50 DescribeTaskInfo every 200 ms (which was also up to 200 ms late).
        const backupTypes = ["012"];
        await waitFor("every backup", async () => {
          const open = await clients[0]!.DescribeTaskList({ TaskTypes: backupTypes, Result: [0, 1], Limit: 1 });
          if (open.TotalCount) return undefined;
          const failed = await clients[0]!.DescribeTaskList({ TaskTypes: backupTypes, Result: [4], Limit: 1 });
          if (failed.TotalCount) throw new Error(`${failed.TotalCount} backup(s) failed, e.g. task ${failed.Tasks?.[0]?.TaskId}`);
          return true;
        }, 600_000, 20);
        const fleetMs = Date.now() - t;
        const cpu1 = cpu();
        const mono1 = process.hrtime.bigint();
        const rss = nodes.map((nd) => peakRssMb(nd.pid));
        // Where the work went (which node ran how many) and when the last one ended by the catalogue's clock.
        const pgc = new pg.Client({ connectionString: db.url });
        await pgc.connect();
        const owners = (await pgc.query("SELECT owner, count(*)::int AS n, min(start_time)::bigint AS first, max(end_time)::bigint AS last FROM tasks WHERE task_type = '012' AND start_time >= $1 GROUP BY owner ORDER BY owner", [t])).rows as Array<{ owner: string; n: number; first: string; last: string }>;
        await pgc.end();
        const lastEnd = Math.max(...owners.map((o) => Number(o.last)));
        console.log(`\n### round ${round} of ${rounds} (${what(round)})\n`);
        console.log("| what | wall time | peak RSS per node |\n|---|---|---|");
        console.log(`| sum of redis-cli --rdb, one after another | ${(baselineMs / 1000).toFixed(2)} s | - |`);
        console.log(`| two nodes, --concurrency 4, all at once | ${(fleetMs / 1000).toFixed(2)} s | ${rss.map((x) => `${x.toFixed(0)} MB`).join(", ")} |`);
        console.log(`\nbackups per node: ${owners.map((o) => `${o.owner}: ${o.n} (last ended ${(Number(o.last) - t) / 1000} s in)`).join(", ")}; the client saw the last end ${fleetMs - (lastEnd - t)} ms after it`);
        console.log(`\nfleet / sum of redis-cli: ${(fleetMs / baselineMs).toFixed(2)}`);
        // Where the CPU of the fleet's window went (a digest worker's share is counted once its node has reaped it).
        const perBackup = (s: number) => `${((s * 1000) / n).toFixed(1)} ms`;
        const nodeCpu = cpu1.nodes.reduce((a, x, i) => a + x - cpu0.nodes[i]!, 0);
        const benchCpu = (cpu1.bench.user + cpu1.bench.system - cpu0.bench.user - cpu0.bench.system) / 1e6;
        const machine = cpu1.machine - cpu0.machine;
        if (prof.length) console.log(`CPU profiles: ${nodes.map((nd) => `pid ${nd.pid} CPUPROF_WINDOW=${t - nd.spawnedAt}-${t - nd.spawnedAt + fleetMs}`).join(", ")}`);
        if (process.env.FLEET_CPU_BY_COMM) {
          const byComm = (a: Map<string, number>, b: Map<string, number>) => {
            const by = new Map<string, number>();
            for (const [k, v] of b) { const comm = k.slice(k.indexOf(" ") + 1).replace(/^kworker.*/, "kworker"); by.set(comm, (by.get(comm) ?? 0) + v - (a.get(k) ?? 0)); }
            return [...by].filter(([, v]) => v > 0).sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${perBackup(v)}`).join(", ");
          };
          console.log(`the window on CLOCK_MONOTONIC (for perf report --time): ${(Number(mono0) / 1e9).toFixed(6)},${(Number(mono1) / 1e9).toFixed(6)}`);
          console.log(`by command name, the fleet: ${byComm(cpu0.all, cpu1.all)}`);
          console.log(`by command name, redis-cli's run (machine ${perBackup(base1.machine - base0.machine)} per backup): ${byComm(base0.all, base1.all)}`);
        }
        console.log(`\nCPU in the fleet's window, per backup: the two nodes ${perBackup(nodeCpu)}, the Redis servers (their forks reaped) ${perBackup(cpu1.redis - cpu0.redis)}, PostgreSQL ${perBackup(cpu1.pg - cpu0.pg)}, this bench's client ${perBackup(benchCpu)}; the machine ${perBackup(machine)} (${(machine / (fleetMs / 1000)).toFixed(2)} of ${os.cpus().length} cores busy)`);
      }
    } finally {
      for (const nd of nodes) nd.kill();
      // FLEET_LOGS=DIR: the nodes' logs kept there (what FLEET_NODE_ARGS' tracing flags printed).
      if (process.env.FLEET_LOGS) for (let i = 0; i < nodes.length; i++) fs.copyFileSync(path.join(dir, `fleet-node-${i}.log`), path.join(process.env.FLEET_LOGS, `fleet-node-${i}.log`));
    }
  } finally {
    for (const r of redis) r.kill();
    await db.drop();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-scale-"));
  console.log(`bench:scale on ${os.cpus().length} cores; parts: ${PARTS.join(", ")}`);
  try {
    if (PARTS.includes("api")) await partApi(dir);
    if (PARTS.includes("s3")) await partS3();
    if (PARTS.includes("fleet")) await partFleet(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
