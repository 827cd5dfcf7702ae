// The task queue on one node: --concurrency bounds the backups running at once, the others wait queued
// (DescribeTaskInfo says "preparing") and run as room frees; and `serve --workers 2` on a PostgreSQL catalogue
// starts two server processes, each a node of its own, answering on one port.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import pg from "pg";
import { send } from "./support/dataset";
import { freshDatabase, TestDatabase } from "./support/postgres";
import { freePort, RedisProcess, startRedis, waitFor } from "./support/redis";
import { KEY, RedisClient, startTestServer, TestServer } from "./support/server";

const CLI = path.join(__dirname, "..", "src", "cli", "main.js");
const slow: RedisProcess[] = [];
let srv: TestServer;

before(async () => {
  for (let i = 0; i < 3; i++) {
    const r = await startRedis(["--repl-diskless-sync-delay", "0", "--rdb-key-save-delay", "100", "--enable-debug-command", "yes"]);
    await send(r.endpoint, [["DEBUG", "POPULATE", 10_000, `q${i}`, 16]]);
    slow.push(r);
  }
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: slow.map((r, i) => ({ InstanceId: `crs-queue00${i}`, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${r.port}` })),
  }, { rateLimit: 0, concurrency: 1 });
});

after(async () => {
  await srv.close();
  for (const r of slow) r.kill();
});

test("--concurrency 1: one backup runs, the others wait queued, then each runs in turn", async () => {
  const c = srv.client();
  const ids: number[] = [];
  for (let i = 0; i < 3; i++) ids.push((await c.ManualBackupInstance({ InstanceId: `crs-queue00${i}` })).TaskId!);
  const states = async () => Promise.all(ids.map(async (id) => (await c.DescribeTaskInfo({ TaskId: id })).Status));
  let maxRunning = 0;
  let sawQueued = false;
  await waitFor("every backup", async () => {
    const s = await states();
    maxRunning = Math.max(maxRunning, s.filter((x) => x === "running").length);
    if (s.includes("preparing") && s.includes("running")) sawQueued = true;
    if (s.includes("failed")) throw new Error(`a backup failed: ${JSON.stringify(s)}`);
    return s.every((x) => x === "succeed") ? true : undefined;
  }, 120_000, 20);
  assert.equal(maxRunning, 1, "never more than --concurrency at once");
  assert.ok(sawQueued, "the others waited in the queue");
});

test("serve --workers 2 on PostgreSQL: two nodes on one port; the embedded catalogue is refused", async () => {
  const port = await freePort();
  const env = { ...process.env, CRS_SECRET_ID: KEY.secretId, CRS_SECRET_KEY: KEY.secretKey };
  const refused = spawn(process.execPath, [CLI, "serve", "--workers", "2", "--port", String(port), "--data", path.join(srv.dataDir, "w")], { env, stdio: ["ignore", "pipe", "pipe"] });
  let refusal = "";
  refused.stderr!.on("data", (d: Buffer) => (refusal += d.toString()));
  assert.equal(await new Promise((r) => refused.once("exit", r)), 2);
  assert.match(refusal, /--workers needs a catalogue every worker can share/);

  const db: TestDatabase = await freshDatabase("workers");
  const proc = spawn(process.execPath, [CLI, "serve", "--workers", "2", "--port", String(port), "--data", path.join(srv.dataDir, "w"), "--catalog", db.url, "--auto-backups", "off"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => proc.once("exit", r));
  try {
    await waitFor("two workers listening", () => ((out.match(/listening on/g) ?? []).length >= 2 ? true : undefined), 30_000);
    const nodes = new Set([...out.matchAll(/"node":"(serve:[^"]+)"[^\n]*listening on/g)].map((m) => m[1]));
    assert.equal(nodes.size, 2, "each worker is a node of its own");
    const client = new RedisClient({ credential: { secretId: KEY.secretId, secretKey: KEY.secretKey }, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${port}`, protocol: "http://" } } });
    for (let i = 0; i < 6; i++) assert.equal((await client.DescribeInstances({})).TotalCount, 0);
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      // Every migration applied once (the two workers migrated under the advisory lock); counted from the table,
      // so the next migration does not break this test.
      const versions = (await admin.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version")).rows.map((r) => Number(r.version));
      assert.ok(versions.length > 0, "migrations were applied");
      assert.deepEqual(versions, versions.map((_, i) => i + 1), "one row per migration, none missing");
    } finally {
      await admin.end();
    }
  } finally {
    proc.kill("SIGTERM");
    await exited;
    await db.drop();
  }
});
