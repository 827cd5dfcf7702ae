// npm run bench:catalog — the catalogue's share of a DescribeInstanceBackups request, without HTTP: for each
// request of bench:api's mix, the three catalogue calls the pipeline makes (credential, instance, listBackups),
// in process, against the same 1,000,000-backup SQLite catalogue.
//
// The baseline is another build of crs-backup: BENCH_BASELINE_ROOT=/path/to/checkout (built with `npx tsc -p .`),
// for instance the last commit with the synchronous catalogue, to check that the asynchronous Catalog interface
// costs the SQLite backend nothing. Both builds run in this process, alternately, each on its own catalogue
// built by its own code. Without BENCH_BASELINE_ROOT only the current build is measured.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = 3;

interface Build {
  name: string;
  root: string;
  catalog: { credential(id: string): unknown; instance(id: string): unknown; listBackups(q: unknown): unknown; listingOptions?: { pageCache?: boolean } };
  queries: Array<Record<string, unknown>>;
}

async function open(name: string, root: string, dataDir: string): Promise<Build> {
  /* eslint-disable @typescript-eslint/no-require-imports -- the compiled code of another checkout, by path */
  const api = require(path.join(root, "dist", "bench", "api.js")) as { buildCatalogue(d: string): Promise<void>; workload(port: number, n: number): Array<{ body: string }> };
  const sqlite = require(path.join(root, "dist", "src", "catalog", "sqlite", "sqlite.js")) as Record<string, new (file: string) => Build["catalog"]>;
  const { LocalTime } = require(path.join(root, "dist", "src", "protocol", "time.js")) as { LocalTime: new (tz: string) => { parse(s: string): number } };
  /* eslint-enable @typescript-eslint/no-require-imports */
  await api.buildCatalogue(dataDir);
  // The class was called Catalog before the interface of that name existed.
  const Ctor = sqlite.SqliteCatalog ?? sqlite.Catalog!;
  const time = new LocalTime("Asia/Shanghai");
  const queries = api.workload(1, 2000).map((r) => {
    const p = JSON.parse(r.body) as { InstanceId: string; Limit?: number; Offset?: number; BeginTime?: string; EndTime?: string; Status?: number[] };
    return {
      instanceId: p.InstanceId, limit: p.Limit ?? 20, offset: p.Offset ?? 0, statuses: p.Status,
      begin: p.BeginTime ? time.parse(p.BeginTime) : undefined, end: p.EndTime ? time.parse(p.EndTime) + 999 : undefined,
    };
  });
  return { name, root, catalog: new Ctor(path.join(dataDir, "catalog.db")), queries };
}

/** Microseconds per request's catalogue calls, over SECONDS. */
async function measure(b: Build): Promise<number> {
  const t = process.hrtime.bigint();
  const until = Date.now() + SECONDS * 1000;
  let n = 0;
  while (Date.now() < until) {
    for (const q of b.queries) {
      // Awaited either way, as the pipeline awaits them (a synchronous result costs the same one tick).
      await b.catalog.credential("AKIDbench0000000000000000000000001");
      await b.catalog.instance(q.instanceId as string);
      const r = (await b.catalog.listBackups(q)) as { total: number; rows: unknown[] };
      if (r.rows.length === 0 && r.total > (q.offset as number)) throw new Error(`${b.name}: an empty page inside the total`);
      n++;
    }
  }
  return Number(process.hrtime.bigint() - t) / 1000 / n;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-catalog-"));
  try {
    const builds = [await open("current", path.join(__dirname, "..", ".."), path.join(dir, "current"))];
    // The same build with its listing-page cache off: what a request costs when its page is not cached (a
    // different page, or the first after a write), the path the baseline's figures compare with.
    const uncached = await open("current, page cache off", path.join(__dirname, "..", ".."), path.join(dir, "current-uncached"));
    if (uncached.catalog.listingOptions?.pageCache === true) {
      uncached.catalog.listingOptions.pageCache = false;
      builds.push(uncached);
    }
    const baseline = process.env.BENCH_BASELINE_ROOT;
    if (baseline) builds.push(await open(`baseline (${path.basename(baseline)})`, path.resolve(baseline), path.join(dir, "baseline")));
    console.log("| round | build | µs per request (credential + instance + listBackups) |");
    console.log("|---|---|---|");
    const results = new Map<string, number[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const b of round % 2 ? builds : [...builds].reverse()) {
        const us = await measure(b);
        (results.get(b.name) ?? results.set(b.name, []).get(b.name)!).push(us);
        console.log(`| ${round} | ${b.name} | ${us.toFixed(1)} |`);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, c) => a - c)[Math.floor(xs.length / 2)]!;
    const base = baseline ? builds[builds.length - 1]! : undefined;
    for (const b of builds) {
      if (b === base) continue;
      const us = median(results.get(b.name)!);
      console.log(`\nmedian, ${b.name}: ${us.toFixed(1)} µs per request${base ? `; ratio to the baseline ${(us / median(results.get(base.name)!)).toFixed(2)} (goal <= 1.00: no slower)` : ""}`);
    }
    if (base) console.log(`median, ${base.name}: ${median(results.get(base.name)!).toFixed(1)} µs per request`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) main().catch((err) => {
  console.error(err);
  process.exit(1);
});
