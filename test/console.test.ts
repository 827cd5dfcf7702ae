// The web console driven in a real browser (Debian's chromium through playwright-core) against a real server and
// real redis-servers: log in, see the account's instances (not another account's), take a backup and watch it go
// from running to normal, follow the tasks, download it, change the schedule, restore into a second server,
// delete, filter and page, switch language, log out. User-provided strings must render as text.
// Screenshots of each page go to $CONSOLE_SCREENSHOTS (docs/console when regenerating the README's pictures).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { dbsize, send } from "./support/dataset";
import { launchBrowserPage, Browser } from "./support/browser";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { KEY, SdkClient, startTestServer, TestServer } from "./support/server";
import { LocalTime } from "../src/protocol/time";
import { signV3 } from "./support/sign";

const OTHER = { secretId: "AKIDconsoleother000000000000002", secretKey: "other-console-key", account: "1300000002" };
const LIMITED = { secretId: "AKIDconsolelimited0000000000003", secretKey: "limited-console-key" };
const TEMP = { secretId: "AKIDconsoletemp000000000000004", secretKey: "temp-console-key", token: "temp-token-4" };
const MAIN = "crs-cons0001";
const TARGET = "crs-cons0002";
const FOREIGN = "crs-cons0003";
const XSS_REMARK = `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">`;
const TARGET_NAME = "target <b>not bold</b>";

const shots = process.env.CONSOLE_SCREENSHOTS ?? fs.mkdtempSync(path.join(os.tmpdir(), "crs-console-shots-"));

// Fixture backups on MAIN: one a day for the last 22 days (02:10 server time), statuses in a cycle, sizes growing;
// then the newest fixture, yesterday, whose remark is markup.
const tz = new LocalTime("Asia/Shanghai");
const NOW = Date.now();
const pad = (n: number) => String(n).padStart(2, "0");
function dayAt(daysAgo: number, hhmm: string): string {
  const p = tz.parts(NOW - daysAgo * 86_400_000);
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${hhmm}:00`;
}

function fixtureBackups() {
  const statuses = [2, 2, 4, -1, -2, 2];
  const out = Array.from({ length: 22 }, (_, i) => {
    const start = dayAt(22 - i, "02:10");
    return {
      InstanceId: MAIN, BackupId: `f1${String(i).padStart(6, "0")}-0000-4000-8000-000000000000`,
      StartTime: start, EndTime: tz.format(tz.parse(start)! + (2 + ((i * 7) % 9)) * 1000),
      Status: statuses[i % statuses.length]!, BackupType: i % 2 ? "1" : "0", Remark: `fixture ${i}`, BackupSize: 30_000 + i * 600 + (i % 3) * 900,
    };
  });
  out.push({ InstanceId: MAIN, BackupId: "f1999999-0000-4000-8000-000000000000", StartTime: dayAt(1, "10:00"), EndTime: dayAt(1, "10:00").replace(/:00$/, ":05"), Status: 2, BackupType: "0", Remark: XSS_REMARK, BackupSize: 44_000 });
  return out;
}

let src: RedisProcess;
let target: RedisProcess;
let srv: TestServer;
let sdk: SdkClient;
let browser: Browser;
let page: Page;
let base: string;

before(async () => {
  // 1 ms per key while the source writes its RDB: a capture of ~2,000 keys takes about two seconds, long enough
  // to see it running.
  src = await startRedis(["--repl-diskless-sync-delay", "0", "--rdb-key-save-delay", "1000"]);
  target = await startRedis(["--repl-diskless-sync-delay", "0", "--requirepass", "tpw"], { password: "tpw" });
  await send(src.endpoint, Array.from({ length: 2000 }, (_, i) => ["SET", `plain:${i}`, `value-${i}`]));
  srv = await startTestServer({
    Credentials: [
      { SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account },
      { SecretId: OTHER.secretId, SecretKey: OTHER.secretKey, Account: OTHER.account },
      { SecretId: LIMITED.secretId, SecretKey: LIMITED.secretKey, Account: KEY.account, Policy: { Actions: ["DescribeInstances", "DescribeInstanceBackups"], Instances: [MAIN] } },
      { SecretId: TEMP.secretId, SecretKey: TEMP.secretKey, Account: KEY.account, Token: TEMP.token },
    ],
    Instances: [
      { InstanceId: MAIN, InstanceName: "orders-main", Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${src.port}` },
      { InstanceId: TARGET, InstanceName: TARGET_NAME, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:tpw@127.0.0.1:${target.port}` },
      { InstanceId: FOREIGN, InstanceName: "theirs-not-yours", Region: "ap-guangzhou", Account: OTHER.account },
    ],
    Backups: fixtureBackups(),
  }, { schedulerIntervalMs: 0 });
  sdk = srv.client({ language: "en-US" });
  base = `http://127.0.0.1:${srv.port}`;
  ({ browser, page } = await launchBrowserPage());
});

after(async () => {
  await browser?.close();
  await srv?.close();
  src?.kill();
  target?.kill();
  if (!process.env.CONSOLE_SCREENSHOTS) fs.rmSync(shots, { recursive: true, force: true });
});

async function shot(name: string, fullPage = true): Promise<void> {
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage });
}

/** Waits until the page (or the backups card) has its data for the current query. */
async function ready(selector = "[data-ready='1']"): Promise<void> {
  await page.waitForSelector(selector, { timeout: 10_000 });
}

function rowOf(backupId: string) {
  return page.locator(`tr[data-backup='${backupId}']`);
}

async function latestRealBackupId(remark: string): Promise<string> {
  const all = await sdk.DescribeInstanceBackups({ InstanceId: MAIN, Limit: 100 });
  const b = all.BackupSet!.find((x) => x.Remark === remark);
  assert.ok(b, `a backup with remark ${remark}`);
  return b.BackupId!;
}

describe("the web console in a browser", () => {
  test("log in: a wrong key is refused; the account's two instances are listed, not the other account's", async () => {
    await page.goto(`${base}/console`);
    await page.waitForSelector("form.login");
    assert.match(page.url(), /\/console\/login/);
    await shot("login");
    await page.fill("input[name=secretId]", KEY.secretId);
    await page.fill("input[name=secretKey]", "not-the-key");
    await page.click("button[type=submit]");
    await page.waitForSelector("form.login .error");
    assert.match(await page.textContent("form.login .error") ?? "", /SecretId or the SecretKey is incorrect/);
    await page.fill("input[name=secretKey]", KEY.secretKey);
    await page.click("button[type=submit]");
    await ready("[data-page='instances'][data-ready='1']");
    assert.match(page.url(), /\/console\/instances$/);
    const ids = await page.locator("tr[data-instance]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-instance")));
    assert.deepEqual(ids.sort(), [MAIN, TARGET]);
    assert.equal(await page.getByText("theirs-not-yours").count(), 0);
    // The last fixture backup (the newest) is MAIN's last backup; TARGET has none.
    const main = page.locator(`tr[data-instance='${MAIN}']`);
    assert.match(await main.textContent() ?? "", / ago/);
    assert.equal(await main.locator("[data-status='2']").count(), 1);
    assert.equal(await main.locator("svg.sparkline circle").count(), 12, "the trend has the 12 latest backups");
    assert.match(await page.locator(`tr[data-instance='${TARGET}']`).textContent() ?? "", /No backups yet/);
    // The session cookie is HttpOnly, SameSite=Strict, scoped to /console.
    const cookies = await browser.context.cookies(`${base}/console/`);
    const session = cookies.find((c) => c.name === "crs_console");
    assert.ok(session);
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.equal(session.path, "/console");
    assert.ok(!session.value.includes(KEY.secretKey));
    assert.equal(await page.evaluate("document.cookie"), "", "not readable from scripts");
  });

  test("an instance's ID in the list is a link to its page, as its name is", async () => {
    const id = page.locator(`tr[data-instance='${TARGET}'] a.instance-id`);
    assert.equal(await id.textContent(), TARGET);
    assert.equal(await id.getAttribute("href"), `/console/instances/${TARGET}`);
    await id.click();
    await ready(`[data-page='instance'][data-instance='${TARGET}'] [data-testid='backups'][data-ready='1']`);
    assert.match(page.url(), new RegExp(`/console/instances/${TARGET}$`));
    assert.equal(await page.locator("[data-page='instance'] h1 .sub").textContent(), TARGET);
    // Back to the list, which the next tests start from.
    await page.goBack();
    await ready("[data-page='instances'][data-ready='1']");
    assert.match(page.url(), /\/console\/instances$/);
  });

  test("user-provided strings (instance names, remarks) render as text", async () => {
    const target = page.locator(`tr[data-instance='${TARGET}'] a.strong`);
    assert.equal(await target.textContent(), TARGET_NAME);
    assert.equal(await target.locator("b").count(), 0);
    await page.click(`a:text("orders-main")`);
    await ready("[data-testid='backups'][data-ready='1']");
    const row = rowOf("f1999999-0000-4000-8000-000000000000");
    assert.equal(await row.locator("td.remark").textContent(), XSS_REMARK);
    assert.equal(await page.locator("[data-page='instance'] script, [data-page='instance'] img").count(), 0);
    assert.equal(await page.evaluate("window.__xss"), undefined);
    // Every RedisBackupSet field is shown in the row's details, and where it was taken from (a fixture: not recorded).
    await row.locator("button[aria-expanded]").click();
    await ready("[data-testid='backup-origin'][data-ready='1']");
    const fields = await page.locator("tr.details dt").allTextContents();
    assert.deepEqual(fields.sort(), ["BackupId", "BackupSize", "BackupType", "Encrypted", "EndTime", "ExpireTime", "FileType", "FullBackup", "InstanceId", "InstanceName",
      "InstanceType", "Locked", "Region", "Remark", "StartTime", "Status", "Taken from"]);
    assert.match(await page.textContent("[data-testid='backup-origin'] dd") ?? "", /not recorded/);
    await row.locator("button[aria-expanded]").click();
  });

  test("take a real backup and watch it go from running to normal", async () => {
    await page.fill("input[name=remark]", "from the console");
    await page.click("[data-testid='backup-now']");
    // Running: the task's live progress and the row's badge.
    await page.waitForSelector(".taskwatch[data-result='1']", { timeout: 10_000 });
    const running = page.locator("tr[data-status='1']");
    await running.waitFor({ timeout: 10_000 });
    assert.equal(await running.locator(".badge[data-status='1']").textContent(), "Backing up");
    await shot("instance-backup-running");
    const id = await running.getAttribute("data-backup");
    assert.ok(id);
    // Then normal, without reloading the page.
    await page.waitForSelector(`tr[data-backup='${id}'][data-status='2']`, { timeout: 30_000 });
    await page.waitForSelector(".taskwatch[data-result='2']");
    assert.equal(await rowOf(id).locator(".badge[data-status='2']").textContent(), "Normal");
    assert.equal(await rowOf(id).locator("td.remark").textContent(), "from the console");
    const stored = (await sdk.DescribeInstanceBackups({ InstanceId: MAIN, Limit: 1 })).BackupSet![0]!;
    assert.equal(stored.BackupId, id);
    assert.equal(stored.Status, 2);
    assert.ok(stored.BackupSize! > 0);
    // The chart has a point for every finished backup, the new one included.
    const finished = await sdk.DescribeInstanceBackups({ InstanceId: MAIN, Limit: 100, Status: [2, 3, 4, -1, -2] });
    assert.equal(finished.TotalCount, 24);
    await waitFor("the chart to include the new backup", async () => Number(await page.getAttribute("[data-testid='chart']", "data-points")) === 24 || undefined, 5_000);
    await shot("instance");
  });

  test("the tasks page follows a running task live", async () => {
    await page.fill("input[name=remark]", "second");
    await page.click("[data-testid='backup-now']");
    await page.waitForSelector(".taskwatch[data-result='1']", { timeout: 10_000 });
    await page.click("header.top a:text('Tasks')");
    await ready("[data-page='tasks'][data-ready='1']");
    const runningTask = page.locator("tr[data-task][data-result='1']");
    await runningTask.waitFor({ timeout: 10_000 });
    const taskId = await runningTask.getAttribute("data-task");
    assert.ok(await page.locator(".live").isVisible());
    await shot("tasks");
    await page.waitForSelector(`tr[data-task='${taskId}'][data-result='2']`, { timeout: 30_000 });
    assert.equal(await page.locator(`tr[data-task='${taskId}'] progress`).getAttribute("value"), "100");
    // Both manual backups are listed as succeeded.
    const done = await page.locator("tr[data-task][data-result='2']").count();
    assert.ok(done >= 2);
  });

  test("download a backup: DescribeBackupUrl, then the file through the link", async () => {
    await page.goto(`${base}/console/instances/${MAIN}`);
    await ready("[data-testid='backups'][data-ready='1']");
    const id = await latestRealBackupId("from the console");
    await rowOf(id).locator("button:text('Download')").click();
    const link = page.locator("[data-testid='download-links'] a");
    await link.waitFor({ timeout: 20_000 });
    await shot("download", false);
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    const file = await download.path();
    const bytes = fs.readFileSync(file);
    assert.equal(bytes.subarray(0, 5).toString(), "REDIS");
    assert.equal(download.suggestedFilename(), await link.textContent());
    await page.click(".modal button:text('Close')");
    // Exported now: Status 4.
    await page.waitForSelector(`tr[data-backup='${id}'][data-status='4']`);
  });

  test("change the automatic-backup schedule", async () => {
    for (const d of ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]) {
      await page.setChecked(`input[name=day-${d}]`, d === "Wednesday" || d === "Saturday");
    }
    await page.selectOption("select[name=from]", "03:00");
    await page.selectOption("select[name=to]", "05:00");
    await page.fill("input[name=keep]", "3");
    await page.click("[data-testid='schedule'] button[type=submit]");
    await page.waitForSelector("[data-testid='schedule'] .saved");
    const cfg = await sdk.DescribeAutoBackupConfig({ InstanceId: MAIN });
    assert.deepEqual(cfg.WeekDays, ["Wednesday", "Saturday"]);
    assert.equal(cfg.TimePeriod, "03:00-05:00");
    assert.equal(cfg.BackupStorageDays, 3);
    await waitFor("the next window to follow", async () => /03:00:00/.test(await page.textContent("[data-testid='next-window']") ?? "") || undefined, 5_000);
    // An impossible window is refused with the API's message.
    await page.selectOption("select[name=to]", "03:00");
    await page.click("[data-testid='schedule'] button[type=submit]");
    await page.waitForSelector("[data-testid='schedule'] .error");
    assert.match(await page.textContent("[data-testid='schedule'] .error") ?? "", /InvalidParameter\.Period/);
    await page.selectOption("select[name=to]", "05:00");
    await page.click("[data-testid='schedule'] button[type=submit]");
    await page.waitForSelector("[data-testid='schedule'] .saved");
    assert.equal(await page.locator("[data-testid='schedule'] .error").count(), 0);
  });

  test("restore into a second redis-server", async () => {
    const id = await latestRealBackupId("from the console");
    assert.equal(await dbsize(target.endpoint), 0);
    await rowOf(id).locator("button:text('Restore')").click();
    await page.fill(".modal input[name=target]", TARGET);
    await page.fill(".modal input[name=password]", "wrong");
    await shot("restore", false);
    await page.click(".modal button[type=submit]");
    await page.waitForSelector(".modal .error");
    assert.match(await page.textContent(".modal .error") ?? "", /PasswordError/);
    await page.fill(".modal input[name=password]", "tpw");
    await page.click(".modal button[type=submit]");
    await page.waitForSelector(".modal .taskwatch[data-result='2']", { timeout: 60_000 });
    await page.click(".modal button:text('Close')");
    assert.equal(await dbsize(target.endpoint), 2000);
    const [value] = await send(target.endpoint, [["GET", "plain:1999"]]);
    assert.equal(String(value), "value-1999");
  });

  test("delete a backup", async () => {
    const victim = "f1000000-0000-4000-8000-000000000000"; // fixture 0, Status 2
    await page.goto(`${base}/console/instances/${MAIN}?page=2`);
    await ready("[data-testid='backups'][data-ready='1']");
    await rowOf(victim).locator("button:text('Delete')").click();
    await page.click(".modal button.danger");
    await page.waitForSelector(`tr[data-backup='${victim}'][data-status='-2']`);
    assert.equal(await rowOf(victim).locator(".badge[data-status='-2']").textContent(), "Deleted");
    const deleted = await sdk.DescribeInstanceBackups({ InstanceId: MAIN, Status: [-2], Limit: 100 });
    assert.ok(deleted.BackupSet!.some((b) => b.BackupId === victim));
  });

  test("filters by status and time, and server-side paging, match the API", async () => {
    await page.goto(`${base}/console/instances/${MAIN}`);
    await ready("[data-testid='backups'][data-ready='1']");
    const total = (await sdk.DescribeInstanceBackups({ InstanceId: MAIN })).TotalCount!;
    assert.ok(total > 20);
    assert.match(await page.textContent("[data-testid='backups'] .pager-summary") ?? "", new RegExp(`${total} in all, page 1 of 2`));
    await page.click("[data-testid='backups'] [data-testid='next']");
    await page.waitForURL(/page=2/);
    await ready("[data-testid='backups'][data-ready='1']");
    const second = await sdk.DescribeInstanceBackups({ InstanceId: MAIN, Offset: 20, Limit: 20 });
    assert.deepEqual(await page.locator("tr[data-backup]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-backup"))), second.BackupSet!.map((b) => b.BackupId));

    await page.setChecked("input[name='status-4']", true);
    await page.setChecked("input[name='status--1']", true);
    const [begin, end] = [dayAt(17, "00:00"), dayAt(7, "00:00")];
    await page.fill("input[name=begin]", begin.slice(0, 16).replace(" ", "T"));
    await page.fill("input[name=end]", end.slice(0, 16).replace(" ", "T"));
    await page.click("[data-testid='filters'] button[type=submit]");
    await page.waitForURL(/status=-1%2C4|status=-1,4/);
    assert.doesNotMatch(page.url(), /page=/);
    await ready("[data-testid='backups'][data-ready='1']");
    const filtered = await sdk.DescribeInstanceBackups({ InstanceId: MAIN, Status: [4, -1], BeginTime: begin, EndTime: end, Limit: 100 });
    assert.ok(filtered.TotalCount! > 0);
    const shown = await page.locator("tr[data-backup]").evaluateAll((rows) => rows.map((r) => [r.getAttribute("data-backup"), r.getAttribute("data-status")]));
    assert.deepEqual(shown.map((r) => r[0]), filtered.BackupSet!.map((b) => b.BackupId));
    assert.ok(shown.every((r) => r[1] === "4" || r[1] === "-1"));
    await shot("instance-filtered");
    await page.click("[data-testid='filters'] button:text('Reset')");
    await page.waitForURL((u) => !u.search.includes("status"));
  });

  test("both languages: the switch changes the page and the API's Language", async () => {
    await page.selectOption("header.top select[name=language]", "zh-CN");
    await page.waitForSelector("header.top a:text('实例')");
    await ready("[data-testid='backups'][data-ready='1']");
    assert.equal(await page.locator(".badge[data-status='2']").first().textContent(), "正常");
    // An API error comes back in Chinese: BeginTime after EndTime.
    await page.fill("input[name=begin]", dayAt(2, "00:00").slice(0, 16).replace(" ", "T"));
    await page.fill("input[name=end]", dayAt(3, "00:00").slice(0, 16).replace(" ", "T"));
    await page.click("[data-testid='filters'] button[type=submit]");
    await page.waitForSelector("[data-testid='backups'] .error");
    assert.match(await page.textContent("[data-testid='backups'] .error") ?? "", /业务参数错误/);
    await page.click("header.top a:text('实例')");
    await ready("[data-page='instances'][data-ready='1']");
    await shot("instances-zh-CN");
    await page.selectOption("header.top select[name=language]", "en-US");
    await page.waitForSelector("header.top a:text('Instances')");
    await ready("[data-page='instances'][data-ready='1']");
    await shot("instances");
  });

  test("log out: back to the login page, and the session no longer works", async () => {
    await page.click("[data-testid='logout']");
    await page.waitForSelector("form.login");
    const cookies = await browser.context.cookies(`${base}/console/`);
    assert.equal(cookies.find((c) => c.name === "crs_console"), undefined);
    const status = await page.evaluate(async () => (await fetch("/console/api/session", { headers: { "X-CRS-Console": "1" } })).status);
    assert.equal(status, 401);
    await page.goto(`${base}/console/tasks`);
    await page.waitForSelector("form.login");
    assert.match(page.url(), /login\?next=%2Ftasks/);
  });
});

// --- the console's HTTP API without a browser ---

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json(): { Response: Record<string, unknown> & { Error?: { Code: string; Message: string } } };
}

function request(method: string, urlPath: string, opts: { body?: unknown; cookie?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = { "X-CRS-Console": "1", ...(body ? { "Content-Type": "application/json" } : {}), ...(opts.cookie ? { Cookie: opts.cookie } : {}), ...opts.headers };
    const req = http.request({ host: "127.0.0.1", port: srv.port, method, path: urlPath, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) as ReturnType<Reply["json"]> });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function loginAs(key: { secretId: string; secretKey: string; token?: string }): Promise<string> {
  const r = await request("POST", "/console/api/login", { body: { SecretId: key.secretId, SecretKey: key.secretKey, Token: key.token, Language: "en-US" } });
  assert.equal(r.json().Response.Error, undefined, r.body);
  const set = String(r.headers["set-cookie"]);
  return set.split(";")[0]!;
}

async function callAs(cookie: string, action: string, params: Record<string, unknown> = {}) {
  return (await request("POST", "/console/api/call", { cookie, body: { Action: action, Region: "ap-guangzhou", Params: params, Language: "en-US" } })).json().Response;
}

describe("the console's HTTP surface", () => {
  test("the page, its assets and client routes are served with a strict policy", async () => {
    const index = await request("GET", "/console");
    assert.equal(index.status, 200);
    assert.match(String(index.headers["content-type"]), /^text\/html/);
    assert.equal(index.headers["cache-control"], "no-cache");
    const csp = String(index.headers["content-security-policy"]);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(index.headers["x-content-type-options"], "nosniff");
    assert.doesNotMatch(index.body, /<script>|<script [^>]*>[^<]/, "no inline script");
    assert.doesNotMatch(index.body, /https?:\/\//, "nothing from another site");
    const asset = /src="(\/console\/assets\/[^"]+\.js)"/.exec(index.body)![1]!;
    const js = await request("GET", asset);
    assert.equal(js.status, 200);
    assert.match(String(js.headers["content-type"]), /^text\/javascript/);
    assert.match(String(js.headers["cache-control"]), /immutable/);
    for (const route of ["/console/", `/console/instances/${MAIN}`, "/console/tasks?page=2"]) {
      const r = await request("GET", route);
      assert.equal(r.status, 200);
      assert.equal(r.body, index.body);
    }
    assert.equal((await request("GET", "/console/assets/missing-123.js")).status, 404);
    assert.equal((await request("GET", "/console/..%2f..%2fpackage.json")).status, 404);
    assert.equal((await request("GET", "/consolex")).status, 404);
  });

  test("API calls need the console header, this origin and a session", async () => {
    const cookie = await loginAs(KEY);
    const bare = await request("POST", "/console/api/call", { cookie, headers: { "X-CRS-Console": "" }, body: { Action: "DescribeInstances", Region: "ap-guangzhou" } });
    assert.equal(bare.status, 403);
    const foreign = await request("POST", "/console/api/call", { cookie, headers: { Origin: "http://evil.example" }, body: { Action: "DescribeInstances", Region: "ap-guangzhou" } });
    assert.equal(foreign.status, 403);
    const crossSite = await request("POST", "/console/api/call", { cookie, headers: { "Sec-Fetch-Site": "cross-site" }, body: { Action: "DescribeInstances", Region: "ap-guangzhou" } });
    assert.equal(crossSite.status, 403);
    const none = await request("POST", "/console/api/call", { body: { Action: "DescribeInstances", Region: "ap-guangzhou" } });
    assert.equal(none.status, 401);
    // One character of the signature changed (its first: the last may only carry padding bits).
    const at = cookie.indexOf(".") + 1;
    const tampered = `${cookie.slice(0, at)}${cookie[at] === "A" ? "B" : "A"}${cookie.slice(at + 1)}`;
    assert.equal((await request("POST", "/console/api/call", { cookie: tampered, body: { Action: "DescribeInstances", Region: "ap-guangzhou" } })).status, 401);
    const ok = await request("POST", "/console/api/call", { cookie, headers: { Origin: base }, body: { Action: "DescribeInstances", Region: "ap-guangzhou" } });
    assert.equal(ok.status, 200);
    assert.equal(ok.json().Response.TotalCount, 2);
    assert.equal(ok.headers["cache-control"], "no-store");
  });

  test("no account sees another's data, and the key's CAM policy applies", async () => {
    const other = await loginAs(OTHER);
    const theirs = await callAs(other, "DescribeInstanceOverview");
    assert.deepEqual((theirs.InstanceSet as Array<{ InstanceId: string }>).map((i) => i.InstanceId), [FOREIGN]);
    assert.equal((await callAs(other, "DescribeInstanceBackups", { InstanceId: MAIN })).Error?.Code, "ResourceNotFound.InstanceNotExists");
    assert.deepEqual((await callAs(other, "DescribeInstanceOverview", { InstanceId: MAIN })).InstanceSet, [], "another account's instance is not there");
    assert.equal((await callAs(other, "DeleteInstanceBackup", { InstanceId: MAIN, BackupId: "f1000001-0000-4000-8000-000000000000" })).Error?.Code, "ResourceNotFound.InstanceNotExists");

    const limited = await loginAs(LIMITED);
    const mine = await callAs(limited, "DescribeInstanceOverview");
    const set = mine.InstanceSet as Array<{ InstanceId: string; LastBackup: unknown; AutoBackup: unknown }>;
    assert.deepEqual(set.map((i) => i.InstanceId), [MAIN]);
    assert.ok(set[0]!.LastBackup, "DescribeInstanceBackups is allowed");
    assert.equal(set[0]!.AutoBackup, null, "DescribeAutoBackupConfig is not");
    assert.equal((await callAs(limited, "ManualBackupInstance", { InstanceId: MAIN })).Error?.Code, "UnauthorizedOperation.NoCAMAuthed");
    assert.equal((await callAs(limited, "DeleteInstanceBackup", { InstanceId: MAIN, BackupId: "f1000001-0000-4000-8000-000000000000" })).Error?.Code, "UnauthorizedOperation.NoCAMAuthed");
    assert.equal((await callAs(limited, "DescribeInstanceBackups", { InstanceId: TARGET })).Error?.Code, "UnauthorizedOperation.NoCAMAuthed");
    assert.equal((await callAs(limited, "DescribeInstanceOverview", { InstanceId: TARGET })).Error?.Code, "UnauthorizedOperation.NoCAMAuthed");
    assert.equal((await callAs(limited, "DescribeInstanceOverview", { InstanceId: MAIN })).TotalCount, 1);
    const session = (await request("GET", "/console/api/session", { cookie: limited })).json().Response;
    assert.deepEqual(session.Regions && (session.Regions as Array<{ Region: string; InstanceCount: number }>)[0], { Region: "ap-guangzhou", InstanceCount: 1 });
  });

  test("DeleteInstanceBackup answers precise errors", async () => {
    const cookie = await loginAs(KEY);
    assert.equal((await callAs(cookie, "DeleteInstanceBackup", { InstanceId: MAIN, BackupId: "nope" })).Error?.Code, "InvalidParameterValue.BackupNotExists");
    assert.equal((await callAs(cookie, "DeleteInstanceBackup", { InstanceId: MAIN, BackupId: "f1000004-0000-4000-8000-000000000000" })).Error?.Code, "InvalidParameterValue.BackupNotExists", "already deleted (-2)");
    assert.equal((await callAs(cookie, "DeleteInstanceBackup", { InstanceId: MAIN, BackupId: "f1000003-0000-4000-8000-000000000000" })).Error?.Code, "InvalidParameterValue", "expired (-1)");
    assert.equal((await callAs(cookie, "DeleteInstanceBackup", { InstanceId: TARGET, BackupId: "f1000001-0000-4000-8000-000000000000" })).Error?.Code, "InvalidParameterValue.BackupNotExists", "another instance's");
    assert.equal((await callAs(cookie, "DeleteInstanceBackup", { InstanceId: MAIN })).Error?.Code, "MissingParameter");
    const ok = await callAs(cookie, "DeleteInstanceBackup", { InstanceId: MAIN, BackupId: "f1000001-0000-4000-8000-000000000000" });
    assert.equal(ok.Error, undefined);
    assert.equal(ok.Status, -2);
  });

  test("console-only actions are not on the public API", async () => {
    for (const action of ["DeleteInstanceBackup", "DescribeInstanceOverview", "ModifyInstanceBackupSource", "DescribeBackupSources"]) {
      const body = JSON.stringify({ InstanceId: MAIN, BackupId: "f1000002-0000-4000-8000-000000000000" });
      const headers = signV3({ secretId: KEY.secretId, secretKey: KEY.secretKey, action, host: `127.0.0.1:${srv.port}`, body });
      const r = await new Promise<string>((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port: srv.port, method: "POST", path: "/", headers }, (res) => {
          let s = "";
          res.on("data", (c: Buffer) => (s += c.toString()));
          res.on("end", () => resolve(s));
        });
        req.on("error", reject);
        req.end(body);
      });
      assert.equal((JSON.parse(r) as { Response: { Error: { Code: string } } }).Response.Error.Code, "InvalidAction", action);
    }
  });

  test("login: a temporary credential needs its token; a changed key ends its sessions at once; nothing secret is logged", async () => {
    const noToken = await request("POST", "/console/api/login", { body: { SecretId: TEMP.secretId, SecretKey: TEMP.secretKey } });
    assert.equal(noToken.json().Response.Error?.Code, "AuthFailure.TokenFailure");
    assert.equal(noToken.headers["set-cookie"], undefined);
    const unknown = await request("POST", "/console/api/login", { body: { SecretId: "AKIDnobody", SecretKey: "x" } });
    const wrong = await request("POST", "/console/api/login", { body: { SecretId: KEY.secretId, SecretKey: "x" } });
    assert.equal(unknown.json().Response.Error?.Code, wrong.json().Response.Error?.Code, "an unknown SecretId and a wrong key look the same");
    const temp = await loginAs(TEMP);
    assert.equal((await callAs(temp, "DescribeInstances")).TotalCount, 2);

    const cookie = await loginAs(KEY);
    assert.equal((await request("GET", "/console/api/session", { cookie })).status, 200);
    await srv.services.catalog.putCredential({ secretId: KEY.secretId, secretKey: "rotated-key", accountId: KEY.account });
    try {
      assert.equal((await request("GET", "/console/api/session", { cookie })).status, 401);
      assert.equal((await request("POST", "/console/api/call", { cookie, body: { Action: "DescribeInstances", Region: "ap-guangzhou" } })).status, 401);
    } finally {
      await srv.services.catalog.putCredential({ secretId: KEY.secretId, secretKey: KEY.secretKey, accountId: KEY.account });
    }
    for (const secret of [KEY.secretKey, OTHER.secretKey, TEMP.secretKey, TEMP.token, "rotated-key"]) {
      assert.ok(!srv.logs.some((l) => l.includes(secret)), "no secret in the log");
    }
    assert.ok(srv.logs.some((l) => /"action":"DescribeInstances","account":"1300000001","code":"OK".*"msg":"console request"/.test(l)));
  });
});
