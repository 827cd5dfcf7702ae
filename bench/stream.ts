// Second-level backup under load: redis-benchmark SET (3 connections, pipelined) against a master streamed by a
// real `crs-backup serve` (local storage), and the same load against the same kind of master with a native
// redis-server replica attached instead (the baseline: Redis's own replication). Reported, sampled every 200 ms
// from the master's INFO replication (a replica's `offset=` is what it acknowledged, for us the durable offset):
// lag in bytes and seconds (how long ago the master was at the acknowledged offset), the service's CPU per MB
// of stream (/proc/<pid>/stat), stored bytes per million writes (plain and gzip), and the write rate with each.
// Goal: lag < 1 s.   BENCH_WRITES (default 600,000), BENCH_PIPELINE (default 2), BENCH_VALUE (default 64 bytes).
// BENCH_PROFILE=DIR writes a CPU profile of the service there (node --cpu-prof).
// Run: npm run bench:stream
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { startRedis, RedisProcess, withConn, freePort, waitFor } from "../test/support/redis";
import { RedisClient } from "../test/support/server";
import { CLI, processCpu, waitForHttp } from "./support";

const WRITES = Number(process.env.BENCH_WRITES ?? 600_000);
const PIPELINE = Number(process.env.BENCH_PIPELINE ?? 2);
const VALUE = Number(process.env.BENCH_VALUE ?? 64);
const KEY = { secretId: "AKIDbenchstream00000000000000001", secretKey: "benchstreamsecret" };
const run = promisify(execFile);

interface Sample {
  at: number;
  offset: number;
  acked: number;
}

async function replication(p: RedisProcess): Promise<{ offset: number; acked: number | undefined }> {
  const text = String(await withConn(p, (c) => c.command("INFO", "replication")));
  const offset = Number(/^master_repl_offset:(\d+)/m.exec(text)?.[1] ?? 0);
  const slave = /^slave0:.*offset=(\d+)/m.exec(text);
  return { offset, acked: slave ? Number(slave[1]) : undefined };
}

/** Runs redis-benchmark against `p` while sampling lag; returns the write rate and the lag figures. */
async function load(p: RedisProcess): Promise<{ rps: number; samples: Sample[]; bytes: number; ms: number }> {
  const samples: Sample[] = [];
  const before = await replication(p);
  let done = false;
  const sampler = (async () => {
    while (!done) {
      const r = await replication(p);
      if (r.acked !== undefined) samples.push({ at: Date.now(), offset: r.offset, acked: r.acked });
      await new Promise((res) => setTimeout(res, 200));
    }
  })();
  const t0 = Date.now();
  const { stdout } = await run("redis-benchmark", ["-p", String(p.port), "-t", "set", "-n", String(WRITES), "-c", "3", "-P", String(PIPELINE), "-r", "1000000", "-d", String(VALUE), "-q"], { maxBuffer: 1 << 24 });
  const ms = Date.now() - t0;
  done = true;
  await sampler;
  const after = await replication(p);
  const rps = Number(/SET: ([\d.]+) requests per second/.exec(stdout)?.[1] ?? WRITES / (ms / 1000));
  return { rps, samples, bytes: after.offset - before.offset, ms };
}

/** Lag figures: bytes (offset - acked) and seconds (now - when the master was at the acked offset). */
function lagOf(samples: Sample[]): { p50Bytes: number; maxBytes: number; p50Seconds: number; maxSeconds: number } {
  const bytes = samples.map((s) => s.offset - s.acked).sort((a, b) => a - b);
  const seconds = samples.map((s) => {
    const first = samples.find((x) => x.offset >= s.acked);
    return first ? Math.max(0, s.at - first.at) / 1000 : 0;
  }).sort((a, b) => a - b);
  const p50 = (a: number[]) => a[Math.floor(a.length / 2)] ?? 0;
  return { p50Bytes: p50(bytes), maxBytes: bytes.at(-1) ?? 0, p50Seconds: p50(seconds), maxSeconds: seconds.at(-1) ?? 0 };
}

const cpuSeconds = (pid: number): number => processCpu(pid).seconds;

function dirBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? dirBytes(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size;
  return n;
}

async function main(): Promise<void> {
  const flags = ["--repl-diskless-sync-delay", "0", "--repl-backlog-size", "64mb"];
  // Baseline: a native replica.
  const [baseMaster, replica] = await Promise.all([startRedis(flags), startRedis(flags)]);
  await withConn(replica, (c) => c.command("REPLICAOF", "127.0.0.1", String(baseMaster.port)));
  await waitFor("the native replica", async () => (await replication(baseMaster)).acked !== undefined || undefined, 20_000, 100);
  const baseline = await load(baseMaster);
  baseMaster.kill();
  replica.kill();

  // Ours: crs-backup serve streaming the master.
  const master = await startRedis(flags);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-stream-"));
  fs.writeFileSync(path.join(dir, "seed.json"), JSON.stringify({ Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey }], Instances: [{ InstanceId: "crs-bench001", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${master.port}` }] }));
  const port = await freePort();
  const profile = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const srv = spawn(process.execPath, [...profile, CLI, "serve", "--port", String(port), "--data", path.join(dir, "data"), "--seed", path.join(dir, "seed.json"), "--rate-limit", "0", "--log-level", "warn"], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, CRS_SECRET_ID: "", CRS_SECRET_KEY: "" } });
  try {
    srv.stdout!.resume();
    await waitForHttp(port, 30_000);
    const client = new RedisClient({ credential: KEY, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${port}`, protocol: "http://" } } });
    await client.ModifyInstanceBackupMode({ InstanceId: "crs-bench001", BackupMode: "SecondLevelBackup" });
    await waitFor("the stream", async () => (await replication(master)).acked !== undefined || undefined, 30_000, 100);
    await new Promise((r) => setTimeout(r, 1500));
    const cpu0 = cpuSeconds(srv.pid!);
    const ours = await load(master);
    await new Promise((r) => setTimeout(r, 1500)); // the last commit
    const cpu = cpuSeconds(srv.pid!) - cpu0;
    const streams = path.join(dir, "data", "files", "streams");
    const stored = dirBytes(streams);
    const mb = ours.bytes / 1e6;
    const lo = lagOf(ours.samples);
    const lb = lagOf(baseline.samples);
    console.log(`writes: ${WRITES} SET, ${VALUE}-byte values, 3 connections, -P ${PIPELINE}`);
    console.log(`write rate    ours ${Math.round(ours.rps)}/s   native replica ${Math.round(baseline.rps)}/s   ratio ${(ours.rps / baseline.rps).toFixed(3)}`);
    console.log(`lag seconds   ours p50 ${lo.p50Seconds.toFixed(2)} max ${lo.maxSeconds.toFixed(2)}   native replica p50 ${lb.p50Seconds.toFixed(2)} max ${lb.maxSeconds.toFixed(2)}   (goal: < 1 s)`);
    console.log(`lag bytes     ours p50 ${lo.p50Bytes} max ${lo.maxBytes}   native replica p50 ${lb.p50Bytes} max ${lb.maxBytes}`);
    console.log(`stream        ${mb.toFixed(1)} MB in ${(ours.ms / 1000).toFixed(1)} s; service CPU ${cpu.toFixed(2)} s = ${(cpu / mb).toFixed(3)} CPU-s per MB`);
    console.log(`stored        ${(stored / (WRITES / 1e6) / 1e6).toFixed(1)} MB (gzip) per million writes; ${(ours.bytes / (WRITES / 1e6) / 1e6).toFixed(1)} MB of stream per million writes`);
  } finally {
    srv.kill("SIGTERM");
    master.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err: Error) => {
  console.error(err);
  process.exitCode = 1;
});
