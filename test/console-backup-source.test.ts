// The console's control for an instance's BackupSource (issue 18), in a real browser against a real server, a
// real master and its replica: the instance page shows the setting, an operator changes it to replica, the
// catalogue and the console API say so, the next backup is taken from the replica (the master does not fork) and
// the backup's details show the node and replication offset it came from. The console-only actions are scoped to
// the account and the key's CAM policy like the rest.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import type { Page } from "playwright-core";
import { send } from "./support/dataset";
import { launchBrowserPage, Browser } from "./support/browser";
import { infoField, RedisProcess, startRedis, waitFor } from "./support/redis";
import { KEY, startTestServer, TestServer } from "./support/server";

const OTHER = { secretId: "AKIDsourceother00000000000000002", secretKey: "other-source-key", account: "1300000002" };
const READER = { secretId: "AKIDsourcereader0000000000000003", secretKey: "reader-source-key" };
const ID = "crs-bsrc0001";
const BARE = "crs-bsrc0002";

let master: RedisProcess;
let replica: RedisProcess;
let srv: TestServer;
let browser: Browser;
let page: Page;
let base: string;

before(async () => {
  const opts = ["--repl-diskless-sync-delay", "0"];
  master = await startRedis(opts);
  await send(master.endpoint, Array.from({ length: 50 }, (_, i) => ["SET", `k:${i}`, `v${i}`]));
  replica = await startRedis([...opts, "--replicaof", "127.0.0.1", String(master.port)]);
  await waitFor("the replica's link up", async () => (await infoField(replica, "replication", "master_link_status")) === "up" || undefined, 30_000, 50);
  // Writes through the link, so the replication offset the backup records is past 0 whatever the timing.
  await send(master.endpoint, Array.from({ length: 10 }, (_, i) => ["SET", `after:${i}`, `v${i}`]));
  await waitFor("the replica in sync", async () => {
    const m = Number(await infoField(master, "replication", "master_repl_offset"));
    return m > 0 && Number(await infoField(replica, "replication", "slave_repl_offset")) === m || undefined;
  }, 30_000, 50);
  srv = await startTestServer({
    Credentials: [
      { SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account },
      { SecretId: OTHER.secretId, SecretKey: OTHER.secretKey, Account: OTHER.account },
      { SecretId: READER.secretId, SecretKey: READER.secretKey, Account: KEY.account, Policy: { Actions: ["DescribeInstances", "DescribeInstanceBackups"] } },
    ],
    Instances: [
      { InstanceId: ID, InstanceName: "orders", Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${master.port}` },
      { InstanceId: BARE, InstanceName: "catalogue only", Region: "ap-guangzhou", Account: KEY.account },
    ],
  }, { schedulerIntervalMs: 0 });
  base = `http://127.0.0.1:${srv.port}`;
  ({ browser, page } = await launchBrowserPage());
});

after(async () => {
  await browser?.close();
  await srv?.close();
  replica?.kill();
  master?.kill();
});

interface Reply { status: number; headers: http.IncomingHttpHeaders; json(): { Response: Record<string, unknown> & { Error?: { Code: string; Message: string } } } }

function request(urlPath: string, body: unknown, cookie?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = http.request({ host: "127.0.0.1", port: srv.port, method: "POST", path: urlPath, headers: { "X-CRS-Console": "1", "Content-Type": "application/json", ...(cookie ? { Cookie: cookie } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const s = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json: () => JSON.parse(s) as ReturnType<Reply["json"]> });
      });
    });
    req.on("error", reject);
    req.end(text);
  });
}

async function loginAs(key: { secretId: string; secretKey: string }): Promise<string> {
  const r = await request("/console/api/login", { SecretId: key.secretId, SecretKey: key.secretKey, Language: "en-US" });
  assert.equal(r.json().Response.Error, undefined);
  return String(r.headers["set-cookie"]).split(";")[0]!;
}

async function callAs(cookie: string, action: string, params: Record<string, unknown> = {}) {
  return (await request("/console/api/call", { Action: action, Region: "ap-guangzhou", Params: params, Language: "en-US" }, cookie)).json().Response;
}

describe("BackupSource in the console", () => {
  test("shown on the instance page, changed to replica there, and the next backup is taken from the replica", async () => {
    await page.goto(`${base}/console`);
    await page.waitForSelector("form.login");
    await page.fill("input[name=secretId]", KEY.secretId);
    await page.fill("input[name=secretKey]", KEY.secretKey);
    await page.click("button[type=submit]");
    await page.waitForSelector("[data-page='instances'][data-ready='1']");
    await page.goto(`${base}/console/instances/${ID}`);
    await page.waitForSelector("[data-testid='backup-source'][data-current='master']");
    assert.equal(await page.textContent("[data-testid='backup-source-shown']"), "Master");
    assert.equal(await page.isChecked("input[name='backup-source'][value='master']"), true);

    await page.check("input[name='backup-source'][value='replica']");
    assert.match(await page.textContent("[data-testid='backup-source-hint']") ?? "", /Only from a healthy replica; with none the backup fails and the master is not forked/);
    await page.click("[data-testid='backup-source'] button[type=submit]");
    await page.waitForSelector("[data-testid='backup-source'][data-current='replica'] .saved");
    assert.equal(await page.textContent("[data-testid='backup-source-shown']"), "Replica");
    // The catalogue and the console API hold it (a fresh load of the page shows it too).
    assert.equal((await srv.services.catalog.instance(ID))!.backupSource, "replica");
    const cookie = await loginAs(KEY);
    const overview = await callAs(cookie, "DescribeInstanceOverview", { InstanceId: ID });
    assert.equal((overview.InstanceSet as Array<{ BackupSource: string }>)[0]!.BackupSource, "replica");
    await page.reload();
    await page.waitForSelector("[data-testid='backup-source'][data-current='replica']");
    assert.equal(await page.isChecked("input[name='backup-source'][value='replica']"), true);

    // The next backup, started from the page: from the replica; the master does not fork.
    const forks = Number(await infoField(master, "stats", "total_forks"));
    await page.click("[data-testid='backup-now']");
    const backup = await waitFor("the backup", async () => {
      const b = (await srv.services.catalog.backupsOfInstance(ID))[0];
      return b && b.status === 2 ? b : undefined;
    }, 30_000, 50);
    assert.deepEqual(backup.source!.map((s) => [s.role, s.node]), [["replica", `127.0.0.1:${replica.port}`]]);
    assert.ok(backup.source![0]!.offset! > 0);
    assert.equal(Number(await infoField(master, "stats", "total_forks")), forks, "the master forked");

    // The backup's details say where it came from.
    const row = page.locator(`tr[data-backup='${backup.backupId}']`);
    await row.waitFor({ timeout: 10_000 });
    await row.locator("button.link").click();
    await page.waitForSelector("[data-testid='backup-origin'][data-ready='1']");
    const origin = page.locator("[data-testid='backup-origin'] li");
    assert.equal(await origin.count(), 1);
    assert.equal(await origin.getAttribute("data-role"), "replica");
    assert.equal(await origin.textContent(), `shard 1: Replica 127.0.0.1:${replica.port} (replication offset ${backup.source![0]!.offset})`);
    if (process.env.CONSOLE_SCREENSHOTS) {
      fs.mkdirSync(process.env.CONSOLE_SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: path.join(process.env.CONSOLE_SCREENSHOTS, "instance-backup-source.png"), fullPage: true });
    }

    // Back to master through the page: the next backup forks the master.
    await page.check("input[name='backup-source'][value='master']");
    await page.click("[data-testid='backup-source'] button[type=submit]");
    await page.waitForSelector("[data-testid='backup-source'][data-current='master'] .saved");
    assert.equal((await srv.services.catalog.instance(ID))!.backupSource, undefined, "master is the default, stored as such");
  });

  test("a catalogue-only instance cannot be given one; the page says why", async () => {
    await page.goto(`${base}/console/instances/${BARE}`);
    await page.waitForSelector("[data-testid='backup-source'][data-current='master']");
    assert.equal(await page.isDisabled("input[name='backup-source'][value='replica']"), true);
    assert.match(await page.textContent("[data-testid='backup-source-hint']") ?? "", /no Redis server registered/);
    const cookie = await loginAs(KEY);
    const r = await callAs(cookie, "ModifyInstanceBackupSource", { InstanceId: BARE, BackupSource: "replica" });
    assert.equal(r.Error?.Code, "FailedOperation.UnSupportError");
    assert.match(r.Error!.Message, /`crs-bsrc0002` has no Redis server registered/);
  });

  test("precise refusals; another account's instance does not exist; a read-only key may not change it", async () => {
    const mine = await loginAs(KEY);
    const bad = await callAs(mine, "ModifyInstanceBackupSource", { InstanceId: ID, BackupSource: "slave" });
    assert.equal(bad.Error?.Code, "InvalidParameterValue");
    assert.equal(bad.Error!.Message, 'Invalid parameter value: `BackupSource` must be one of master, replica, prefer-replica, got "slave"');
    assert.equal((await callAs(mine, "ModifyInstanceBackupSource", { InstanceId: ID })).Error?.Code, "MissingParameter");
    assert.equal((await callAs(mine, "DescribeBackupSources", { InstanceId: ID, BackupId: "nope" })).Error?.Code, "InvalidParameterValue.BackupNotExists");

    const other = await loginAs(OTHER);
    assert.equal((await callAs(other, "ModifyInstanceBackupSource", { InstanceId: ID, BackupSource: "replica" })).Error?.Code, "ResourceNotFound.InstanceNotExists");
    const backupId = (await srv.services.catalog.backupsOfInstance(ID))[0]!.backupId;
    assert.equal((await callAs(other, "DescribeBackupSources", { InstanceId: ID, BackupId: backupId })).Error?.Code, "ResourceNotFound.InstanceNotExists");

    const reader = await loginAs(READER);
    assert.equal((await callAs(reader, "ModifyInstanceBackupSource", { InstanceId: ID, BackupSource: "replica" })).Error?.Code, "UnauthorizedOperation.NoCAMAuthed");
    const seen = await callAs(reader, "DescribeBackupSources", { InstanceId: ID, BackupId: backupId });
    assert.equal((seen.Sources as Array<{ Role: string }>)[0]!.Role, "replica");
    assert.equal((await srv.services.catalog.instance(ID))!.backupSource, undefined, "nothing changed it");
  });
});
