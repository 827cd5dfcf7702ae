// The console's point-in-time view in a real browser (Debian's chromium through playwright-core) against a real
// server streaming a real master: the instance page shows the restorable range and its gaps (none, then the
// outage of a stopped service), the last proof (a scheduled base every 3 s, proved), and the clone-to-a-second
// form — or, on a server without CloneInstances, the note saying so. An instance with second-level backup off
// says that. The range call goes through the console's API path with the session (another account's instance
// is not found).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { actions } from "../src/actions";
import { send } from "./support/dataset";
import { launchBrowserPage, Browser } from "./support/browser";
import path from "node:path";
import { RespConnection } from "../src/redis/client/resp";
import { processesIn } from "../src/instances/local";
import { freePort, RedisProcess, startRedis, waitFor } from "./support/redis";
import { KEY, SdkClient, startTestServer, TestServer } from "./support/server";

const OTHER = { secretId: "AKIDconsolepitrother00000000002", secretKey: "other-console-pitr-key", account: "1300000052" };
const ID = { on: "crs-cpitr001", off: "crs-cpitr002", foreign: "crs-cpitr003" };

let master: RedisProcess;
let srv: TestServer;
let sdk: SdkClient;
let browser: Browser;
let page: Page;
let base: string;
let seed: object;
let clonePorts: { from: number; to: number };
const cloneDirs: string[] = [];

before(async () => {
  master = await startRedis(["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]);
  await send(master.endpoint, Array.from({ length: 200 }, (_, i) => ["SET", `k:${i}`, `v${i}`]));
  const url = `redis://127.0.0.1:${master.port}`;
  seed = {
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }, { SecretId: OTHER.secretId, SecretKey: OTHER.secretKey, Account: OTHER.account }],
    Instances: [
      { InstanceId: ID.on, InstanceName: "streamed", Region: "ap-guangzhou", Account: KEY.account, Redis: url },
      { InstanceId: ID.off, InstanceName: "plain", Region: "ap-guangzhou", Account: KEY.account, Redis: url },
      { InstanceId: ID.foreign, InstanceName: "theirs", Region: "ap-guangzhou", Account: OTHER.account, Redis: url },
    ],
  };
  const p = Math.min(await freePort(), 65000);
  clonePorts = { from: p, to: p + 5 };
  srv = await startTestServer(seed, { schedulerIntervalMs: 0, rateLimit: 0, pitrBaseEveryMs: 3000, clonePorts });
  sdk = srv.client({ language: "en-US" });
  base = `http://127.0.0.1:${srv.port}`;
  ({ browser, page } = await launchBrowserPage());
});

after(async () => {
  if (process.env.H17B_PROBE) (await import("node:fs")).writeFileSync(process.env.H17B_PROBE, srv.logs.filter((l) => /stream proof|scheduled stream base|digest/.test(l)).join("\n"));
  await browser?.close();
  await srv?.close();
  for (const pid of cloneDirs.flatMap((d) => processesIn(d))) process.kill(pid, "SIGKILL");
  master?.kill();
});

async function login(): Promise<void> {
  await page.goto(`${base}/console`);
  // After a restart on the same data directory the session may still hold (sessions are in the catalogue).
  await page.waitForSelector("form.login, [data-page='instances'][data-ready='1']", { timeout: 10_000 });
  if (!(await page.locator("form.login").count())) return;
  await page.fill("input[name=secretId]", KEY.secretId);
  await page.fill("input[name=secretKey]", KEY.secretKey);
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-page='instances'][data-ready='1']", { timeout: 10_000 });
}

async function pitrText(testId: string): Promise<string> {
  return (await page.locator(`[data-testid='${testId}']`).textContent({ timeout: 10_000 })) ?? "";
}

test("the instance page shows the restorable range, no gaps and the last proof; without CloneInstances the clone form says why", async () => {
  await sdk.ModifyInstanceBackupMode({ InstanceId: ID.on, BackupMode: "SecondLevelBackup" });
  const proved = await waitFor("a proved scheduled base", async () => (await srv.services.catalog.streamBases(ID.on, 0)).find((b) => b.proof), 60_000, 200);
  assert.equal(proved.proof!.ok, true, proved.proof!.detail);
  const first = (await srv.services.catalog.streamBases(ID.on, 0))[0]!;
  await login();
  await page.goto(`${base}/console/instances/${ID.on}`);
  const range = await waitFor("the range", async () => {
    const text = await pitrText("pitr-range");
    return /Restorable from \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} to \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/.test(text) ? text : undefined;
  }, 10_000, 100);
  assert.ok(range.includes(srv.services.time.format(Math.ceil(first.takenAt / 1000) * 1000)), `${range} starts at the first base`);
  assert.equal(await pitrText("pitr-gaps"), "No gaps in the range.");
  assert.equal(await page.locator(".pitr-bar").count(), 1);
  assert.equal(await page.locator(".pitr-bar .pitr-gap").count(), 0);
  const latest = (await srv.services.catalog.streamBases(ID.on, 0)).filter((b) => b.proof).at(-1)!;
  const shown = await pitrText("pitr-proof");
  assert.match(shown, latest.proof!.ok ? /Last proof: the stream is complete/ : /Last proof: (FAILED|not run)/, latest.proof!.detail);
  assert.ok(latest.proof!.ok || latest.backupId !== proved.backupId, latest.proof!.detail);
  if (actions.has("CloneInstances")) {
    assert.equal(await page.locator("[data-testid='pitr-clone']").count(), 1);
    // Clone to a second that is stored: a new instance, listed, ready, holding the master's keys.
    await send(master.endpoint, [["SET", "before-clone", "yes"]]);
    const at = Math.floor(Date.now() / 1000);
    await waitFor("the second stored", async () => ((await srv.services.catalog.lastStreamSegment(ID.on, 0))?.toMs ?? 0) > (at + 1) * 1000 ? true : undefined, 20_000, 100);
    await page.fill("[data-testid='pitr-clone'] input[name=at]", srv.services.time.format(at * 1000));
    await page.click("[data-testid='pitr-clone-submit']");
    const created = await pitrText("pitr-clone-created");
    const id = /crs-[a-z0-9]{8}/.exec(created)?.[0];
    assert.ok(id, created);
    cloneDirs.push(path.join(srv.dataDir, "data", "instances", id));
    const clone = await waitFor("the clone ready", async () => (await sdk.DescribeInstances({ InstanceId: id })).InstanceSet!.find((i) => i.Status === 2), 60_000, 100);
    const conn = await RespConnection.connect({ host: clone.WanIp!, port: clone.Port! });
    try {
      assert.equal(String(await conn.command("GET", "before-clone")), "yes");
      assert.equal(String(await conn.command("GET", "k:7")), "v7");
    } finally {
      conn.close();
    }
  } else {
    assert.match(await pitrText("pitr-clone-unavailable"), /no CloneInstances; use crs-backup restore --at/);
    assert.equal(await page.locator("[data-testid='pitr-clone']").count(), 0);
  }
  // An instance with second-level backup off says so.
  await page.goto(`${base}/console/instances/${ID.off}`);
  await page.waitForSelector("[data-testid='pitr']");
  assert.match(await page.locator("[data-testid='pitr']").textContent() ?? "", /Second-level backup is off for this instance/);
});

test("an outage of the stream shows as a gap in the list and on the bar", async () => {
  const dataDir = srv.dataDir;
  await srv.close();
  const stoppedAt = Date.now();
  // The outage itself, with writes going on (an idle master's stream has nothing to lose: no gap then).
  for (let i = 0; Date.now() - stoppedAt < 4000; i++) {
    await send(master.endpoint, [["SET", `during:${i}`, "x"]]);
    await new Promise((r) => setTimeout(r, 20));
  }
  srv = await startTestServer(seed, { schedulerIntervalMs: 0, rateLimit: 0, pitrBaseEveryMs: 3000, clonePorts }, dataDir);
  base = `http://127.0.0.1:${srv.port}`;
  await waitFor("the stream back", async () => {
    const last = await srv.services.catalog.lastStreamSegment(ID.on, 0);
    return last && last.toMs > Date.now() - 1500 ? last : undefined;
  }, 20_000, 200);
  await login();
  await page.goto(`${base}/console/instances/${ID.on}`);
  const gaps = await waitFor("a gap listed", async () => {
    const n = await page.locator("[data-testid='pitr-gaps'] li").count();
    return n > 0 ? page.locator("[data-testid='pitr-gaps'] li").allTextContents() : undefined;
  }, 10_000, 100);
  assert.equal(gaps.length, 1, JSON.stringify(gaps));
  const [from] = gaps[0]!.split(" – ");
  const startMs = srv.services.time.parse(from!)!;
  assert.ok(Math.abs(startMs - stoppedAt) < 3000, `gap starts ${from}, the service stopped at ${srv.services.time.format(stoppedAt)}`);
  assert.equal(await page.locator(".pitr-bar .pitr-gap").count(), 1);
});

test("the range call through the console's API path: another account's instance is not found", async () => {
  const r = await page.evaluate(async (id) => {
    const res = await fetch("/console/api/call", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", "X-CRS-Console": "1" }, body: JSON.stringify({ Action: "DescribeSecondLevelBackupRange", Region: "ap-guangzhou", Params: { InstanceId: id }, Language: "en-US" }) });
    return res.json() as Promise<{ Response: { Error?: { Code: string } } }>;
  }, ID.foreign);
  assert.equal(r.Response.Error?.Code, "ResourceNotFound.InstanceNotExists");
});
