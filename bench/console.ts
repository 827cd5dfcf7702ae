// npm run bench:console — how fast the web console's pages answer in a real browser (Debian's chromium, headless)
// with 1,000 instances and 100,000 backups, against a baseline of the same pages on a small catalogue in the same
// run. Each figure is measured inside the page: a full load from navigation start (performance.now()) until the
// page shows its data, or an in-app step (click -> the expected rows on screen, seen by a MutationObserver).
// Env: BENCH_INSTANCES (1000), BENCH_BACKUPS (100000), BENCH_REPEAT (7).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "../test/support/redis";
import type { Page } from "playwright-core";
import fs0 from "node:fs";
import { catalogFile } from "../src/app";
import { SqliteCatalog } from "../src/catalog/sqlite/sqlite";
import type { BackupStatus } from "../src/catalog/types";
import { ALL_WEEKDAYS } from "../src/protocol/schedule";
import { launchBrowser } from "../test/support/browser";
import { CLI, spawnLogged, waitForHttp } from "./support";

const KEY = { secretId: "AKIDbenchconsole000000000000000001", secretKey: "bench-console-secret" };
const ACCOUNT = "1300000009";
const START = Date.UTC(2023, 0, 1);
const HOUR = 3_600_000;
const STATUSES: BackupStatus[] = [2, 2, 2, 2, -1, -1, 4, -2];
const REPEAT = Number(process.env.BENCH_REPEAT ?? 7);

interface Shape {
  label: string;
  instances: number;
  /** Backups of instance 0 (the big one); the rest are spread evenly over the others. */
  big: number;
  total: number;
}

function instanceId(i: number): string {
  return `crs-b${String(i).padStart(7, "0")}`;
}

function backupId(i: number, j: number): string {
  const hex = `${i.toString(16).padStart(8, "0")}${j.toString(16).padStart(24, "0")}`;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** Backup j of an instance starts j hours after START; the newest is listed first. */
function perInstance(shape: Shape, i: number): number {
  const rest = Math.floor((shape.total - shape.big) / (shape.instances - 1));
  return i === 0 ? shape.big : i === shape.instances - 1 ? shape.total - shape.big - rest * (shape.instances - 2) : rest;
}

/** Through the catalogue's own methods, in one transaction. */
async function build(dataDir: string, shape: Shape): Promise<void> {
  fs0.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const catalog = new SqliteCatalog(catalogFile(dataDir));
  await catalog.putCredential({ ...KEY, accountId: ACCOUNT });
  const far = Date.now() + 50 * 365 * 24 * HOUR;
  await catalog.transaction(async (tx) => {
    for (let i = 0; i < shape.instances; i++) {
      const id = instanceId(i);
      await tx.upsertInstance({
        instanceId: id, accountId: ACCOUNT, region: "ap-guangzhou", name: `bench-${i}`, redisUrl: `redis://127.0.0.1:${10_000 + (i % 50_000)}`,
        instanceType: 17, shardNum: 1, redisVersion: "7.0.15", memSizeMb: 1024, createdAt: START,
        autoBackupWeekDays: ALL_WEEKDAYS.filter((_, d) => (d + i) % 3 !== 0), autoBackupPeriod: `${String(i % 24).padStart(2, "0")}:00-${String((i + 1) % 24).padStart(2, "0")}:00`,
        // Every window counts as served: the scheduler leaves these unreachable servers alone during the run.
        backupStorageDays: 7, lastAutoWindow: far,
      });
      const n = perInstance(shape, i);
      for (let j = 0; j < n; j++) {
        const start = START + j * HOUR;
        await tx.insertBackup({
          backupId: backupId(i, j), instanceId: id, startTime: start, endTime: start + 20_000 + (j % 40) * 1000, backupType: j % 7 === 0 ? "1" : "0",
          status: STATUSES[j % STATUSES.length]!, remark: j % 11 === 0 ? `nightly <${j}>` : "", locked: 0, backupSize: 100_000 + j * 10 + (i % 7) * 1000,
          fullBackup: 0, instanceType: 17, fileType: "RDB-Redis 7.0", expireTime: start + 50 * 365 * 24 * HOUR, encrypted: false, files: [],
        });
      }
    }
    for (let k = 0; k < 500; k++) {
      await tx.insertTask({
        instanceId: instanceId(k % shape.instances), accountId: ACCOUNT, taskType: k % 4 === 0 ? "017" : "012", status: k % 9 === 0 ? "failed" : "succeed",
        progress: 100, startTime: START + k * HOUR, endTime: START + k * HOUR + 30_000, message: "",
      });
    }
  });
  catalog.db.pragma("wal_checkpoint(TRUNCATE)");
  await catalog.close();
}

/** Records in the page when the current route's data is on screen (ms since navigation start). */
const READY_SCRIPT = `
(() => {
  window.__readyAt = undefined;
  const check = () => {
    if (window.__readyAt !== undefined) return;
    const p = location.pathname;
    const ok = p.startsWith("/console/instances/")
      ? document.querySelector("[data-testid='backups'][data-ready='1'] tr[data-backup]") && document.querySelector("[data-testid='chart'], [data-testid='chart-empty']")
      : p.startsWith("/console/tasks")
        ? document.querySelector("[data-page='tasks'][data-ready='1'] tr[data-task]")
        : document.querySelector("[data-page='instances'][data-ready='1'] tr[data-instance]");
    if (ok) window.__readyAt = performance.now();
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true });
})();
`;

/** The longest console API request of the measured span (request sent -> last byte), from Resource Timing. */
const API_SPAN = `Math.max(0, ...performance.getEntriesByType("resource").filter((e) => e.name.includes("/console/api/")).map((e) => e.responseEnd - e.startTime))`;

interface Timing {
  /** Until the data is on screen. */
  screen: number;
  /** The slowest API answer within it. */
  api: number;
}

async function fullLoad(page: Page, url: string): Promise<Timing> {
  await page.goto(url);
  await page.waitForFunction(() => (globalThis as { __readyAt?: number }).__readyAt !== undefined, undefined, { timeout: 10_000 });
  return (await page.evaluate(`({ screen: window.__readyAt, api: ${API_SPAN} })`)) as Timing;
}

/** Runs `action` in the page and measures until `done` holds (both JavaScript expressions). */
async function step(page: Page, action: string, done: string): Promise<Timing> {
  return (await page.evaluate(`new Promise((resolve, reject) => {
    const done = () => { try { return Boolean(${done}); } catch { return false; } };
    performance.clearResourceTimings();
    const t0 = performance.now();
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error("timed out: " + ${JSON.stringify(done)})); }, 10000);
    const obs = new MutationObserver(() => {
      if (done()) { obs.disconnect(); clearTimeout(timer); resolve({ screen: performance.now() - t0, api: ${API_SPAN} }); }
    });
    obs.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    ${action};
  })`)) as Timing;
}

const firstRow = (attr: string) => `document.querySelector("tr[${attr}]")?.getAttribute(${JSON.stringify(attr)})`;
const clickText = (scope: string, text: string) => `[...document.querySelectorAll(${JSON.stringify(`${scope} button`)})].find((b) => b.textContent === ${JSON.stringify(text)}).click()`;

interface Scenario {
  name: string;
  prepare?: (page: Page, base: string) => Promise<void>;
  run: (page: Page, base: string) => Promise<Timing>;
}

function scenarios(shape: Shape): Scenario[] {
  const lastPage = Math.ceil(shape.instances / 20);
  const big = perInstance(shape, 0);
  const bigPages = Math.ceil(big / 20);
  const searchFor = Math.floor(shape.instances * 0.777);
  // Newest first: row r of the unfiltered listing is backup j = big - 1 - r.
  const lastPageFirst = backupId(0, big - 1 - (bigPages - 1) * 20);
  let newestExpired = big - 1;
  while (STATUSES[newestExpired % STATUSES.length] !== -1) newestExpired--;
  const windowEnd = Math.floor(big / 2);
  const fmt = (ms: number) => {
    const d = new Date(ms + 8 * HOUR); // the server's default zone, Asia/Shanghai (no DST)
    return d.toISOString().slice(0, 19);
  };
  const instance0 = (base: string) => `${base}/console/instances/${instanceId(0)}`;
  return [
    { name: "instances: full load", run: (page, base) => fullLoad(page, `${base}/console/instances`) },
    {
      name: "instances: next page",
      prepare: async (page, base) => void (await fullLoad(page, `${base}/console/instances`)),
      run: (page) => step(page, clickText(".pager", "Next"), `${firstRow("data-instance")} === ${JSON.stringify(instanceId(20))}`),
    },
    {
      name: `instances: last page (${lastPage})`,
      prepare: async (page, base) => void (await fullLoad(page, `${base}/console/instances`)),
      run: (page) => step(page, clickText(".pager", "Last"), `${firstRow("data-instance")} === ${JSON.stringify(instanceId((lastPage - 1) * 20))}`),
    },
    {
      name: "instances: search",
      prepare: async (page, base) => {
        await fullLoad(page, `${base}/console/instances`);
        await page.fill("input[name=q]", instanceId(searchFor).slice(5));
      },
      run: (page) => step(page, `document.querySelector("form.search button").click()`,
        `document.querySelectorAll("tr[data-instance]").length === 1 && ${firstRow("data-instance")} === ${JSON.stringify(instanceId(searchFor))}`),
    },
    {
      name: "instance page from the list (in app)",
      prepare: async (page, base) => void (await fullLoad(page, `${base}/console/instances`)),
      run: (page) => step(page, `document.querySelector("tr[data-instance='${instanceId(0)}'] a").click()`,
        `${firstRow("data-backup")} === ${JSON.stringify(backupId(0, big - 1))} && document.querySelector("[data-testid='chart']")`),
    },
    { name: `instance (${big.toLocaleString("en-US")} backups): full load`, run: (page, base) => fullLoad(page, instance0(base)) },
    {
      name: `backups: last page (${bigPages})`,
      prepare: async (page, base) => void (await fullLoad(page, instance0(base))),
      run: (page) => step(page, clickText("[data-testid='backups'] .pager", "Last"), `${firstRow("data-backup")} === ${JSON.stringify(lastPageFirst)}`),
    },
    {
      name: "backups: status filter (Expired)",
      prepare: async (page, base) => {
        await fullLoad(page, instance0(base));
        await page.setChecked("input[name='status--1']", true);
      },
      run: (page) => step(page, `document.querySelector("[data-testid='filters'] button[type=submit]").click()`, `${firstRow("data-backup")} === ${JSON.stringify(backupId(0, newestExpired))}`),
    },
    {
      name: "backups: time filter",
      prepare: async (page, base) => {
        await fullLoad(page, instance0(base));
        await page.fill("input[name=begin]", fmt(START + (windowEnd - 500) * HOUR).slice(0, 16));
        await page.fill("input[name=end]", fmt(START + windowEnd * HOUR).slice(0, 16));
      },
      run: (page) => step(page, `document.querySelector("[data-testid='filters'] button[type=submit]").click()`, `${firstRow("data-backup")} === ${JSON.stringify(backupId(0, windowEnd))}`),
    },
    { name: "tasks: full load", run: (page, base) => fullLoad(page, `${base}/console/tasks`) },
  ];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function measure(shape: Shape, dir: string): Promise<{ results: Map<string, Timing[]>; apiMs: Map<string, number[]> }> {
  const dataDir = path.join(dir, shape.label, "data");
  let t = Date.now();
  await build(dataDir, shape);
  const size = fs.statSync(catalogFile(dataDir)).size;
  console.log(`${shape.label}: ${shape.instances.toLocaleString("en-US")} instances, ${shape.total.toLocaleString("en-US")} backups (${perInstance(shape, 0).toLocaleString("en-US")} on one), catalogue ${(size / 1e6).toFixed(1)} MB, built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const port = await freePort();
  const logFile = path.join(dir, `${shape.label}.log`);
  const server = spawnLogged([CLI, "serve", "--data", dataDir, "--port", String(port), "--rate-limit", "0"], logFile);
  const browser = await launchBrowser();
  const results = new Map<string, Timing[]>();
  try {
    await waitForHttp(port, 30_000);
    const base = `http://127.0.0.1:${port}`;
    const page = await browser.context.newPage();
    await page.addInitScript(READY_SCRIPT);
    await page.goto(`${base}/console/login`);
    await page.fill("input[name=secretId]", KEY.secretId);
    await page.fill("input[name=secretKey]", KEY.secretKey);
    await page.click("button[type=submit]");
    await page.waitForSelector("[data-page='instances'][data-ready='1']");
    for (const s of scenarios(shape)) {
      // One unmeasured run warms the caches (SQLite pages, the listing index, the browser's) as a working console has them.
      t = Date.now();
      const times: Timing[] = [];
      for (let k = 0; k <= REPEAT; k++) {
        await s.prepare?.(page, base);
        // A full load's resource entries start with the navigation; a step clears them itself.
        const timing = await s.run(page, base);
        if (k > 0) times.push(timing);
      }
      results.set(s.name, times);
    }
  } finally {
    await browser.close();
    server.kill("SIGTERM");
  }
  const apiMs = new Map<string, number[]>();
  // The server's JSON log lines: {"component":"console",...,"action":"…","ms":1.23,"msg":"console request"}.
  for (const line of fs.readFileSync(logFile, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    const l = JSON.parse(line) as { msg?: string; action?: string; ms?: number };
    if (l.msg === "console request" && l.action && typeof l.ms === "number") apiMs.set(l.action, [...(apiMs.get(l.action) ?? []), l.ms]);
  }
  return { results, apiMs };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-bench-console-"));
  const instances = Number(process.env.BENCH_INSTANCES ?? 1000);
  const total = Number(process.env.BENCH_BACKUPS ?? 100_000);
  const baseline: Shape = { label: "baseline", instances: 30, big: 50, total: 340 };
  const large: Shape = { label: "large", instances, big: Math.floor(total / 10), total };
  try {
    const small = await measure(baseline, dir);
    const big = await measure(large, dir);
    console.log(`\nchromium headless, ${os.cpus().length} cores shared by server, browser and bench; load average at the end ${os.loadavg()[0]!.toFixed(1)}; median of ${REPEAT} after one warm-up; ms`);
    console.log("screen = until the page shows its data; api = the slowest console API answer within it (Resource Timing)\n");
    console.log(`| page | baseline (${baseline.instances} instances, ${baseline.total} backups): screen / api | ${large.instances.toLocaleString("en-US")} instances, ${large.total.toLocaleString("en-US")} backups: screen (max) / api (max) | screen ratio |`);
    console.log("|---|---|---|---|");
    let worstScreen = 0;
    let worstApi = 0;
    const names = [...big.results.keys()];
    const smallNames = [...small.results.keys()];
    names.forEach((name, k) => {
      const a = small.results.get(smallNames[k]!)!;
      const b = big.results.get(name)!;
      const [as, aa, bs, ba] = [median(a.map((x) => x.screen)), median(a.map((x) => x.api)), median(b.map((x) => x.screen)), median(b.map((x) => x.api))];
      worstScreen = Math.max(worstScreen, bs);
      worstApi = Math.max(worstApi, ba);
      console.log(`| ${name} | ${as.toFixed(1)} / ${aa.toFixed(1)} | ${bs.toFixed(1)} (${Math.max(...b.map((x) => x.screen)).toFixed(1)}) / ${ba.toFixed(1)} (${Math.max(...b.map((x) => x.api)).toFixed(1)}) | ${(bs / as).toFixed(2)} |`);
    });
    console.log(`\nslowest page at the large size (medians): data on screen ${worstScreen.toFixed(1)} ms, API answer ${worstApi.toFixed(1)} ms (goal < 100 ms)`);
    console.log("\nserver time per console call at the large size (ms, from the server log):\n");
    console.log("| action | calls | median | max |");
    console.log("|---|---|---|---|");
    for (const [action, xs] of big.apiMs) console.log(`| ${action} | ${xs.length} | ${median(xs).toFixed(2)} | ${Math.max(...xs).toFixed(2)} |`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) main().catch((err) => {
  console.error(err);
  process.exit(1);
});
