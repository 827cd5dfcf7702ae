// Storage benchmark: captureRdb of one big Redis into (a) LocalBlobStore and (b) S3BlobStore on s3rver, gzip
// on, as production runs it, alternating rounds in the same run. Each capture runs in a child process of its
// own that does nothing else, so its peak RSS (VmHWM) is the capture's; s3rver runs in another child, so the
// object store's memory is not counted (its CPU is: the machine has 2 cores, shared with the Redis fork).
//
//   npm run bench:storage                          # 3,000,000 keys (~1.1 GB used_memory), 3 rounds each
//   BENCH_KEYS=200000 BENCH_ROUNDS=2 npm run bench:storage
//   BENCH_RANDOM_MB=512 npm run bench:storage      # plus 512 1-MiB random strings: DEBUG POPULATE's values
//                                                  # compress ~40x, these not at all, so the store gets volume
//
// benchStorage() is exported for bench:scale, which may pass a Redis it already populated.
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { captureRdb } from "../src/redis/capture/capture";
import { RespConnection } from "../src/redis/client/resp";
import type { BlobStore } from "../src/storage/blob-store";
import { LocalBlobStore } from "../src/storage/local";
import { S3BlobStore } from "../src/storage/s3";
import { startRedis } from "../test/support/redis";
import { S3RVER_CREDENTIALS, startS3rver } from "../test/support/s3";

type Backend = "local" | "s3";

interface ChildReport {
  /** Connect to commit, inside the process. */
  ms: number;
  /** Connect to the last byte handed to the writer (before commit). */
  streamMs: number;
  bytes: number;
  storedBytes: number;
  peakRssKb: number;
}

export interface StorageBenchRow extends ChildReport {
  round: number;
  backend: Backend;
  /** Whole child process, including Node's start-up and module loading. */
  wallMs: number;
}

export interface StorageBenchResult {
  rows: StorageBenchRow[];
  localMs: number;
  s3Ms: number;
  /** Median S3 / median local, in-process capture time (goal <= 1.1). */
  ratio: number;
  /** The same for the streaming phase alone (before CompleteMultipartUpload). */
  streamRatio: number;
  s3PeakRssMb: number;
  localPeakRssMb: number;
  /** A markdown report. */
  text: string;
}

function vmHwmKb(): number {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : 0;
}

/** Child mode: one capture into the given store, then a JSON report on stdout. */
async function child(args: string[]): Promise<void> {
  const [backend, port, where, endpoint] = args;
  const store: BlobStore = backend === "local"
    ? new LocalBlobStore(where)
    : new S3BlobStore({ bucket: "bench", prefix: "crs", endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
  const key = `bench/${where.replace(/\W/g, "")}/shard-0.rdb.gz`;
  const started = process.hrtime.bigint();
  const writer = store.createWriter(key, { compress: true });
  const res = await captureRdb({ host: "127.0.0.1", port: Number(port) }, writer);
  const streamMs = Number(process.hrtime.bigint() - started) / 1e6;
  const committed = await writer.commit();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const report: ChildReport = { ms, streamMs, bytes: res.bytes, storedBytes: committed.storedBytes, peakRssKb: vmHwmKb() };
  process.stdout.write(JSON.stringify(report));
  if (store instanceof S3BlobStore) store.destroy();
}

async function runChild(args: string[]): Promise<{ wallMs: number; report: ChildReport }> {
  const started = process.hrtime.bigint();
  const p = spawn(process.execPath, [__filename, "--child", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => p.on("exit", resolve));
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (code !== 0) throw new Error(`capture child (${args[0]}) exited with ${code}: ${stderr.split("\n").filter((l) => !/NodeVersionSupport|node >=22|AWS SDK|upgrade to node|a\.co\/|trace-warnings|^\s*$/.test(l)).join("\n")}`);
  return { wallMs, report: JSON.parse(stdout) as ChildReport };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mb = (kb: number): string => (kb / 1024).toFixed(1);
const sec = (ms: number): string => (ms / 1000).toFixed(2);

export async function benchStorage(o: { keys?: number; rounds?: number; valueSize?: number; randomMb?: number; redisPort?: number; log?: (line: string) => void } = {}): Promise<StorageBenchResult> {
  const keys = o.keys ?? 3_000_000;
  const randomMb = o.randomMb ?? 0;
  const rounds = o.rounds ?? 3;
  const valueSize = o.valueSize ?? 300;
  const log = o.log ?? ((line: string) => console.error(line));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-storage-"));
  const redis = o.redisPort === undefined ? await startRedis(["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]) : undefined;
  const port = redis?.port ?? o.redisPort!;
  const s3 = await startS3rver({ dir: path.join(work, "s3rver") });
  try {
    const c = await RespConnection.connect({ host: "127.0.0.1", port });
    if (redis) {
      const t0 = Date.now();
      await c.command("DEBUG", "POPULATE", keys, "key", valueSize);
      log(`populated ${keys} keys (value size ${valueSize}) in ${Date.now() - t0} ms`);
    }
    for (let i = 0; i < randomMb; i++) await c.command("SET", `bench:random:${i}`, crypto.randomBytes(1 << 20));
    const usedMemory = Number(/used_memory:(\d+)/.exec(String(await c.command("INFO", "memory")))?.[1] ?? 0);
    const version = /redis_version:(\S+)/.exec(String(await c.command("INFO", "server")))?.[1] ?? "?";
    const dbsize = Number(await c.command("DBSIZE"));
    c.close();
    await s3.createBucket("bench");
    const bucketStore = s3.store("bench", { prefix: "crs" });

    const rows: StorageBenchRow[] = [];
    const run = async (round: number, backend: Backend): Promise<void> => {
      const where = path.join(work, `${backend}-${round}`);
      const { wallMs, report } = await runChild([backend, String(port), where, s3.endpoint]);
      rows.push({ round, backend, wallMs, ...report });
      log(`round ${round}: ${backend} ${sec(report.ms)} s in-process (stream ${sec(report.streamMs)} s), ${sec(wallMs)} s whole, ${report.storedBytes} bytes stored, peak RSS ${mb(report.peakRssKb)} MB`);
      if (backend === "local") fs.rmSync(where, { recursive: true, force: true });
      else for await (const b of bucketStore.list("")) await bucketStore.remove(b.key);
    };
    for (let round = 1; round <= rounds; round++) {
      // Alternate who goes first so a drift in the machine's speed favours neither.
      const order: Backend[] = round % 2 ? ["local", "s3"] : ["s3", "local"];
      for (const b of order) await run(round, b);
    }
    bucketStore.destroy();

    const of = (b: Backend): StorageBenchRow[] => rows.filter((r) => r.backend === b);
    const localMs = median(of("local").map((r) => r.ms));
    const s3Ms = median(of("s3").map((r) => r.ms));
    const streamRatio = median(of("s3").map((r) => r.streamMs)) / median(of("local").map((r) => r.streamMs));
    const s3PeakRssMb = Math.max(...of("s3").map((r) => r.peakRssKb)) / 1024;
    const localPeakRssMb = Math.max(...of("local").map((r) => r.peakRssKb)) / 1024;
    const out: string[] = [];
    out.push(`Redis ${version}, ${dbsize.toLocaleString("en-US")} keys${randomMb ? ` (${randomMb} of them 1 MiB random strings)` : ""}, used_memory ${(usedMemory / 1048576).toFixed(0)} MB; ${os.cpus().length} CPUs, Node ${process.version}; S3BlobStore on s3rver (its own process), part size 8 MiB, queue 3`);
    out.push("");
    out.push("| round | store | in-process s | of which streaming s | whole process s | RDB bytes | stored bytes | peak RSS MB |");
    out.push("|---|---|---|---|---|---|---|---|");
    for (const r of rows) out.push(`| ${r.round} | ${r.backend === "local" ? "LocalBlobStore" : "S3BlobStore"} | ${sec(r.ms)} | ${sec(r.streamMs)} | ${sec(r.wallMs)} | ${r.bytes} | ${r.storedBytes} | ${mb(r.peakRssKb)} |`);
    out.push("");
    out.push(`Median in-process: local ${sec(localMs)} s, S3 ${sec(s3Ms)} s; ratio S3/local ${(s3Ms / localMs).toFixed(3)} (goal <= 1.1); streaming phase alone ${streamRatio.toFixed(3)}.`);
    out.push(`Peak RSS of the capture process: S3 ${s3PeakRssMb.toFixed(1)} MB (goal < 150 MB), local ${localPeakRssMb.toFixed(1)} MB.`);
    return { rows, localMs, s3Ms, ratio: s3Ms / localMs, streamRatio, s3PeakRssMb, localPeakRssMb, text: out.join("\n") };
  } finally {
    await s3.stop();
    if (redis) {
      await redis.stop();
      fs.rmSync(redis.dir, { recursive: true, force: true });
    }
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  if (process.argv[2] === "--child") {
    child(process.argv.slice(3)).catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exit(1);
    });
  } else {
    benchStorage({
      keys: Number(process.env.BENCH_KEYS ?? 3_000_000),
      rounds: Number(process.env.BENCH_ROUNDS ?? 3),
      valueSize: Number(process.env.BENCH_VALUE_SIZE ?? 300),
      randomMb: Number(process.env.BENCH_RANDOM_MB ?? 0),
    }).then((r) => console.log(r.text), (err: unknown) => {
      console.error(err);
      process.exit(1);
    });
  }
}
