// npm run bench:api-instructions — instructions per DescribeInstanceBackups request, counted by valgrind's
// callgrind, for our server and for the bare node:http server of bench:api. Unlike req/s or CPU seconds, an
// instruction count does not move with the machine's load, so two builds compare in any session
// (BENCH_SERVER_ROOT=checkout serves with that build, as in bench:api). Each server runs under callgrind; after a
// warm-up of BENCH_WARMUP requests its counters are zeroed (callgrind_control --zero), BENCH_REQUESTS requests of
// bench:api's mix are sent at 50 in flight, and the counters are dumped. The main thread (the request path) is
// reported apart from V8's worker threads (compilers, GC helpers), which vary from run to run.
// Env: BENCH_DATA (a catalogue kept from bench:api; built here otherwise), BENCH_REQUESTS (2000), BENCH_WARMUP (4000).
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { catalogFile } from "../src/app";
import { buildCatalogue, workload } from "./api";
import { CLI, send, SignedRequest, waitForHttp } from "./support";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 4000);
/** The bare server answers with a body of this size: bench:api's first page of 20 backups. */
const BARE_BODY_BYTES = 7702;

interface Count {
  main: number;
  others: number;
}

async function burst(port: number, requests: SignedRequest[], n: number): Promise<void> {
  for (let k = 0; k < n; k += 50) {
    const from = k % requests.length;
    await Promise.all(requests.slice(from, from + 50).map((r) => send(port, r)));
  }
}

/** Runs `args` under callgrind, warms it up, counts `REQUESTS` requests; instructions per request. */
async function count(name: string, args: string[], port: number, dir: string, requestsFor: (port: number) => SignedRequest[]): Promise<Count> {
  const out = path.join(dir, `callgrind.${name}`);
  const log = fs.openSync(path.join(dir, `${name}.log`), "a");
  const proc: ChildProcess = spawn("valgrind", ["--tool=callgrind", `--callgrind-out-file=${out}`, "--separate-threads=yes", "--dump-instr=no", process.execPath, ...args],
    { stdio: ["ignore", log, log], env: { ...process.env, CRS_SECRET_ID: "", CRS_SECRET_KEY: "" } });
  try {
    await waitForHttp(port, 300_000);
    const requests = requestsFor(port);
    await burst(port, requests, WARMUP);
    execFileSync("callgrind_control", ["--zero", String(proc.pid)]);
    await burst(port, requests, REQUESTS);
    execFileSync("callgrind_control", ["--dump", String(proc.pid)]);
  } finally {
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
  }
  // The dump after the zeroing is `<out>.1-NN`, one file per thread; thread 01 is the main thread.
  const c: Count = { main: 0, others: 0 };
  for (const f of fs.readdirSync(dir).filter((x) => x.startsWith(`callgrind.${name}.1-`))) {
    const m = /^summary: (\d+)/m.exec(fs.readFileSync(path.join(dir, f), "utf8"));
    if (!m) continue;
    if (f.endsWith("-01")) c.main += Number(m[1]) / REQUESTS;
    else c.others += Number(m[1]) / REQUESTS;
  }
  if (!c.main) throw new Error(`no callgrind dump for ${name} in ${dir} (see ${name}.log)`);
  return c;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-instr-"));
  const dataDir = path.join(process.env.BENCH_DATA ?? dir, "data");
  if (!fs.existsSync(catalogFile(dataDir))) await buildCatalogue(dataDir);
  const cli = process.env.BENCH_SERVER_ROOT ? path.join(path.resolve(process.env.BENCH_SERVER_ROOT), "dist", "src", "cli", "main.js") : CLI;
  const ourPort = 19600 + Math.floor(Math.random() * 300);
  const ours = await count("crs-backup", [cli, "serve", "--data", dataDir, "--port", String(ourPort), "--rate-limit", "1000000000"], ourPort, dir, (p) => workload(p, 2000));
  const barePort = ourPort + 1000;
  const bare = await count("bare", [path.join(__dirname, "bare-server.js"), String(barePort), String(BARE_BODY_BYTES)], barePort, dir, (p) => workload(p, 2000));
  console.log(`\n${REQUESTS} requests of bench:api's mix at 50 in flight, after ${WARMUP} of warm-up; instructions per request (callgrind)\n`);
  console.log("| server | main thread | V8 worker threads |");
  console.log("|---|---|---|");
  for (const [n, c] of [["crs-backup", ours], ["bare node:http", bare]] as const) console.log(`| ${n} | ${Math.round(c.main).toLocaleString("en-US")} | ${Math.round(c.others).toLocaleString("en-US")} |`);
  console.log(`\nbare / crs-backup, main threads: ${(bare.main / ours.main).toFixed(3)}`);
  fs.rmSync(dir, { recursive: true, force: true });
}

if (require.main === module) main().catch((err) => {
  console.error(err);
  process.exit(1);
});
