// Several nodes, one service: three `crs-backup serve` processes on one PostgreSQL catalogue and one S3 bucket,
// with the rate limit's buckets in Redis. Any node answers any request and honours any node's download link;
// a node killed while it runs a backup has its task ended by another within the lease; an automatic backup window
// is served once across the nodes; a shared limit of 5/s lets 5 requests of a burst through, wherever they land.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { send } from "./support/dataset";
import { freshDatabase, TestDatabase } from "./support/postgres";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { startS3rver, S3TestServer } from "./support/s3";
import { sdk, serve, Served } from "./support/cli-process";
import { expectSdkError, SdkClient, startTestServer, waitForTask } from "./support/server";

const KEY = { secretId: "AKIDmultinode0000000000000000001", secretKey: "multinodekey" };
const LEASE_S = 3;
const FAST = "crs-node0001";
const SLOW = "crs-node0002";
const AUTO = "crs-node0003";

interface Node extends Served {
  client: SdkClient;
}

let db: TestDatabase;
let s3: S3TestServer;
let shared: RedisProcess; // the rate limit's store
let fast: RedisProcess;
let slow: RedisProcess;
let auto: RedisProcess;
const nodes: Node[] = [];
let base: string;
let tz: string;

/** An Etc/GMT zone in which it is now about noon: the default 00:00-01:00 windows are far away. */
function zoneAtNoon(): string {
  const utcHour = new Date().getUTCHours();
  let offset = 12 - utcHour; // local = utc + offset
  if (offset > 14) offset -= 24;
  if (offset < -12) offset += 24;
  // Etc/GMT-N is UTC+N.
  return offset === 0 ? "UTC" : `Etc/GMT${offset > 0 ? "-" : "+"}${Math.abs(offset)}`;
}

async function startNode(i: number, extra: string[] = []): Promise<Node> {
  const env = { ...process.env, CRS_SECRET_ID: "", CRS_SECRET_KEY: "" };
  const node = await serve(["--data", path.join(base, `node-${i}`), "--seed", path.join(base, "seed.json"),
    "--catalog", db.url, "--storage", "s3://crs/multi", "--s3-endpoint", s3.endpoint, "--s3-path-style", "--s3-key-file", path.join(base, "s3key.json"),
    "--lease-seconds", String(LEASE_S), "--scheduler-interval", "1", "--tz", tz, "--auto-backups", "on",
    "--rate-limit", "0", "--rate-limit", "DescribeInstances=5", "--rate-limit-store", `redis://127.0.0.1:${shared.port}`, ...extra], env, { timeoutMs: 30_000 });
  return { ...node, client: sdk(node.port, KEY.secretId, KEY.secretKey, "en-US") };
}

function get(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    }).on("error", reject);
  });
}

before(async () => {
  tz = zoneAtNoon();
  base = fs.mkdtempSync(path.join(os.tmpdir(), "crs-multinode-"));
  [db, s3, shared, fast, slow, auto] = await Promise.all([
    freshDatabase("multinode"), startS3rver(),
    startRedis(), startRedis(["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"]), startRedis(["--repl-diskless-sync-delay", "0", "--rdb-key-save-delay", "200", "--enable-debug-command", "yes"]), startRedis(["--repl-diskless-sync-delay", "0"]),
  ]);
  await s3.createBucket("crs");
  fs.writeFileSync(path.join(base, "s3key.json"), JSON.stringify(s3.credentials), { mode: 0o600 });
  await send(fast.endpoint, [["DEBUG", "POPULATE", 5000, "f", 32]]);
  await send(slow.endpoint, [["DEBUG", "POPULATE", 20_000, "s", 16]]);
  await send(auto.endpoint, [["SET", "a", "1"]]);
  fs.writeFileSync(path.join(base, "seed.json"), JSON.stringify({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey }],
    Instances: [
      { InstanceId: FAST, Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${fast.port}` },
      { InstanceId: SLOW, Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${slow.port}` },
      { InstanceId: AUTO, Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${auto.port}` },
    ],
  }));
  // One node first (it migrates the new database), then the two others together.
  nodes.push(await startNode(1));
  nodes.push(...(await Promise.all([startNode(2), startNode(3)])));
});

after(async () => {
  for (const n of nodes) if (n.proc.exitCode === null) n.proc.kill("SIGTERM");
  await Promise.all(nodes.map((n) => n.exit));
  for (const r of [shared, fast, slow, auto]) r?.kill();
  await s3?.stop();
  await db?.drop();
});

test("a backup asked of node 1 is listed on node 2 and downloadable through node 3, by a link any node honours", async () => {
  const { TaskId } = await nodes[0]!.client.ManualBackupInstance({ InstanceId: FAST });
  const t = await waitForTask(nodes[1]!.client, TaskId!);
  assert.equal(t.Status, "succeed", t.TaskMessage);
  const listed = await nodes[1]!.client.DescribeInstanceBackups({ InstanceId: FAST, Status: [2] });
  assert.equal(listed.TotalCount, 1);
  const backupId = listed.BackupSet![0]!.BackupId!;
  const url = (await nodes[2]!.client.DescribeBackupUrl({ InstanceId: FAST, BackupId: backupId })).BackupInfos![0]!.DownloadUrl!;
  assert.ok(url.includes(`:${nodes[2]!.port}/`), url);
  const viaThree = await get(url);
  assert.equal(viaThree.status, 200);
  assert.equal(viaThree.body.subarray(0, 5).toString(), "REDIS");
  // The same link, on node 1: the signing secret is the catalogue's, shared by every node.
  const viaOne = await get(url.replace(`:${nodes[2]!.port}/`, `:${nodes[0]!.port}/`));
  assert.equal(viaOne.status, 200);
  assert.equal(crypto.createHash("sha256").update(viaOne.body).digest("hex"), crypto.createHash("sha256").update(viaThree.body).digest("hex"));
});

/** The local ports of the TCP sockets process `pid` holds (from /proc: its fds' socket inodes, /proc/net/tcp's ports). */
function localPortsOf(pid: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed since the listing
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]!);
  }
  const ports = new Set<number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of fs.readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && inodes.has(f[9]!)) ports.add(parseInt(f[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}

test("each node opens its catalogue pool (10 connections, named crs-backup) at start and keeps it, plus its LISTEN connection", async () => {
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    // Between requests: a pool opened on demand would hold the one or two connections its last requests used.
    await nodes[1]!.client.DescribeInstanceBackups({ InstanceId: FAST });
    const rows = (await admin.query<{ client_port: number; application_name: string }>(
      "SELECT client_port, application_name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")).rows;
    for (const n of nodes) {
      const ports = localPortsOf(n.proc.pid!);
      const mine = rows.filter((r) => ports.has(r.client_port));
      assert.equal(mine.length, 11, `node pid ${n.proc.pid}: ${mine.length} connections to the catalogue`);
      assert.ok(mine.every((r) => r.application_name === "crs-backup"), JSON.stringify(mine));
    }
  } finally {
    await admin.end();
  }
});

test("SIGKILL of the node running a backup: another node ends its task within the lease; nothing stays at Status 1", async () => {
  const asked = nodes[0]!;
  const { TaskId } = await asked.client.ManualBackupInstance({ InstanceId: SLOW });
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  let owner: string;
  try {
    owner = await waitFor("the task to be claimed", async () => {
      const r = await admin.query<{ owner: string | null; status: string }>("SELECT owner, status FROM tasks WHERE task_id = $1", [TaskId]);
      return r.rows[0]?.status === "running" && r.rows[0].owner ? r.rows[0].owner : undefined;
    }, 10_000, 20);
  } finally {
    await admin.end();
  }
  const pid = Number(owner.split(":")[2]);
  const victim = nodes.find((n) => n.proc.pid === pid);
  assert.ok(victim, `the owner ${owner} is one of our nodes`);
  const survivor = nodes.find((n) => n !== victim)!;
  await waitFor("bytes flowing", async () => ((await survivor.client.DescribeInstanceBackups({ InstanceId: SLOW, Status: [1] })).TotalCount === 1 ? true : undefined), 10_000, 50);
  const killedAt = Date.now();
  victim.proc.kill("SIGKILL");
  await victim.exit;
  const t = await waitForTask(survivor.client, TaskId!, (LEASE_S + 10) * 1000);
  const took = Date.now() - killedAt;
  assert.equal(t.Status, "failed");
  assert.match(t.TaskMessage!, /interrupted/);
  assert.ok(took < (LEASE_S + 3) * 1000, `ended ${took} ms after the kill (lease ${LEASE_S} s)`);
  assert.equal((await survivor.client.DescribeInstanceBackups({ InstanceId: SLOW, Status: [1] })).TotalCount, 0);
  assert.equal((await survivor.client.DescribeInstanceBackups({ InstanceId: SLOW })).TotalCount, 0);
  // A replacement node joins; the instance can be backed up again.
  nodes[nodes.indexOf(victim)] = await startNode(4);
  const again = await survivor.client.ManualBackupInstance({ InstanceId: SLOW });
  assert.equal((await waitForTask(survivor.client, again.TaskId!)).Status, "succeed");
});

test("an automatic backup window is served once across the nodes", async () => {
  // A window around now (local noon in the nodes' zone); every node's scheduler ticks each second.
  await nodes[0]!.client.ModifyAutoBackupConfig({ InstanceId: AUTO, WeekDays: ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"], TimePeriod: "10:00-14:00" });
  const first = await waitFor("the automatic backup", async () => {
    const list = await nodes[1]!.client.DescribeTaskList({ InstanceId: AUTO, TaskTypes: ["017"] });
    return list.TotalCount! >= 1 ? list : undefined;
  }, 15_000, 100);
  await waitForTask(nodes[2]!.client, first.Tasks![0]!.TaskId!);
  // More scheduler passes, driven here on a fourth node over the same catalogue while the three tick each
  // second: none queues another backup for the window.
  const fourth = await startTestServer({}, {
    rateLimit: 0, catalog: db.url, storage: "s3://crs/multi", tz, schedulerIntervalMs: 0, autoBackups: true,
    s3: { endpoint: s3.endpoint, region: "us-east-1", pathStyle: true, keyFile: path.join(base, "s3key.json") },
  });
  try {
    for (let i = 0; i < 3; i++) assert.deepEqual((await fourth.services.scheduler.tick()).started, []);
  } finally {
    await fourth.close();
  }
  const after = await nodes[2]!.client.DescribeTaskList({ InstanceId: AUTO, TaskTypes: ["017"] });
  assert.equal(after.TotalCount, 1);
  assert.equal((await nodes[0]!.client.DescribeInstanceBackups({ InstanceId: AUTO })).TotalCount, 1);
});

test("a shared limit of 5/s: a burst spread over the three nodes gets 5 through", async () => {
  // A full bucket: the shared buckets are dropped (a missing bucket is a full one).
  const [keys] = (await send(shared.endpoint, [["KEYS", "crs:ratelimit:*"]])) as Buffer[][];
  if (keys!.length) await send(shared.endpoint, [["DEL", ...keys!.map((k) => k.toString("latin1"))]]);
  const started = Date.now();
  const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => nodes[i % 3]!.client.DescribeInstances({ Limit: 1 })));
  const elapsed = (Date.now() - started) / 1000;
  const ok = results.filter((r) => r.status === "fulfilled").length;
  const limited = results.filter((r) => r.status === "rejected" && (r.reason as { code?: string }).code === "RequestLimitExceeded").length;
  assert.equal(ok + limited, 30);
  assert.ok(ok >= 5 && ok <= 5 + Math.floor(elapsed * 5), `${ok} got through in ${elapsed.toFixed(2)} s`);
  // Other actions are not limited (the limit is per action).
  await nodes[0]!.client.DescribeInstanceBackups({ InstanceId: FAST });
  await expectSdkError(nodes[1]!.client.DescribeInstanceBackups({ InstanceId: "crs-00000000" }), "ResourceNotFound.InstanceNotExists");
});
