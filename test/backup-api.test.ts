// Real backups through the API: the official SDK drives ManualBackupInstance -> DescribeTaskInfo until
// `succeed` -> DescribeInstanceBackups (Terraform's tencentcloud_redis_backup_operation), against real
// redis-server processes; every stored backup is decompressed, checked by redis-check-rdb and loaded into a
// fresh redis-server whose keys are compared with the source.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { discoverShards } from "../src/redis/capture/capture";
import { LocalBlobStore } from "../src/storage/local";
import { assertSameData, dbsize, filesUnder, send, writeMixedDataset } from "./support/dataset";
import { keySlot, redisCheckRdb, RedisProcess, startCluster, startRedis, waitFor } from "./support/redis";
import { expectSdkError, KEY, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";
import { OTHER } from "./fixtures";

const servers: RedisProcess[] = [];
async function redis(extra: string[] = [], opts: { password?: string; username?: string } = {}): Promise<RedisProcess> {
  const r = await startRedis(["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes", ...extra], opts);
  servers.push(r);
  return r;
}

let src: RedisProcess; // password auth, every value type plus 50,000 populated keys
let slow: RedisProcess; // a slow snapshot, to observe a backup in progress
let refusing: RedisProcess; // SYNC and PSYNC disabled
let acl: RedisProcess; // an ACL user with only what a backup needs
let srv: TestServer;
let c: SdkClient;

const ID = { main: "crs-bk000001", slow: "crs-bk000002", refusing: "crs-bk000003", acl: "crs-bk000004", wrongpw: "crs-bk000005", gone: "crs-bk000006", fixture: "crs-bk000007", cluster: "crs-bk000008", foreign: "crs-bk000009" };

before(async () => {
  [src, slow, refusing, acl] = await Promise.all([
    redis(["--requirepass", "s3cret"], { password: "s3cret" }),
    redis(["--rdb-key-save-delay", "100"]),
    redis(["--rename-command", "SYNC", "", "--rename-command", "PSYNC", ""]),
    redis(),
  ]);
  await writeMixedDataset(src.endpoint);
  await send(src.endpoint, [["DEBUG", "POPULATE", 50_000, "pop", 64]]);
  await send(slow.endpoint, [["DEBUG", "POPULATE", 30_000, "slow", 16]]);
  await send(acl.endpoint, [["ACL", "SETUSER", "backup", "on", ">bpw", "+sync", "+psync", "+replconf", "+ping", "+info", "+cluster"], ["SET", "acl:key", "v"]]);
  const url = (p: RedisProcess, auth = "") => `redis://${auth}127.0.0.1:${p.port}`;
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }, { SecretId: OTHER.secretId, SecretKey: OTHER.secretKey, Account: OTHER.account }],
    Instances: [
      { InstanceId: ID.main, InstanceName: "main", Region: "ap-guangzhou", Account: KEY.account, Redis: url(src, ":s3cret@") },
      { InstanceId: ID.slow, InstanceName: "slow", Region: "ap-guangzhou", Account: KEY.account, Redis: url(slow) },
      { InstanceId: ID.refusing, InstanceName: "refusing", Region: "ap-guangzhou", Account: KEY.account, Redis: url(refusing) },
      { InstanceId: ID.acl, InstanceName: "acl", Region: "ap-guangzhou", Account: KEY.account, Redis: url(acl, "backup:bpw@") },
      { InstanceId: ID.wrongpw, InstanceName: "wrongpw", Region: "ap-guangzhou", Account: KEY.account, Redis: url(src, ":nope@") },
      { InstanceId: ID.gone, InstanceName: "gone", Region: "ap-guangzhou", Account: KEY.account, Redis: "redis://127.0.0.1:1" },
      { InstanceId: ID.fixture, InstanceName: "fixture", Region: "ap-guangzhou", Account: KEY.account },
      { InstanceId: ID.foreign, InstanceName: "foreign", Region: "ap-guangzhou", Account: OTHER.account, Redis: url(acl, "backup:bpw@") },
    ],
  }, { rateLimit: 0 });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  await srv?.close();
  for (const r of servers) r.kill();
});

/** The stored backup, decompressed to a plain RDB file. */
async function plainRdb(key: string): Promise<string> {
  const store = new LocalBlobStore(path.join(srv.dataDir, "data", "files"));
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-bk-")), "dump.rdb");
  await pipeline(await store.openRead(key, { decompress: true }), fs.createWriteStream(out));
  return out;
}

async function startRedisOn(dir: string): Promise<RedisProcess> {
  const r = await startRedis(["--dbfilename", "dump.rdb"], { dir });
  servers.push(r);
  return r;
}

/** Unfinished files: a store's temp files, and the spool files of captures (docs/storage.md "The spool"). */
function partialFiles(): string[] {
  return [
    ...filesUnder(path.join(srv.dataDir, "data", "files")).filter((f) => f.endsWith(".partial")),
    ...filesUnder(path.join(srv.dataDir, "data", "spool")),
  ];
}

describe("a backup of a live Redis", () => {
  test("ManualBackupInstance -> DescribeTaskInfo succeed -> DescribeInstanceBackups, and the file is the source's data", async () => {
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID.main, Remark: "before upgrade", StorageDays: 0 });
    assert.ok(typeof TaskId === "number" && TaskId > 0);
    const task = await waitForTask(c, TaskId!);
    assert.equal(task.Status, "succeed", task.TaskMessage);
    assert.equal(task.InstanceId, ID.main);
    assert.equal(task.TaskType, "FLOW_BACKUPINSTANCE");

    const page = await c.DescribeInstanceBackups({ InstanceId: ID.main, Status: [2] });
    assert.equal(page.TotalCount, 1);
    const b = page.BackupSet![0]!;
    assert.equal(b.Remark, "before upgrade");
    assert.equal(b.BackupType, "0");
    assert.equal(b.FileType, "RDB-Redis 7.0");
    assert.equal(b.InstanceType, 17);
    assert.equal(b.Locked, 0);
    assert.ok(b.BackupSize! > 1_000_000, `size ${b.BackupSize}`);
    const day = 86_400_000;
    assert.equal(Date.parse(b.ExpireTime!.replace(" ", "T") + "+08:00") - Date.parse(b.StartTime!.replace(" ", "T") + "+08:00"), 7 * day);
    assert.ok(b.EndTime! >= b.StartTime!);

    const detail = await c.DescribeBackupDetail({ InstanceId: ID.main, BackupId: b.BackupId! });
    assert.equal(detail.BackupSize, b.BackupSize);
    assert.equal(detail.ShardNum, 1);
    assert.equal(detail.Status, 2);

    const file = await plainRdb(`backups/${b.BackupId}/shard-0.rdb.gz`);
    assert.equal(fs.statSync(file).size, b.BackupSize);
    const check = redisCheckRdb(file);
    assert.ok(check.ok, check.output);
    const copy = await startRedisOn(path.dirname(file));
    assert.equal(await dbsize(copy.endpoint), await dbsize(src.endpoint));
    const compared = await assertSameData(src.endpoint, copy.endpoint);
    assert.ok(compared > 50_000, `compared ${compared} keys`);
    assert.deepEqual(partialFiles(), []);

    const list = await c.DescribeTaskList({ InstanceId: ID.main, TaskTypes: ["012"], Result: [2] });
    assert.ok(list.Tasks!.some((t) => t.TaskId === TaskId && t.Result === 2 && t.TaskType === "012" && t.InstanceName === "main" && t.Progress === 100));
  });

  test("StorageDays sets the retention", async () => {
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID.acl, StorageDays: 30 });
    assert.equal((await waitForTask(c, TaskId!)).Status, "succeed");
    const b = (await c.DescribeInstanceBackups({ InstanceId: ID.acl })).BackupSet![0]!;
    assert.equal(Date.parse(b.ExpireTime!.replace(" ", "T") + "Z") - Date.parse(b.StartTime!.replace(" ", "T") + "Z"), 30 * 86_400_000);
  });

  test("while it runs the backup is listed with Status 1 and a second one is refused", async () => {
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID.slow });
    const running = await c.DescribeInstanceBackups({ InstanceId: ID.slow, Status: [1] });
    assert.equal(running.TotalCount, 1);
    await expectSdkError(c.ManualBackupInstance({ InstanceId: ID.slow }), "ResourceUnavailable.InstanceLockedError");
    const task = await waitForTask(c, TaskId!);
    assert.equal(task.Status, "succeed", task.TaskMessage);
    assert.equal((await c.DescribeInstanceBackups({ InstanceId: ID.slow, Status: [1] })).TotalCount, 0);
    assert.equal((await c.DescribeInstanceBackups({ InstanceId: ID.slow, Status: [2] })).TotalCount, 1);
  });

  test("an ACL user with only the replication commands can be backed up", async () => {
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID.acl });
    assert.equal((await waitForTask(c, TaskId!)).Status, "succeed");
  });

  test("a standalone server's backup is one connection (discovery, INFO replication and the snapshot), closed after", async () => {
    const stat = async (name: string): Promise<number> => {
      const info = String((await send(acl.endpoint, [["INFO", "all"]]))[0]);
      return Number(new RegExp(`^${name}:(\\d+)`, "m").exec(info)![1]);
    };
    const before = await stat("total_connections_received");
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID.acl });
    assert.equal((await waitForTask(c, TaskId!)).Status, "succeed");
    // +1 for stat()'s own connection: one connect + AUTH for the whole backup (it was three).
    assert.equal(await stat("total_connections_received"), before + 2);
    await waitFor("the backup's connection closed", async () => ((await stat("connected_clients")) === 1 ? true : undefined), 10_000, 20);
  });
});

describe("failures are tasks with a precise message, and leave neither a listed backup nor a file", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["a server that refuses SYNC", ID.refusing, /refused to send a snapshot/],
    ["a wrong password", ID.wrongpw, /password/i],
    ["a server that is not there", ID.gone, /ECONNREFUSED|refused|connect/i],
  ];
  for (const [name, id, message] of cases) {
    test(name, async () => {
      const { TaskId } = await c.ManualBackupInstance({ InstanceId: id });
      const task = await waitForTask(c, TaskId!);
      assert.equal(task.Status, "failed");
      assert.match(task.TaskMessage!, message);
      assert.equal((await c.DescribeInstanceBackups({ InstanceId: id })).TotalCount, 0);
      // DescribeTaskInfo reports a failure as soon as this node knows it; the list's Result filter reads the
      // catalogue, which has it once the undo (removing the partial file) and the write are done.
      await waitFor("the failure in the catalogue's task list", async () => {
        const list = await c.DescribeTaskList({ InstanceId: id, Result: [4] });
        return list.Tasks!.some((t) => t.TaskId === TaskId && t.Result === 4) || undefined;
      }, 20_000, 20);
    });
  }

  test("a source killed in the middle of the transfer", async () => {
    const dying = await redis(["--rdb-key-save-delay", "200"]);
    await send(dying.endpoint, [["DEBUG", "POPULATE", 50_000, "d", 32]]);
    await srv.services.catalog.upsertInstance({ ...(await srv.services.catalog.instance(ID.gone))!, instanceId: "crs-bk00000a", name: "dying", redisUrl: `redis://127.0.0.1:${dying.port}` });
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: "crs-bk00000a" });
    await waitFor("bytes to arrive", () => partialFiles().some((f) => fs.statSync(f).size > 0) || undefined, 20_000);
    dying.kill();
    const task = await waitForTask(c, TaskId!);
    assert.equal(task.Status, "failed");
    assert.match(task.TaskMessage!, /closed the connection|mid-transfer|ECONNRESET/i);
    assert.equal((await c.DescribeInstanceBackups({ InstanceId: "crs-bk00000a" })).TotalCount, 0);
    await waitFor("no partial file", () => partialFiles().length === 0 || undefined);
    assert.deepEqual(filesUnder(path.join(srv.dataDir, "data", "files")).filter((f) => f.includes("crs-bk00000a")), []);
  });

  test("a catalogue-only instance cannot be backed up; another account's instance does not exist", async () => {
    await expectSdkError(c.ManualBackupInstance({ InstanceId: ID.fixture }), "ResourceUnavailable.InstanceStatusAbnormal");
    await expectSdkError(c.ManualBackupInstance({ InstanceId: ID.foreign }), "ResourceNotFound.InstanceNotExists");
    await expectSdkError(c.ManualBackupInstance({ InstanceId: ID.main, StorageDays: 2000 }), "InvalidParameterValue");
  });

  test("unknown tasks and backups, and other accounts' tasks", async () => {
    await expectSdkError(c.DescribeTaskInfo({ TaskId: 999_999 }), "ResourceNotFound.TaskNotExists");
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID.acl });
    await waitForTask(c, TaskId!);
    await expectSdkError(srv.client(OTHER).DescribeTaskInfo({ TaskId: TaskId! }), "ResourceNotFound.TaskNotExists");
    assert.equal((await srv.client(OTHER).DescribeTaskList({})).TotalCount, 0);
    await expectSdkError(c.DescribeBackupDetail({ InstanceId: ID.main, BackupId: "00000000-0000-0000-0000-000000000000" }), "InvalidParameterValue.BackupNotExists");
  });
});

test("a three-master Redis Cluster gives one RDB per master", async () => {
  const nodes = await startCluster(3, "cpw", ["--repl-diskless-sync-delay", "0"]);
  servers.push(...nodes);
  const { shards } = await discoverShards(nodes[0]!.endpoint);
  const topo = new Map<number, Array<Array<string | number>>>();
  for (let i = 0; i < 3000; i++) {
    const key = `ck:${i}`;
    const slot = keySlot(key);
    const owner = shards.findIndex((s) => s.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!topo.has(owner)) topo.set(owner, []);
    topo.get(owner)!.push(["SET", key, `v${i}`]);
  }
  await Promise.all([...topo].map(([owner, cmds]) => send(shards[owner]!.endpoint, cmds)));
  await srv.services.catalog.upsertInstance({ ...(await srv.services.catalog.instance(ID.gone))!, instanceId: ID.cluster, name: "cluster", redisUrl: `redis://:cpw@127.0.0.1:${nodes[1]!.port}` });
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID.cluster });
  const task = await waitForTask(c, TaskId!);
  assert.equal(task.Status, "succeed", task.TaskMessage);
  const b = (await c.DescribeInstanceBackups({ InstanceId: ID.cluster })).BackupSet![0]!;
  assert.equal(b.InstanceType, 18);
  assert.equal((await c.DescribeBackupDetail({ InstanceId: ID.cluster, BackupId: b.BackupId! })).ShardNum, 3);
  let sum = 0;
  for (let shard = 0; shard < 3; shard++) {
    const file = await plainRdb(`backups/${b.BackupId}/shard-${shard}.rdb.gz`);
    assert.ok(redisCheckRdb(file).ok);
    const copy = await startRedisOn(path.dirname(file));
    sum += await dbsize(copy.endpoint);
  }
  assert.equal(sum, 3000);
  const inst = (await c.DescribeInstances({ InstanceId: ID.cluster })).InstanceSet![0]!;
  assert.equal(inst.RedisShardNum, 3);
  assert.equal(inst.Type, 18);
  assert.deepEqual(inst.NodeSet!.map((n) => [n.NodeType, n.NodeId]), [[0, 0], [0, 1], [0, 2]], "one master node per shard");
});

test("DescribeInstances has every field Terraform dereferences", async () => {
  const r = await c.DescribeInstances({ InstanceId: ID.main });
  assert.equal(r.TotalCount, 1);
  const i = r.InstanceSet![0]! as Record<string, unknown>;
  for (const f of ["ZoneId", "Type", "Status", "Createtime", "WanIp", "RedisShardSize", "InstanceName", "Port", "ProjectId", "InstanceId", "UniqSubnetId", "UniqVpcId", "BillingMode"]) {
    assert.ok(i[f] !== undefined && i[f] !== null, `${f} is present`);
  }
  assert.equal(i.Port, src.port);
  assert.equal(i.WanIp, "127.0.0.1");
  assert.equal(i.Status, 2);
  assert.equal(i.NoAuth, false);
  assert.doesNotMatch(JSON.stringify(r), /s3cret/);
  const all = await c.DescribeInstances({ Limit: 100 });
  assert.ok(all.InstanceSet!.every((x) => x.InstanceId !== ID.foreign));
});
