// The request path's own CPU, without HTTP: bench:api's DescribeInstanceBackups mix through the same Pipeline,
// log line and metrics observer `crs-backup serve` runs (src/app.ts, src/gateway/server.ts), in process, 50
// requests in flight as bench:api's 50 connections keep. Prints CPU µs per request (process.cpuUsage over the
// round / requests answered) for each round.
//
//   node dist/bench/pipeline.js            # BENCH_SECONDS=5 BENCH_ROUNDS=3
//   BENCH_DATA=/tmp/dir                    # keep the 1,000,000-backup catalogue there and reuse it next time
//   BENCH_PROFILE=/tmp/dir                 # V8 CPU profiles of the last round, one per build (bench/cpuprofile-top.ts)
//   BENCH_BASELINE_ROOT=/path/to/checkout  # another build (npx tsc -p . there) in the same process, rounds alternating
import fs from "node:fs";
import inspector from "node:inspector";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import type { ApiRequest, ApiResponse } from "../src/gateway/pipeline";
import type { RequestObserver } from "../src/gateway/server";
import type { Logger } from "../src/log";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = 50;
const PORT = 19999;

interface Build {
  name: string;
  handle(req: ApiRequest): Promise<ApiResponse>;
  answered(out: ApiResponse, started: bigint): void;
  close(): Promise<void>;
}

/** One build's request path (this checkout's, or BENCH_BASELINE_ROOT's compiled code) over the catalogue in dataDir. */
async function open(name: string, root: string, dataDir: string, logFile: string): Promise<Build> {
  /* eslint-disable @typescript-eslint/no-require-imports -- the compiled code of a checkout, by path */
  const r = (m: string) => require(path.join(root, "dist", "src", m)) as Record<string, unknown>;
  const { DEFAULTS } = r("app") as typeof import("../src/app");
  const { Pipeline } = r("gateway/pipeline") as typeof import("../src/gateway/pipeline");
  const { MemoryBucketStore, RateLimiter } = r("gateway/ratelimit") as typeof import("../src/gateway/ratelimit");
  const server = r("gateway/server") as Partial<typeof import("../src/gateway/server")>;
  const { createLogger } = r("log") as typeof import("../src/log");
  const { ServerMetrics } = r("metrics/metrics") as typeof import("../src/metrics/metrics");
  const { createServices } = r("services") as typeof import("../src/services");
  /* eslint-enable @typescript-eslint/no-require-imports */
  // As `serve` logs to a file (bench:api): JSON lines, written synchronously.
  const logger = createLogger({ destination: pino.destination({ dest: logFile, sync: true }) as never });
  const services = await createServices({ ...DEFAULTS, dataDir, port: 0, logger, rateLimit: 1_000_000_000, schedulerIntervalMs: 0 }, { role: "serve" });
  const metrics = new ServerMetrics();
  metrics.attach(services);
  const pipeline = new Pipeline({ services, regions: services.regions, limiter: new RateLimiter(new MemoryBucketStore(), 1_000_000_000) });
  const http = logger.child({ component: "http" });
  // What server.ts does once a request is answered; a build from before logAnswer existed did it inline, so.
  const answered = server.logAnswer ? (out: ApiResponse, started: bigint) => server.logAnswer!(http, metrics.requestObserver, out, started)
    : (out: ApiResponse, started: bigint) => inlineAnswer(http, metrics.requestObserver, out, started);
  return { name, handle: (req) => pipeline.handle(req), answered, close: () => services.close() };
}

function inlineAnswer(logger: Logger, observer: RequestObserver, out: ApiResponse, started: bigint): void {
  const ms = Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100;
  const line = { requestId: out.requestId, action: out.action, account: out.account, code: out.code, ms };
  logger.info(line, "request");
  try {
    observer.request(line);
  } catch {
    // as server.ts
  }
}

async function main(): Promise<void> {
  const keep = process.env.BENCH_DATA;
  const dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-pipeline-"));
  const dataDir = path.join(dir, "data");
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- after the catalogue, see open()
  const { buildCatalogue, workload } = require("./api") as typeof import("./api");
  if (!fs.existsSync(path.join(dataDir, "catalog.db"))) {
    const t = Date.now();
    await buildCatalogue(dataDir);
    console.log(`catalogue built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  const builds = [await open("current", path.join(__dirname, "..", ".."), dataDir, path.join(dir, "current.log"))];
  const baseline = process.env.BENCH_BASELINE_ROOT;
  if (baseline) builds.push(await open(`baseline (${path.basename(baseline)})`, path.resolve(baseline), dataDir, path.join(dir, "baseline.log")));
  const requests: ApiRequest[] = workload(PORT, 2000).map((r) => ({
    method: r.method, target: r.path, headers: { ...r.headers, "content-length": String(Buffer.byteLength(r.body)) }, body: Buffer.from(r.body),
    remoteAddress: "127.0.0.1",
  }));
  for (const b of builds) {
    const first = await b.handle(requests[0]!);
    if (first.code !== "OK") throw new Error(`${b.name}: the first request failed: ${first.body}`);
  }

  const round = async (b: Build): Promise<{ n: number; cpuUs: number }> => {
    const until = Date.now() + SECONDS * 1000;
    let n = 0;
    const cpu = process.cpuUsage();
    await Promise.all(Array.from({ length: CONNECTIONS }, async (_, c) => {
      for (let k = c; Date.now() < until; k += CONNECTIONS) {
        const started = process.hrtime.bigint();
        const out = await b.handle({ ...requests[k % requests.length]!, connection: c + 1 });
        if (out.code !== "OK") throw new Error(`${b.name}: request failed: ${out.body}`);
        b.answered(out, started);
        n++;
      }
    }));
    const used = process.cpuUsage(cpu);
    return { n, cpuUs: used.user + used.system };
  };

  // Warm-up: every request of the mix once (caches filled, listing indexes built), then a round of load.
  for (const b of builds) {
    for (let k = 0; k < requests.length; k += CONNECTIONS) await Promise.all(requests.slice(k, k + CONNECTIONS).map((r, c) => b.handle({ ...r, connection: c + 1 })));
    await round(b);
  }
  console.log(`load average before: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  console.log("| round | build | requests | CPU µs per request |");
  console.log("|---|---|---|---|");
  const results = new Map<string, number[]>();
  const profileDir = process.env.BENCH_PROFILE;
  for (let r = 1; r <= ROUNDS; r++) {
    for (const b of r % 2 ? builds : [...builds].reverse()) {
      const session = profileDir && r === ROUNDS ? new inspector.Session() : undefined;
      if (session) {
        session.connect();
        await post(session, "Profiler.enable");
        await post(session, "Profiler.start");
      }
      const { n, cpuUs } = await round(b);
      if (session) {
        const { profile } = (await post(session, "Profiler.stop")) as { profile: unknown };
        fs.mkdirSync(profileDir!, { recursive: true });
        const file = path.join(profileDir!, `${b.name.split(" ")[0]}.cpuprofile`);
        fs.writeFileSync(file, JSON.stringify(profile));
        session.disconnect();
        console.log(`(profile of ${b.name}, round ${r}: ${file}, ${n} requests)`);
      }
      (results.get(b.name) ?? results.set(b.name, []).get(b.name)!).push(cpuUs / n);
      console.log(`| ${r} | ${b.name} | ${n} | ${(cpuUs / n).toFixed(1)} |`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, c) => a - c)[Math.floor(xs.length / 2)]!;
  const cur = median(results.get("current")!);
  console.log(`\nmedian CPU per request, current: ${cur.toFixed(1)} µs (goal <= 80)`);
  if (builds[1]) {
    const base = median(results.get(builds[1].name)!);
    console.log(`median CPU per request, ${builds[1].name}: ${base.toFixed(1)} µs; ratio current / baseline ${(cur / base).toFixed(2)}`);
  }
  console.log(`load average after: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  for (const b of builds) await b.close();
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
}

function post(session: inspector.Session, method: string): Promise<unknown> {
  return new Promise((resolve, reject) => session.post(method, (err, res) => (err ? reject(err) : resolve(res))));
}

if (require.main === module) main().catch((err) => {
  console.error(err);
  process.exit(1);
});
