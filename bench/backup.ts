// Backup capture benchmark: our captureRdb (into a compressing LocalBlobStore writer, then the data-set digest
// computed from the stored file by the nice-19 digest worker, as production runs it) versus `redis-cli --rdb`,
// on the same server, alternating rounds. Both run as separate processes so each one's peak RSS (VmHWM) can be
// measured on its own (and the digest worker's too). Then the master's own cost: the copy-on-write bytes Redis
// reports for the fork (INFO persistence rdb_last_cow_size) while a steady write load runs during the capture,
// with us against with redis-cli.
//
//   npm run bench:backup                       # 3,000,000 keys (~1 GB used_memory), 3 rounds each
//   BENCH_KEYS=200000 BENCH_ROUNDS=2 npm run bench:backup
//   BENCH_WRITE_RATE=5000 (SETs per second during the copy-on-write rounds; 0 skips them), BENCH_API=off
//   BENCH_CAPTURE=spool (default, as --capture-mode spool: the raw snapshot to a spool file, link closed, then
//   stored) or direct (gzip, hashes and the store on the socket's path)
//
// The server runs with repl-diskless-sync-delay 0 so neither tool waits for the default 5 s replica-batching
// window (that would only dilute the comparison).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { captureRdb } from "../src/redis/capture/capture";
import { captureViaSpool } from "../src/jobs/backups";
import { SpoolDir } from "../src/storage/spool";
import { digestStoredFile } from "../src/jobs/digests";
import { digestWorkerPids } from "../src/redis/rdb";
import { RespConnection } from "../src/redis/client/resp";
import { LocalBlobStore } from "../src/storage/local";
import type { BlobCommitResult } from "../src/storage/blob-store";
import { EncryptedBlobStore } from "../src/storage/encrypted";
import { LocalKeyring, writeKeyring } from "../src/storage/keys/keyring";
import crypto from "node:crypto";
import { startRedis } from "../test/support/redis";
// Only the driver loads ./support: autocannon alone is 26 MB of RSS, which the capture child must not count.
import type { LoadResult } from "./support";

interface ChildReport {
  ms: number;
  /** The socket's time: connect until the replication link was closed. */
  linkMs: number;
  /** The digest from the stored file after the transfer (absent with BENCH_DIGEST=off). */
  digestMs?: number;
  digestRssKb?: number;
  bytes: number;
  storedBytes: number;
  peakRssKb: number;
  /** VmHWM once the backup is stored, before the digest (the capture's own peak). */
  captureRssKb?: number;
  payload: string;
}

interface Row {
  round: number;
  tool: string;
  wallMs: number;
  /** For ours: connect-to-commit inside the process (what a long-running server pays). */
  innerMs?: number;
  /** For ours: connect until the link was closed (what the master pays). */
  linkMs?: number;
  digestMs?: number;
  digestRssKb?: number;
  bytes: number;
  storedBytes: number;
  peakRssKb: number;
  captureRssKb?: number;
}

function vmHwmKb(pid: number | "self"): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Child mode: one capture, then a JSON report on stdout. */
async function child(port: number, root: string): Promise<void> {
  // BENCH_ENCRYPT=on: through the encryption layer with a fresh data key, as --encrypt-backups on runs.
  const encrypt = process.env.BENCH_ENCRYPT === "on";
  let keys: LocalKeyring | undefined;
  if (encrypt) {
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    const file = path.join(root, "keys.json");
    writeKeyring(file, { active: "k1", keys: { k1: crypto.randomBytes(32).toString("base64") } });
    keys = new LocalKeyring(file);
  }
  const store = new EncryptedBlobStore(new LocalBlobStore(root), keys);
  const started = process.hrtime.bigint();
  const key = "bench/shard-0.rdb.gz";
  const encryption = keys ? await keys.generateDataKey() : undefined;
  let res: { bytes: number; linkMs: number; payload: string };
  let committed: BlobCommitResult;
  if (process.env.BENCH_CAPTURE === "direct") {
    const writer = store.createWriter(key, { compress: true, ...(encryption ? { encryption } : {}) });
    res = await captureRdb({ host: "127.0.0.1", port }, writer);
    committed = await writer.commit();
  } else {
    const spooled = await captureViaSpool({ endpoint: { host: "127.0.0.1", port }, spool: new SpoolDir(path.join(root, "spool")), store, backupId: "bench", shard: 0, key, ...(encryption ? { encryption } : {}) });
    committed = spooled.committed;
    res = { bytes: spooled.bytes, linkMs: spooled.linkMs, payload: "spool" };
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const report: ChildReport = { ms, linkMs: res.linkMs, bytes: res.bytes, storedBytes: committed.storedBytes, peakRssKb: 0, captureRssKb: vmHwmKb("self"), payload: res.payload };
  // As production runs it (BackupDigests): the digest from the stored file once the transfer is done, unless
  // BENCH_DIGEST=off (what --capture-digest off runs).
  if (process.env.BENCH_DIGEST !== "off") {
    const d0 = process.hrtime.bigint();
    let workerKb = 0;
    const poll = setInterval(() => (workerKb = Math.max(workerKb, ...digestWorkerPids().map(vmHwmKb))), 50);
    const proof = await digestStoredFile(store, { key, bytes: committed.bytes, sha256: committed.sha256, ...(encryption ? { encryption: { keyId: encryption.keyId, wrappedKey: encryption.wrappedKey } } : {}) });
    workerKb = Math.max(workerKb, ...digestWorkerPids().map(vmHwmKb));
    clearInterval(poll);
    if (!proof.digest) throw new Error(`no digest: ${proof.missing}`);
    report.digestMs = Number(process.hrtime.bigint() - d0) / 1e6;
    report.digestRssKb = workerKb;
  }
  report.peakRssKb = vmHwmKb("self");
  process.stdout.write(JSON.stringify(report));
  process.exit(0); // the idle digest worker would otherwise linger for its 30 s
}

/** Runs a command, returning wall time, stdout and peak RSS (via /usr/bin/time when present, else /proc polling). */
async function runMeasured(cmd: string, args: string[]): Promise<{ wallMs: number; stdout: string; peakRssKb: number }> {
  const timeBin = fs.existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
  const timeOut = path.join(os.tmpdir(), `bench-time-${process.pid}-${Date.now()}`);
  const [file, argv] = timeBin ? [timeBin, ["-o", timeOut, "-f", "%M", cmd, ...args]] : [cmd, args];
  const started = process.hrtime.bigint();
  const p = spawn(file, argv, { stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  let polled = 0;
  const poll = timeBin ? undefined : setInterval(() => (polled = Math.max(polled, vmHwmKb(p.pid!))), 20);
  const code = await new Promise<number | null>((resolve) => p.on("exit", resolve));
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (poll) clearInterval(poll);
  if (code !== 0) throw new Error(`${cmd} exited with ${code}`);
  let peakRssKb = polled;
  if (timeBin) {
    peakRssKb = Number(fs.readFileSync(timeOut, "utf8").trim().split("\n").pop());
    fs.rmSync(timeOut, { force: true });
  }
  return { wallMs, stdout, peakRssKb };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mb = (kb: number): string => (kb / 1024).toFixed(1);
const sec = (ms: number): string => (ms / 1000).toFixed(2);

const BENCH_KEY = { secretId: "AKIDbenchbackup00000000000000001", secretKey: "benchbackupsecret" };

/**
 * The API while a backup streams: our real server (its own process) answers signed DescribeInstanceBackups at
 * 10 connections, first idle, then while ManualBackupInstance captures the big Redis; p99 is compared.
 */
async function apiDuringBackup(redisPort: number, work: string): Promise<{ idle: LoadResult; during: LoadResult; backupMs: number; status: string }> {
  const { CLI, load, send, signedRequest, spawnLogged, waitForHttp } = await import("./support");
  const data = path.join(work, "api-data");
  const seed = path.join(work, "seed.json");
  const start = Date.UTC(2024, 0, 1);
  const backups = Array.from({ length: 20_000 }, (_, i) => {
    const d = new Date(start + i * 3_600_000 + 8 * 3_600_000).toISOString();
    return { InstanceId: "crs-listing1", StartTime: `${d.slice(0, 10)} ${d.slice(11, 19)}`, Status: i % 5 === 0 ? -1 : 2 };
  });
  fs.writeFileSync(seed, JSON.stringify({
    Credentials: [{ SecretId: BENCH_KEY.secretId, SecretKey: BENCH_KEY.secretKey }],
    Instances: [
      { InstanceId: "crs-bigredis", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${redisPort}` },
      { InstanceId: "crs-listing1", Region: "ap-guangzhou" },
    ],
    Backups: backups,
  }));
  const port = 29000 + Math.floor(Math.random() * 1000);
  const server = spawnLogged([CLI, "serve", "--data", data, "--seed", seed, "--port", String(port), "--rate-limit", "0"], path.join(work, "server.log"));
  try {
    await waitForHttp(port, 30_000);
    const requests = Array.from({ length: 200 }, (_, i) =>
      signedRequest(port, BENCH_KEY, JSON.stringify(i % 2 ? { InstanceId: "crs-listing1", Limit: 20, Offset: (i % 50) * 20 } : { InstanceId: "crs-listing1", Status: [2], Limit: 20 })));
    const idle = await load(port, requests, { connections: 10, seconds: 5 });
    const t0 = Date.now();
    const started = JSON.parse(await send(port, signedRequest(port, BENCH_KEY, JSON.stringify({ InstanceId: "crs-bigredis" }), "ManualBackupInstance"))) as { Response: { TaskId: number } };
    const during = await load(port, requests, { connections: 10, seconds: 5 });
    let status = "running";
    while (status === "running" || status === "preparing") {
      const info = JSON.parse(await send(port, signedRequest(port, BENCH_KEY, JSON.stringify({ TaskId: started.Response.TaskId }), "DescribeTaskInfo"))) as { Response: { Status: string } };
      status = info.Response.Status;
      if (status === "running" || status === "preparing") await new Promise((r) => setTimeout(r, 100));
    }
    return { idle, during, backupMs: Date.now() - t0, status };
  } finally {
    server.kill("SIGTERM");
  }
}

/** Steady SETs of random existing keys at `rate` per second until stopped (pipelined, every 10 ms). */
async function writeLoad(port: number, keys: number, valueSize: number, rate: number): Promise<() => Promise<number>> {
  const c = await RespConnection.connect({ host: "127.0.0.1", port });
  const value = "w".repeat(valueSize);
  let sent = 0;
  let inFlight: Promise<unknown> = Promise.resolve();
  const t0 = Date.now();
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - t0) / 1000) * rate) - sent;
    const batch: Array<Promise<unknown>> = [];
    for (let i = 0; i < due; i++) batch.push(c.command("SET", `key:${Math.floor(Math.random() * keys)}`, value));
    sent += due;
    inFlight = Promise.all(batch);
  }, 10);
  return async () => {
    clearInterval(timer);
    await inFlight;
    c.close();
    return sent;
  };
}

/**
 * The master's side: each tool captures while writes land at a steady rate; Redis reports the fork child's
 * copy-on-write bytes (every page a write touched while the child still held the snapshot) as rdb_last_cow_size.
 */
async function cowRounds(port: number, keys: number, valueSize: number, rate: number, rounds: number, runCli: (r: number) => Promise<void>, runOurs: (r: number) => Promise<void>, rows: Row[]): Promise<string[]> {
  const info = async (): Promise<Record<string, string>> => {
    const c = await RespConnection.connect({ host: "127.0.0.1", port });
    const text = String(await c.command("INFO", "persistence"));
    c.close();
    return Object.fromEntries(text.split("\r\n").filter((l) => l.includes(":")).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1)]));
  };
  const out = [`Copy-on-write on the master, ${rate} SETs/s of random keys during each capture:`, "", "| round | tool | socket s | SETs while the tool ran | rdb_last_cow_size MB |", "|---|---|---|---|---|"];
  const cow: Record<string, number[]> = { cli: [], ours: [] };
  for (let round = 1; round <= rounds; round++) {
    for (const tool of round % 2 ? ["cli", "ours"] : ["ours", "cli"]) {
      const stop = await writeLoad(port, keys, valueSize, rate);
      const before = rows.length;
      await (tool === "cli" ? runCli(100 + round) : runOurs(100 + round));
      const writes = await stop();
      const row = rows.splice(before)[0]!;
      // The fork child reports its copy-on-write as it exits (read before Redis clears rdb_bgsave_in_progress),
      // which may be after the tool is done reading.
      let persistence = await info();
      for (const deadline = Date.now() + 30_000; persistence.rdb_bgsave_in_progress !== "0" && Date.now() < deadline;) {
        await new Promise((r) => setTimeout(r, 20));
        persistence = await info();
      }
      const bytes = Number(persistence.rdb_last_cow_size ?? 0);
      cow[tool]!.push(bytes);
      out.push(`| ${round} | ${tool === "cli" ? "redis-cli --rdb" : row.tool} | ${sec(row.linkMs ?? row.wallMs)} | ${writes} | ${(bytes / 1048576).toFixed(1)} |`);
    }
  }
  const ratio = median(cow.ours!) / Math.max(1, median(cow.cli!));
  out.push("", `Median copy-on-write: redis-cli ${(median(cow.cli!) / 1048576).toFixed(1)} MB, ours ${(median(cow.ours!) / 1048576).toFixed(1)} MB: ratio ${ratio.toFixed(3)} (goal <= 1.05).`);
  return out;
}

async function main(): Promise<void> {
  const keys = Number(process.env.BENCH_KEYS ?? 3_000_000);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const valueSize = Number(process.env.BENCH_VALUE_SIZE ?? 300); // ~1.1 GB used_memory at 3M keys
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-backup-"));
  const redis = await startRedis(["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]);
  try {
    const c = await RespConnection.connect(redis.endpoint);
    const t0 = Date.now();
    await c.command("DEBUG", "POPULATE", keys, "key", valueSize);
    const info = String(await c.command("INFO", "memory"));
    const usedMemory = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
    const server = String(await c.command("INFO", "server"));
    const version = /redis_version:(\S+)/.exec(server)?.[1] ?? "?";
    const diskless = String((await c.command("CONFIG", "GET", "repl-diskless-sync")) as unknown as string[]);
    c.close();
    console.error(`populated ${keys} keys (value size ${valueSize}) in ${Date.now() - t0} ms; used_memory ${(usedMemory / 1048576).toFixed(0)} MB`);

    const self = path.join(__dirname, "backup.js");
    const rows: Row[] = [];
    const runCli = async (round: number): Promise<void> => {
      const cliFile = path.join(work, `cli-${round}.rdb`);
      const cli = await runMeasured("redis-cli", ["-p", String(redis.port), "--rdb", cliFile]);
      rows.push({ round, tool: "redis-cli --rdb", wallMs: cli.wallMs, bytes: fs.statSync(cliFile).size, storedBytes: fs.statSync(cliFile).size, peakRssKb: cli.peakRssKb });
      fs.rmSync(cliFile, { force: true });
      console.error(`round ${round}: redis-cli ${sec(cli.wallMs)} s`);
    };
    const runOurs = async (round: number): Promise<void> => {
      const root = path.join(work, `ours-${round}`);
      const ours = await runMeasured(process.execPath, [self, "--child", String(redis.port), root]);
      const rep = JSON.parse(ours.stdout) as ChildReport;
      rows.push({ round, tool: `${process.env.BENCH_CAPTURE === "direct" ? "direct" : "spool"} (gzip${process.env.BENCH_ENCRYPT === "on" ? " + AES-256-GCM" : ""})${process.env.BENCH_DIGEST === "off" ? "" : ", digest after"}`, wallMs: ours.wallMs, innerMs: rep.ms, linkMs: rep.linkMs, digestMs: rep.digestMs, digestRssKb: rep.digestRssKb, ...(rep.captureRssKb ? { captureRssKb: rep.captureRssKb } : {}), bytes: rep.bytes, storedBytes: rep.storedBytes, peakRssKb: Math.max(ours.peakRssKb, rep.peakRssKb) });
      fs.rmSync(root, { recursive: true, force: true });
      console.error(`round ${round}: link ${sec(rep.linkMs)} s, stored ${sec(rep.ms)} s in-process, ${sec(ours.wallMs)} s incl. node start and digest (${rep.payload}); digest ${rep.digestMs !== undefined ? sec(rep.digestMs) : "-"} s`);
    };
    for (let round = 1; round <= rounds; round++) {
      // Alternate who goes first so a drift in the server's speed doesn't favour either tool.
      if (round % 2) {
        await runCli(round);
        await runOurs(round);
      } else {
        await runOurs(round);
        await runCli(round);
      }
    }

    const cliRows = rows.filter((r) => r.tool === "redis-cli --rdb");
    const ourRows = rows.filter((r) => r.tool !== "redis-cli --rdb");
    const cliMed = median(cliRows.map((r) => r.wallMs));
    const oursInner = median(ourRows.map((r) => r.innerMs ?? r.wallMs));
    const oursLink = median(ourRows.map((r) => r.linkMs ?? r.wallMs));
    const oursWall = median(ourRows.map((r) => r.wallMs));
    const ourPeak = Math.max(...ourRows.map((r) => r.peakRssKb));
    const out: string[] = [];
    out.push(`Redis ${version}, ${keys.toLocaleString("en-US")} keys (DEBUG POPULATE, ${valueSize}-byte values), used_memory ${(usedMemory / 1048576).toFixed(0)} MB, repl-diskless-sync ${diskless.split(",")[1] ?? "?"}, ${os.cpus().length} CPUs, Node ${process.version}`);
    out.push("");
    out.push("| round | tool | wall s | link (socket) s | until stored s | digest after s | RDB bytes | stored bytes | peak RSS MB | digest worker peak RSS MB |");
    out.push("|---|---|---|---|---|---|---|---|---|---|");
    for (const r of rows) {
      out.push(`| ${r.round} | ${r.tool} | ${sec(r.wallMs)} | ${r.linkMs !== undefined ? sec(r.linkMs) : "-"} | ${r.innerMs !== undefined ? sec(r.innerMs) : "-"} | ${r.digestMs !== undefined ? sec(r.digestMs) : "-"} | ${r.bytes} | ${r.storedBytes} | ${mb(r.peakRssKb)} | ${r.digestRssKb ? mb(r.digestRssKb) : "-"} |`);
    }
    out.push("");
    out.push(`Median: redis-cli ${sec(cliMed)} s; ours: the socket (connect until the link closed) ${sec(oursLink)} s, until stored ${sec(oursInner)} s in-process.`);
    out.push(`Ratio ours/redis-cli: the socket's time ${(oursLink / cliMed).toFixed(3)} (goal <= 1.05); until stored ${(oursInner / cliMed).toFixed(3)}; the whole process including Node start-up and the digest after the transfer: ${(oursWall / cliMed).toFixed(3)}.`);
    out.push(`Peak RSS: ours ${mb(ourPeak)} MB (goal < 100 MB; ${mb(Math.max(...ourRows.map((r) => r.captureRssKb ?? 0)))} MB once stored, before the digest), the digest worker ${mb(Math.max(0, ...ourRows.map((r) => r.digestRssKb ?? 0)))} MB (its own process), redis-cli ${mb(Math.max(...cliRows.map((r) => r.peakRssKb)))} MB.`);
    const rate = Number(process.env.BENCH_WRITE_RATE ?? 5000);
    if (rate > 0) out.push("", ...(await cowRounds(redis.port, keys, valueSize, rate, rounds, runCli, runOurs, rows)));
    if (process.env.BENCH_API === "off") {
      console.log(out.join("\n"));
      return;
    }
    const api = await apiDuringBackup(redis.port, work);
    out.push("");
    out.push("API while a backup streams (DescribeInstanceBackups on a 20,000-backup instance, 10 connections, 5 s each):");
    out.push("");
    out.push("| phase | req/s | p50 ms | p99 ms | errors |");
    out.push("|---|---|---|---|---|");
    out.push(`| idle | ${api.idle.rps.toFixed(0)} | ${api.idle.p50} | ${api.idle.p99} | ${api.idle.errors} |`);
    out.push(`| during ManualBackupInstance | ${api.during.rps.toFixed(0)} | ${api.during.p50} | ${api.during.p99} | ${api.during.errors} |`);
    out.push("");
    out.push(`The backup (task ${api.status}) took ${sec(api.backupMs)} s through the API; p99 during it ${api.during.p99} ms (goal <= 15 ms).`);
    console.log(out.join("\n"));
  } finally {
    await redis.stop();
    fs.rmSync(redis.dir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--child") {
  child(Number(process.argv[3]), process.argv[4]).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
