// CloneInstances end to end, with real processes and the official SDK: a plain clone of a backup (DEBUG DIGEST
// equal to the source's at the backup), a clone at a second of the stream with a writer recording ack times,
// DescribeInstances Status 1 -> 2 with WanIp/Port, NoAuth vs Password, the clone backed up, the service restarted
// (the clone still serving; killed, it is started again with its data), `crs-backup instance remove`, a SIGKILL
// of the service while a clone loads (no redis-server left, the task failed, nothing listed), and the refusals.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { RespConnection, RespValue } from "../src/redis/client/resp";
import { LocalTime } from "../src/protocol/time";
import { send } from "./support/dataset";
import { RedisProcess, startRedis, waitFor, freePort } from "./support/redis";
import { expectSdkError, KEY, SdkClient, seedCredentials, seedInstance, startTestServer, TestServer, waitForTask } from "./support/server";
import { cleanEnv, cli, killServed, sdk, seededDir, serve } from "./support/cli-process";
import { processesIn } from "../src/instances/local";

const DEBUG = ["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"];
const OTHER = { secretId: "AKIDcloneother0000000000000000001", secretKey: "cloneothersecret0000000000000001", account: "1300000778" };
const ID = { source: "crs-clone001", plain: "crs-clone002", foreign: "crs-clone003" };
const tz = new LocalTime("Asia/Shanghai");

let master: RedisProcess;
let plain: RedisProcess;
let srv: TestServer;
let seed: object;
let c: SdkClient;
let ports: { from: number; to: number };
const clones: string[] = [];
/** Clone directories of the served (child) processes, for the after hook. */
const killDirs: string[] = [];

const text = (v: RespValue): string | null => (v === null ? null : Buffer.isBuffer(v) ? v.toString() : String(v));
const cloneArgs = { GoodsNum: 1, ZoneId: 100003, BillingMode: 0, Period: 1, SecurityGroupIdList: [] as string[] };

async function digest(ep: { host: string; port: number; password?: string }): Promise<string> {
  const conn = await RespConnection.connect(ep);
  try {
    return text(await conn.command("DEBUG", "DIGEST"))!;
  } finally {
    conn.close();
  }
}

async function backupOf(instanceId: string): Promise<string> {
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: instanceId, Remark: "for a clone", StorageDays: 0 });
  const t = await waitForTask(c, TaskId!);
  assert.equal(t.Status, "succeed", t.TaskMessage);
  const page = await c.DescribeInstanceBackups({ InstanceId: instanceId, Status: [2] });
  return page.BackupSet!.find((b) => b.Remark === "for a clone")!.BackupId!;
}

/** Waits until a clone is ready (Status 2); every Status seen on the way. */
async function ready(instanceId: string): Promise<{ seen: number[]; host: string; port: number }> {
  const seen: number[] = [];
  const i = await waitFor(`${instanceId} ready`, async () => {
    const set = (await c.DescribeInstances({ InstanceId: instanceId })).InstanceSet!;
    if (set[0]) seen.push(set[0].Status!);
    return set[0]?.Status === 2 ? set[0] : undefined;
  }, 60_000, 20);
  return { seen, host: i.WanIp!, port: i.Port! };
}

/** Pids of live processes running in a clone's directory (of the in-process server unless `data` is given). */
function markedPids(instanceId: string, data = path.join(srv.dataDir, "data")): number[] {
  return processesIn(path.join(data, "instances", instanceId));
}

function canConnect(port: number): Promise<boolean> {
  return RespConnection.connect({ host: "127.0.0.1", port }, 1000).then((conn) => (conn.close(), true), () => false);
}

before(async () => {
  [master, plain] = await Promise.all([startRedis(DEBUG), startRedis(DEBUG)]);
  await send(master.endpoint, Array.from({ length: 2000 }, (_, i) => ["SET", `base:${i}`, `b${i}`]));
  await send(plain.endpoint, [...Array.from({ length: 500 }, (_, i) => ["HSET", `h:${i}`, "f", `v${i}`]), ["SET", "ttl", "x", "EX", 100000], ["SELECT", 2], ["SET", "db2", "two"]]);
  seed = {
    Credentials: seedCredentials(KEY, OTHER),
    Instances: [seedInstance(ID.source, "source", KEY, master.port), seedInstance(ID.plain, "plain", KEY, plain.port), seedInstance(ID.foreign, "foreign", OTHER, plain.port)],
  };
  // A range of our own (other tests and engineers run on this machine too).
  const p = await freePort();
  ports = { from: Math.min(p, 65000), to: Math.min(p, 65000) + 20 };
  srv = await startTestServer(seed, { rateLimit: 0, clonePorts: ports, schedulerIntervalMs: 0 });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  killServed();
  await srv?.close();
  for (const id of clones) for (const pid of markedPids(id)) process.kill(pid, "SIGKILL");
  for (const pid of killDirs.flatMap((d) => processesIn(d))) process.kill(pid, "SIGKILL");
  master?.kill();
  plain?.kill();
});

test("a plain clone of a backup: Status 1 then 2, its address, the source's data set at the backup (DEBUG DIGEST), NoAuth", async () => {
  const backupId = await backupOf(ID.plain);
  const want = await digest(plain.endpoint);
  const out = await c.CloneInstances({ ...cloneArgs, InstanceId: ID.plain, BackupId: backupId, NoAuth: true, InstanceName: "plain-clone" });
  assert.equal(out.InstanceIds!.length, 1);
  const id = out.InstanceIds![0]!;
  clones.push(id);
  assert.match(id, /^crs-[a-z0-9]{8}$/);
  const first = (await c.DescribeInstances({ InstanceId: id })).InstanceSet![0]!;
  assert.ok(first.Status === 1 || first.Status === 2, `Status ${first.Status}`);
  const { host, port } = await ready(id);
  assert.equal(host, "127.0.0.1");
  assert.ok(port >= ports.from && port <= ports.to, `port ${port} in ${ports.from}-${ports.to}`);
  const info = (await c.DescribeInstances({ InstanceId: id })).InstanceSet![0]!;
  assert.equal(info.InstanceName, "plain-clone");
  assert.equal(info.NoAuth, true);
  assert.equal(await digest({ host, port }), want);
  const task = await c.DescribeTaskInfo({ TaskId: Number(out.DealId) });
  assert.equal(task.TaskType, "FLOW_CLONEBACKUP");
  assert.equal(task.Status, "succeed");
  // Owner-only, and persisted by the append-only file.
  const dir = path.join(srv.dataDir, "data", "instances", id);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.match(fs.readFileSync(path.join(dir, "redis.conf"), "utf8"), /^appendonly yes/m);
});

test("a clone with a Password needs AUTH; it is backed up like any instance", async () => {
  const backupId = await backupOf(ID.plain);
  const out = await c.CloneInstances({ ...cloneArgs, InstanceId: ID.plain, BackupId: backupId, Password: "Clone-pass1" });
  const id = out.InstanceIds![0]!;
  clones.push(id);
  const { port } = await ready(id);
  assert.equal((await c.DescribeInstances({ InstanceId: id })).InstanceSet![0]!.NoAuth, false);
  const anon = await RespConnection.connect({ host: "127.0.0.1", port });
  await assert.rejects(anon.command("GET", "h:1"), /NOAUTH/);
  anon.close();
  const conn = await RespConnection.connect({ host: "127.0.0.1", port, password: "Clone-pass1" });
  assert.equal(text(await conn.command("HGET", "h:1", "f")), "v1");
  conn.close();
  const cloneBackup = await backupOf(id);
  assert.ok(cloneBackup);
});

test("refusals: GoodsNum, the password rules, NoAuth, another account's instance and backup, CloneTime without second-level backup", async () => {
  const backupId = await backupOf(ID.plain);
  const base = { ...cloneArgs, InstanceId: ID.plain, BackupId: backupId };
  let e = await expectSdkError(c.CloneInstances({ ...base, GoodsNum: 11, NoAuth: true }), "InvalidParameterValue");
  assert.match(e.message, /GoodsNum/);
  e = await expectSdkError(c.CloneInstances({ ...base, Password: "short1" }), "InvalidParameterValue.PasswordRuleError");
  assert.match(e.message, /Password.*8 to 64/);
  e = await expectSdkError(c.CloneInstances({ ...base, Password: "alllowercase" }), "InvalidParameterValue.PasswordRuleError");
  assert.match(e.message, /at least two/);
  e = await expectSdkError(c.CloneInstances({ ...base }), "InvalidParameterValue.PasswordEmpty");
  assert.match(e.message, /NoAuth/);
  await expectSdkError(c.CloneInstances({ ...base, InstanceId: ID.foreign, NoAuth: true }), "ResourceNotFound.InstanceNotExists");
  const other = srv.client({ secretId: OTHER.secretId, secretKey: OTHER.secretKey, language: "en-US" });
  await expectSdkError(other.CloneInstances({ ...base, InstanceId: ID.foreign, NoAuth: true }), "InvalidParameterValue.BackupNotExists");
  e = await expectSdkError(c.CloneInstances({ ...base, NoAuth: true, CloneTime: tz.format(Date.now() - 5000) }), "FailedOperation.UnSupportError");
  assert.match(e.message, /CloneTime/);
  e = await expectSdkError(c.CloneInstances({ ...base, NoAuth: true, CloneTime: "yesterday" }), "InvalidParameterValue");
  assert.match(e.message, /CloneTime/);
});

test("a clone at a second of the stream: acknowledged writes before it are there, writes sent after it are not, no transaction cut", async () => {
  await c.ModifyInstanceBackupMode({ InstanceId: ID.source, BackupMode: "SecondLevelBackup" });
  await waitFor("the stream's base", async () => (await srv.services.catalog.streamBases(ID.source, 0))[0], 30_000, 100);
  const conn = await RespConnection.connect(master.endpoint);
  const ops: Array<{ i: number; sent: number; acked: number }> = [];
  const t0 = Date.now();
  for (let i = 0; Date.now() - t0 < 3000; i++) {
    const sent = Date.now();
    await conn.command("MULTI");
    await conn.command("SET", `m:${i}`, "a");
    await conn.command("INCRBY", `c:${i}`, 7);
    await conn.command("EXEC");
    ops.push({ i, sent, acked: Date.now() });
    await new Promise((r) => setTimeout(r, 3));
  }
  conn.close();
  const sec = Math.floor((t0 + 1500) / 1000);
  const cutoff = (sec + 1) * 1000;
  const info = await waitFor("the second covered", async () => {
    const r = await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: sec });
    return r.BackupId ? r : undefined;
  }, 20_000, 200);
  // Not covered: far in the past (before second-level backup started).
  const e = await expectSdkError(c.CloneInstances({ ...cloneArgs, InstanceId: ID.source, BackupId: info.BackupId!, NoAuth: true, CloneTime: tz.format(t0 - 3_600_000) }), "InvalidParameterValue");
  assert.match(e.message, /CloneTime.*before it/);
  const out = await c.CloneInstances({ ...cloneArgs, InstanceId: ID.source, BackupId: info.BackupId!, NoAuth: true, CloneTime: tz.format(sec * 1000) });
  const id = out.InstanceIds![0]!;
  clones.push(id);
  const { port } = await ready(id);
  const replies = await send({ host: "127.0.0.1", port }, ops.flatMap((o) => [["GET", `m:${o.i}`], ["GET", `c:${o.i}`]]));
  let inside = 0;
  let outside = 0;
  for (const [n, op] of ops.entries()) {
    const a = text(replies[2 * n]!);
    const b = text(replies[2 * n + 1]!);
    assert.ok((a === "a" && b === "7") || (a === null && b === null), `op ${op.i}: half a transaction (${a}, ${b})`);
    if (op.acked < cutoff - 200) {
      assert.equal(a, "a", `op ${op.i} acknowledged before the cut is missing`);
      inside++;
    } else if (op.sent >= cutoff) {
      assert.equal(a, null, `op ${op.i} sent after the cut is in the clone`);
      outside++;
    }
  }
  assert.ok(inside > 10 && outside > 10, `${inside} inside, ${outside} outside`);
  assert.equal(text((await send({ host: "127.0.0.1", port }, [["GET", "base:7"]]))[0]!), "b7");
  const task = await c.DescribeTaskInfo({ TaskId: Number(out.DealId) });
  assert.match(task.TaskMessage!, /unit\(s\) of the stream/);
});

test("a restart of the service keeps the clones serving; a clone that dies is started again with its data", async () => {
  const id = clones[0]!;
  const { port } = await ready(id);
  const want = await digest({ host: "127.0.0.1", port });
  const dataDir = srv.dataDir;
  await srv.close();
  assert.ok(await canConnect(port), "the clone outlives a stop of the service");
  srv = await startTestServer(seed, { rateLimit: 0, clonePorts: ports, schedulerIntervalMs: 0 }, dataDir);
  c = srv.client({ language: "en-US" });
  const [pid] = markedPids(id);
  assert.ok(pid, "the clone's process is found");
  process.kill(pid, "SIGKILL");
  await waitFor("the clone started again", async () => {
    const pids = markedPids(id);
    return pids.length && !pids.includes(pid) && (await canConnect(port)) ? true : undefined;
  }, 20_000, 100);
  const again = await waitFor("the clone loaded", () => digest({ host: "127.0.0.1", port }).catch(() => undefined), 20_000, 100);
  assert.equal(again, want);
});

test("crs-backup instance remove stops the clone, deletes its directory and its registration", async () => {
  const id = clones.pop()!;
  const { port } = await ready(id);
  const r = cli(["instance", "remove", id, "--data", path.join(srv.dataDir, "data")], cleanEnv());
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.deepEqual(markedPids(id), []);
  assert.equal(await canConnect(port), false);
  assert.equal(fs.existsSync(path.join(srv.dataDir, "data", "instances", id)), false);
  assert.equal((await c.DescribeInstances({ InstanceId: id })).TotalCount, 0);
  assert.equal(await srv.services.catalog.provisioned(id), undefined);
});

test("a SIGKILL of the service while a clone loads: at restart the task failed, the clone gone, no redis-server left", async () => {
  const dir = seededDir("crs-clone-kill-", seed);
  const p = await freePort();
  const range = `${Math.min(p, 65000)}-${Math.min(p, 65000) + 5}`;
  const args = ["--data", dir.data, "--seed", dir.seed, "--rate-limit", "0", "--clone-ports", range, "--auto-backups", "off"];
  const first = await serve(args, cleanEnv({ CRS_TEST_CRASH_AT: "clone-loading" }));
  const client = sdk(first.port, KEY.secretId, KEY.secretKey);
  const { TaskId } = await client.ManualBackupInstance({ InstanceId: ID.plain, Remark: "k", StorageDays: 0 });
  await waitForTask(client, TaskId!);
  const backupId = (await client.DescribeInstanceBackups({ InstanceId: ID.plain, Status: [2] })).BackupSet![0]!.BackupId!;
  const out = await client.CloneInstances({ ...cloneArgs, InstanceId: ID.plain, BackupId: backupId, NoAuth: true });
  const id = out.InstanceIds![0]!;
  killDirs.push(path.join(dir.data, "instances", id));
  await first.exit;
  assert.equal(first.signal(), "SIGKILL");
  assert.ok(markedPids(id, dir.data).length > 0, "the clone's redis-server was started before the crash");
  const second = await serve(args, cleanEnv());
  const client2 = sdk(second.port, KEY.secretId, KEY.secretKey);
  const task = await waitForTask(client2, Number(out.DealId));
  assert.equal(task.Status, "failed");
  assert.match(task.TaskMessage!, /interrupted.*half-made clone .* removed/);
  assert.deepEqual(markedPids(id, dir.data), []);
  assert.equal(fs.existsSync(path.join(dir.data, "instances", id)), false);
  assert.equal((await client2.DescribeInstances({ InstanceId: id })).TotalCount, 0);
  await second.stop();
});

test("the clone replay's reply counter: nested arrays, nulls, errors, fed whole or byte by byte", async () => {
  const { ReplyCounter } = await import("../src/redis/stream/replay-raw");
  const bytes = Buffer.from("+OK\r\n+QUEUED\r\n*3\r\n:1\r\n$-1\r\n*2\r\n$3\r\nabc\r\n-ERR inner\r\n-ERR wrong type\r\n*-1\r\n$5\r\nhe\r\no\r\n");
  for (const step of [bytes.length, 1, 3]) {
    const c = new ReplyCounter();
    for (let i = 0; i < bytes.length; i += step) c.feed(bytes.subarray(i, i + step));
    assert.equal(c.replies, 6, `step ${step}`);
    assert.equal(c.errors, 1);
    assert.equal(c.firstError, "ERR wrong type");
  }
});
