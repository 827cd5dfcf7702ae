// The fixed cost of a small backup (issue 16, goal 2): a 10,000-key Redis (repl-diskless-sync-delay 0) backed up
// through the API — ManualBackupInstance, then DescribeTaskInfo every 2 ms until `succeed` — against
// `redis-cli --rdb` of the same server (its own process, wall time), alternating rounds. The real server runs in
// its own process (SQLite catalogue, local files, digest on, --log-level debug for the "backup phases" line),
// and its log says where the time went: queue (request to the task's start), the backup's phases (reading the
// records, discovering the topology, the capture, the file's commit, recording the file), the task's commit, and
// how late the client's poll saw it.
//
//   npm run bench:backup-small          # BENCH_KEYS=10000 BENCH_ROUNDS=10 BENCH_VALUE_SIZE=32 [BENCH_CPU_PROF=DIR]
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { RespConnection } from "../src/redis/client/resp";
import { startRedis } from "../test/support/redis";
import { CLI, processCpu, send, signedRequest, spawnLogged, waitForHttp } from "./support";

const KEY = { secretId: "AKIDbenchsmall000000000000000001", secretKey: "benchsmallsecret" };
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const f1 = (x: number): string => x.toFixed(1);

function timeCli(port: number, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn("redis-cli", ["-p", String(port), "--rdb", file], { stdio: "ignore" });
    p.on("exit", (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`redis-cli exited with ${code}`))));
  });
}

/** CPU time (user + system) a process has used so far, in ms (/proc/PID/stat, clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  return processCpu(pid).seconds * 1000;
}

/** redis-cli --rdb's own CPU time (user + system, ms) under /usr/bin/time. */
function cliCpuMs(port: number, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const out = `${file}.time`;
    const p = spawn("/usr/bin/time", ["-f", "%U %S", "-o", out, "redis-cli", "-p", String(port), "--rdb", file], { stdio: "ignore" });
    p.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`redis-cli exited with ${code}`));
      const [u, sys] = fs.readFileSync(out, "utf8").trim().split(/\s+/).map(Number);
      resolve(((u ?? 0) + (sys ?? 0)) * 1000);
    });
  });
}

interface LogLine { time: string; msg: string; taskId?: number; [k: string]: unknown }
const at = (l: LogLine): number => Date.parse(l.time);

async function main(): Promise<void> {
  const keys = Number(process.env.BENCH_KEYS ?? 10_000);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 10);
  const valueSize = Number(process.env.BENCH_VALUE_SIZE ?? 32);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-small-"));
  const redis = await startRedis(["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]);
  const logFile = path.join(work, "server.log");
  let server: ReturnType<typeof spawnLogged> | undefined;
  try {
    const c = await RespConnection.connect(redis.endpoint);
    await c.command("DEBUG", "POPULATE", keys, "key", valueSize);
    c.close();
    const seed = path.join(work, "seed.json");
    fs.writeFileSync(seed, JSON.stringify({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey }],
      Instances: [{ InstanceId: "crs-small001", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${redis.port}` }],
    }));
    const port = 30000 + Math.floor(Math.random() * 1000);
    // BENCH_CPU_PROF=DIR: the server writes a V8 CPU profile (.cpuprofile) there when it stops.
    const prof = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
    server = spawnLogged([...prof, CLI, "serve", "--data", path.join(work, "data"), "--seed", seed, "--port", String(port), "--rate-limit", "0", "--auto-backups", "off", "--log-level", "debug"], logFile);
    await waitForHttp(port, 30_000);
    const api = async (action: string, body: object): Promise<Record<string, unknown>> => {
      const r = JSON.parse(await send(port, signedRequest(port, KEY, JSON.stringify(body), action))) as { Response: Record<string, unknown> };
      if (r.Response.Error) throw new Error(`${action}: ${JSON.stringify(r.Response.Error)}`);
      return r.Response;
    };
    let polls = 0;
    const backupOnce = async (): Promise<{ ms: number; taskId: number; sentAt: number; seenAt: number }> => {
      const sentAt = Date.now();
      const t0 = performance.now();
      const { TaskId } = (await api("ManualBackupInstance", { InstanceId: "crs-small001" })) as { TaskId: number };
      for (;;) {
        polls++;
        const { Status, TaskMessage } = (await api("DescribeTaskInfo", { TaskId })) as { Status: string; TaskMessage: string };
        if (Status === "succeed") return { ms: performance.now() - t0, taskId: TaskId, sentAt, seenAt: Date.now() };
        if (Status === "failed") throw new Error(`backup failed: ${TaskMessage}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    await backupOnce(); // warm-up: the first backup also starts the digest worker, the first SQLite pages
    await timeCli(redis.port, path.join(work, "warm.rdb"));
    const cli: number[] = [];
    const ours: Array<{ ms: number; taskId: number; sentAt: number; seenAt: number }> = [];
    // The server's CPU over the rounds (its backups, their digests, the client's polls; idle otherwise) against
    // redis-cli's own: on a loaded machine CPU time says more than wall time about what a backup costs.
    const serverCpu0 = cpuMs(server.pid!);
    polls = 0;
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 ? ["cli", "ours"] : ["ours", "cli"];
      for (const tool of order) {
        if (tool === "cli") cli.push(await timeCli(redis.port, path.join(work, `cli-${round}.rdb`)));
        else ours.push(await backupOnce());
        // Let the digest of the last backup (nice 19, after the transfer) finish before the next round.
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    const serverCpuPerBackup = (cpuMs(server.pid!) - serverCpu0) / rounds;
    const pollsPerBackup = polls / rounds;
    const cliCpu: number[] = [];
    for (let i = 0; i < 5; i++) cliCpu.push(await cliCpuMs(redis.port, path.join(work, `cpu-${i}.rdb`)));
    // Where the time went, from the server's own log lines of each measured task.
    const lines = fs.readFileSync(logFile, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine);
    const parts: Record<string, number[]> = { queue: [], read: [], discover: [], capture: [], commit: [], record: [], taskCommit: [], poll: [] };
    for (const o of ours) {
      const of = lines.filter((l) => l.taskId === o.taskId);
      const started = of.find((l) => l.msg === "task started");
      const phases = of.find((l) => l.msg === "backup phases");
      const succeeded = of.find((l) => l.msg === "task succeeded");
      if (!started || !phases || !succeeded) continue;
      parts.queue!.push(at(started) - o.sentAt);
      parts.read!.push(phases.readMs as number);
      parts.discover!.push(phases.discoverMs as number);
      parts.capture!.push(phases.captureMs as number);
      parts.commit!.push(phases.commitMs as number);
      parts.record!.push(phases.recordMs as number);
      parts.taskCommit!.push(at(succeeded) - at(phases));
      parts.poll!.push(o.seenAt - at(succeeded));
    }
    const cliMed = median(cli);
    const oursMed = median(ours.map((o) => o.ms));
    const out: string[] = [];
    out.push(`${keys.toLocaleString("en-US")} keys (DEBUG POPULATE, ${valueSize}-byte values), ${rounds} rounds, ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
    out.push("");
    out.push("| round | redis-cli --rdb ms | ManualBackupInstance to succeed ms |");
    out.push("|---|---|---|");
    for (let i = 0; i < rounds; i++) out.push(`| ${i + 1} | ${f1(cli[i]!)} | ${f1(ours[i]!.ms)} |`);
    out.push("");
    out.push(`Median: redis-cli ${f1(cliMed)} ms, ours ${f1(oursMed)} ms; goal 2 x redis-cli + 50 ms = ${f1(2 * cliMed + 50)} ms (${oursMed <= 2 * cliMed + 50 ? "met" : "not met"}); fixed cost (ours - redis-cli) ${f1(oursMed - cliMed)} ms.`);
    out.push("");
    out.push("Where our time goes (medians of the server's log lines; ms):");
    out.push("");
    out.push("| request to task start | read records | discover shards | capture (connect, SYNC, fork, transfer, gzip) | file commit (fsync, rename) | record the file | task commit | poll saw it |");
    out.push("|---|---|---|---|---|---|---|---|");
    out.push(`| ${Object.values(parts).map((xs) => (xs.length ? f1(median(xs)) : "-")).join(" | ")} |`);
    out.push("");
    out.push(`CPU per backup: the server ${f1(serverCpuPerBackup)} ms (with the digest and ${f1(pollsPerBackup)} DescribeTaskInfo polls); redis-cli --rdb ${f1(median(cliCpu))} ms (its own process; the Redis fork child's CPU is the same for both)`);
    console.log(out.join("\n"));
  } finally {
    server?.kill("SIGTERM");
    if (server && server.exitCode === null) await new Promise((r) => server!.once("exit", r));
    await redis.stop();
    fs.rmSync(redis.dir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
