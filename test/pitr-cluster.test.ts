// Second-level backup of a Redis Cluster (3 masters, 1 replica each): ModifyInstanceBackupMode streams every
// master under one lease; a second is one cut applied to each shard's stream with its own samples, restored into
// a standalone target (every shard's base, then every shard's units up to the cut) or cloned into a cluster of
// the same shape (CloneInstances: a node per shard, the source's slot ranges); a failover of one shard's
// master is followed (the promoted replica's `+CONTINUE <new replid>`: no new base, no gap) and a second after
// it restores exactly too.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { readSlotMap } from "../src/redis/client/cluster";
import { LocalTime } from "../src/protocol/time";
import { isClusterType } from "../src/protocol/instance-types";
import { ClusterClient, clusterClonePorts, keySlot, RedisProcess, startCluster, startRedis, waitFor, withConn } from "./support/redis";
import { KEY, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";
import { processesIn } from "../src/instances/local";
import { AckedWrite, checkAtCut, checkClusterAtCut, dbsizeOf, getAll, killClones, rebasedAfterMove, shapeOf, writeUntil } from "./support/pitr";
import { cleanEnv, killServed, runCli, sdk, seededDir, serve } from "./support/cli-process";
import type { RedisEndpoint } from "../src/redis/client/resp";
import { send } from "./support/dataset";

const PW = "pitr-cluster-pw";
const ID = { source: "crs-pclu0001", target: "crs-pclu0002" };
const tz = new LocalTime("Asia/Shanghai");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let nodes: RedisProcess[];
let target: RedisProcess;
/** Nodes added to the cluster by a test (a new master). */
const added: RedisProcess[] = [];
let srv: TestServer;
let c: SdkClient;
const clones: string[] = [];
/** Data directories of served (child) processes that made clones, for the after hook. */
const cloneDataDirs: string[] = [];

/** Writes until `more()` is false; a write refused by a master that is one no longer is retried after re-reading the map. */
async function writeCluster(prefix: string, more: () => boolean): Promise<AckedWrite[]> {
  const router = await ClusterClient.ofAny(nodes.map((n) => n.endpoint));
  const all: AckedWrite[] = [];
  let n = 0;
  try {
    while (more()) {
      const ops = await writeUntil(async (k) => router.node(k), `${prefix}${n++}:`, more);
      const failed = ops.at(-1);
      if (failed && failed.acked === undefined) {
        ops.pop(); // not acknowledged: leave it out (it was refused, MOVED or READONLY)
        await sleep(50);
        await router.refresh();
      }
      all.push(...ops);
    }
  } finally {
    router.close();
  }
  return all;
}

async function info(sec: number): Promise<{ BackupId?: string; StartTimestamp?: number; MissingTimestamps?: Array<{ StartTimeStamp?: number; EndTimeStamp?: number }> }> {
  return c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: sec });
}

async function restoreAndCheck(ops: AckedWrite[], sec: number): Promise<void> {
  await waitFor(`second ${sec} covered`, async () => (await info(sec)).BackupId || undefined, 30_000, 200);
  const r = await runCli(["restore", "--data", `${srv.dataDir}/data`, "--instance", ID.target, "--from", ID.source, "--at", tz.format(sec * 1000)]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /from 3 shards/);
  for (const s of [0, 1, 2]) assert.match(r.out, new RegExp(`shard ${s}: base [0-9a-f-]{36} \\+ \\d+ unit`));
  const tally = await checkAtCut(target.endpoint, ops, (sec + 1) * 1000);
  assert.ok(tally.inside > 50 && tally.outside > 50, JSON.stringify(tally));
  // The restored keys come from every shard.
  const map = await readSlotMap(nodes[0]!.endpoint);
  const inside = ops.filter((o) => o.acked !== undefined && o.acked < (sec + 1) * 1000 - 200);
  const owners = new Set(inside.map((o) => map.find((x) => keySlot(o.key) >= x.start && keySlot(o.key) <= x.end)!.start));
  assert.equal(owners.size, 3);
}

before(async () => {
  [nodes, target] = await Promise.all([startCluster(3, PW, ["--repl-diskless-sync-delay", "0"], 1), startRedis(["--repl-diskless-sync-delay", "0"])]);
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [
      { InstanceId: ID.source, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:${PW}@127.0.0.1:${nodes[0]!.port}` },
      { InstanceId: ID.target, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${target.port}` },
    ],
  }, { rateLimit: 0, pitrRebaseAfterMs: 1000, clonePorts: clusterClonePorts(40) });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  killServed();
  const dataDir = srv?.dataDir;
  await srv?.close();
  for (const data of [...(dataDir ? [`${dataDir}/data`] : []), ...cloneDataDirs]) killClones(data);
  for (const n of [...(nodes ?? []), ...added]) n.kill();
  target?.kill();
});

test("a cluster of 3 masters in SecondLevelBackup: one lease, a base per shard, restored to one second", async () => {
  await c.ModifyInstanceBackupMode({ InstanceId: ID.source, BackupMode: "SecondLevelBackup" });
  // Covered only once every shard has its base and stream.
  await waitFor("every shard streaming", async () => (await info(Math.floor(Date.now() / 1000) - 1)).BackupId || undefined, 30_000, 200);
  const sessions = srv.services.streams.shardSessions(ID.source);
  assert.equal(sessions.length, 3);
  const bases = (await c.DescribeInstanceBackups({ InstanceId: ID.source, Status: [2] })).BackupSet!.filter((b) => /^second-level backup base, shard \d\/3$/.test(b.Remark ?? ""));
  assert.equal(bases.length, 3);
  assert.equal((await c.DescribeInstances({ InstanceId: ID.source })).InstanceSet![0]!.BackupMode, "SecondLevelBackup");
  let stop = false;
  const writing = writeCluster("c:", () => !stop);
  await sleep(3000);
  stop = true;
  const ops = await writing;
  await restoreAndCheck(ops, Math.floor(ops[0]!.sent / 1000) + 1);
});

test("a failover of one shard's master: the stream follows the promoted replica (no new base, no gap) and a second after it restores exactly", async () => {
  const map = await readSlotMap(nodes[0]!.endpoint);
  const old = map.find((x) => x.start > 0)!.master; // shard 1's master
  const nodesText = String(await withConn(nodes[0]!, (x) => x.command("CLUSTER", "NODES")));
  const masterId = nodesText.split("\n").find((l) => l.includes(`:${old.port}@`))!.split(" ")[0]!;
  const replicaLine = nodesText.split("\n").find((l) => l.split(" ")[3] === masterId)!;
  const replica = nodes.find((n) => replicaLine.includes(`:${n.port}@`))!;
  let stop = false;
  const writing = writeCluster("f:", () => !stop);
  await sleep(1500);
  const failoverAt = Date.now();
  assert.equal(String(await withConn(replica, (x) => x.command("CLUSTER", "FAILOVER"))), "OK");
  await waitFor("the replica promoted", async () => /role:master/.test(String(await withConn(replica, (x) => x.command("INFO", "replication")))) || undefined, 20_000, 50);
  // The shard's session now streams from the promoted replica.
  await waitFor("the stream following the new master", () => srv.services.streams.shardSessions(ID.source)[1]?.endpoint.port === replica.port || undefined, 20_000, 100);
  // Writes go on until 1.5 s past the cut (3 s after the failover's second), however fast the stream followed.
  const sec = Math.floor(failoverAt / 1000) + 3;
  await sleep(Math.max(1500, (sec + 1) * 1000 + 1500 - Date.now()));
  stop = true;
  const ops = await writing;
  await restoreAndCheck(ops, sec);
  const bases = (await c.DescribeInstanceBackups({ InstanceId: ID.source, Status: [2] })).BackupSet!.filter((b) => (b.Remark ?? "").startsWith("second-level backup base"));
  assert.equal(bases.length, 3, "the promoted replica continued the stream (+CONTINUE): no new base");
  const gaps = (await info(sec)).MissingTimestamps ?? [];
  const gapSeconds = gaps.reduce((n, g) => n + g.EndTimeStamp! - g.StartTimeStamp! + 1, 0);
  assert.ok(gapSeconds <= 3, `a gap of ${gapSeconds} s around the failover: ${JSON.stringify(gaps)}`);
});

/** CloneInstances with NoAuth; waits for the task and returns the clone's address (DescribeInstances) and its record. */
async function cloneOf(backupId: string, cloneTime?: number): Promise<{ port: number; instanceType: number; shards: number; message: string }> {
  const out = await c.CloneInstances({
    InstanceId: ID.source, BackupId: backupId, GoodsNum: 1, ZoneId: 100003, BillingMode: 0, Period: 1, SecurityGroupIdList: [], NoAuth: true,
    ...(cloneTime !== undefined ? { CloneTime: tz.format(cloneTime * 1000) } : {}),
  });
  const id = out.InstanceIds![0]!;
  clones.push(id);
  const t = await waitForTask(c, Number(out.DealId), 120_000);
  assert.equal(t.Status, "succeed", t.TaskMessage);
  const i = (await c.DescribeInstances({ InstanceId: id })).InstanceSet![0]!;
  assert.equal(i.Status, 2);
  return { port: i.Port!, instanceType: i.Type!, shards: i.RedisShardNum!, message: t.TaskMessage! };
}

test("CloneInstances of a cluster: a cluster backup and a second of its stream each clone into a cluster of 3 masters with the source's slot ranges", async () => {
  // A plain clone of a backup of the 3 shards (taken with no writes going on).
  const end = Date.now() + 500;
  await writeCluster("p:", () => Date.now() < end);
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID.source, Remark: "cluster, for a clone", StorageDays: 0 });
  assert.equal((await waitForTask(c, TaskId!)).Status, "succeed");
  const backup = (await c.DescribeInstanceBackups({ InstanceId: ID.source, Status: [2] })).BackupSet!.find((b) => b.Remark === "cluster, for a clone")!;
  const source = await shapeOf(nodes[0]!.endpoint);
  const keys = await dbsizeOf(nodes[0]!.endpoint, PW);
  const plain = await cloneOf(backup.BackupId!);
  assert.match(plain.message, /\(3 shards\) into crs-[a-z0-9]{8} \(a cluster of 3 master\(s\) on \d+, \d+, \d+\)/);
  assert.equal(plain.shards, 3);
  assert.ok(isClusterType(plain.instanceType), `a cluster type, got ${plain.instanceType}`);
  const plainEp = { host: "127.0.0.1", port: plain.port };
  assert.match(String((await send(plainEp, [["CLUSTER", "INFO"]]))[0]), /cluster_state:ok/);
  assert.deepEqual(await shapeOf(plainEp), source, "the source's slot ranges, master by master");
  assert.ok(keys > 100);
  assert.equal(await dbsizeOf(plainEp), keys);

  // A clone at a second: every shard's base and units up to the cut, each into its own node.
  let stop = false;
  const writing = writeCluster("k:", () => !stop);
  await sleep(3000);
  stop = true;
  const ops = await writing;
  const sec = Math.floor(ops[0]!.sent / 1000) + 1;
  const base = await waitFor(`second ${sec} covered`, async () => (await info(sec)).BackupId || undefined, 30_000, 200);
  const at = await cloneOf(base, sec);
  assert.match(at.message, /3 shards: shard 0: base .*shard 1: base .*shard 2: base .*a cluster of 3 master/);
  assert.equal(at.shards, 3);
  const atEp = { host: "127.0.0.1", port: at.port };
  assert.deepEqual(await shapeOf(atEp), source);
  const tally = await checkClusterAtCut(atEp, ops, (sec + 1) * 1000);
  assert.ok(tally.inside > 50 && tally.outside > 50, JSON.stringify(tally));
  const map = await readSlotMap(nodes[0]!.endpoint);
  const inside = ops.filter((o) => o.acked !== undefined && o.acked < (sec + 1) * 1000 - 200);
  assert.equal(new Set(inside.map((o) => map.find((x) => keySlot(o.key) >= x.start && keySlot(o.key) <= x.end)!.start)).size, 3);

  // The clone is an instance like any other: backed up as a cluster of 3 shards.
  const cloneId = clones.at(-1)!;
  const b = await c.ManualBackupInstance({ InstanceId: cloneId });
  const done = await waitForTask(c, b.TaskId!);
  assert.equal(done.Status, "succeed", done.TaskMessage);
  assert.match(done.TaskMessage!, /in 3 shard\(s\)/);
});

/** Pids of live processes in each node directory of a cluster-shaped clone, by shard. */
function clonePids(data: string, id: string): number[][] {
  const dir = path.join(data, "instances", id);
  const shards = fs.existsSync(dir) ? fs.readdirSync(dir).filter((e) => /^shard-\d+$/.test(e)).sort() : [];
  return shards.map((e) => processesIn(path.join(dir, e)));
}

test("a cluster-shaped clone: a node that dies is started again and rejoins with its data; a SIGKILL of the service while one loads leaves no redis-server", async () => {
  // Supervision, node by node: the plain clone of the test above loses its second node.
  const id = clones[0]!;
  const i = (await c.DescribeInstances({ InstanceId: id })).InstanceSet![0]!;
  const ep = { host: "127.0.0.1", port: i.Port! };
  const keys = await dbsizeOf(ep);
  const before = clonePids(path.join(srv.dataDir, "data"), id);
  assert.equal(before.length, 3);
  const [pid] = before[1]!;
  assert.ok(pid, "the second node's process is found");
  process.kill(pid, "SIGKILL");
  await waitFor("the node started again and back in the cluster", async () => {
    const now = clonePids(path.join(srv.dataDir, "data"), id)[1]!;
    if (!now.length || now.includes(pid)) return undefined;
    const shape = await shapeOf(ep).catch(() => []);
    return shape.length === 3 && /cluster_state:ok/.test(String((await send(ep, [["CLUSTER", "INFO"]]))[0])) ? true : undefined;
  }, 30_000, 200);
  assert.equal(await waitFor("every key served again", async () => ((await dbsizeOf(ep).catch(() => 0)) === keys ? keys : undefined), 20_000, 200), keys);

  // The service SIGKILLed with the clone's 3 nodes started and loading: the restart fails the task and removes them.
  const dir = seededDir("crs-cluclone-kill-", {
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [{ InstanceId: ID.source, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:${PW}@127.0.0.1:${nodes[0]!.port}` }],
  });
  const range = clusterClonePorts(10);
  const args = ["--data", dir.data, "--seed", dir.seed, "--rate-limit", "0", "--clone-ports", `${range.from}-${range.to}`, "--auto-backups", "off"];
  const first = await serve(args, cleanEnv({ CRS_TEST_CRASH_AT: "clone-loading" }));
  const client = sdk(first.port, KEY.secretId, KEY.secretKey);
  const { TaskId } = await client.ManualBackupInstance({ InstanceId: ID.source, Remark: "k", StorageDays: 0 });
  assert.equal((await waitForTask(client, TaskId!)).Status, "succeed");
  const backupId = (await client.DescribeInstanceBackups({ InstanceId: ID.source, Status: [2] })).BackupSet![0]!.BackupId!;
  const out = await client.CloneInstances({ InstanceId: ID.source, BackupId: backupId, GoodsNum: 1, ZoneId: 100003, BillingMode: 0, Period: 1, SecurityGroupIdList: [], NoAuth: true });
  const cloneId = out.InstanceIds![0]!;
  clones.push(cloneId);
  cloneDataDirs.push(dir.data);
  await first.exit;
  assert.equal(first.signal(), "SIGKILL");
  const started = clonePids(dir.data, cloneId);
  assert.equal(started.length, 3);
  assert.ok(started.every((x) => x.length > 0), "every node's redis-server was started before the crash");
  const second = await serve(args, cleanEnv());
  const client2 = sdk(second.port, KEY.secretId, KEY.secretKey);
  const task = await waitForTask(client2, Number(out.DealId));
  assert.equal(task.Status, "failed");
  assert.match(task.TaskMessage!, /interrupted.*half-made clone .* removed \(processes stopped, directory deleted, ports \d+, \d+, \d+ freed\)/);
  for (const pids of started) for (const x of pids) assert.equal(fs.existsSync(`/proc/${x}`) && !/\) Z /.test(fs.readFileSync(`/proc/${x}/stat`, "utf8")), false, `pid ${x} is gone`);
  assert.equal(fs.existsSync(path.join(dir.data, "instances", cloneId)), false);
  assert.equal((await client2.DescribeInstances({ InstanceId: cloneId })).TotalCount, 0);
  await second.stop();
});

test("a slot migrated between two masters while streaming: the seconds from the move to every shard's new base are missing, a second after them clones exactly", async () => {
  const map = await readSlotMap(nodes[0]!.endpoint);
  const tag = "{moved}";
  const slot = keySlot(tag);
  const from = map.find((r) => slot >= r.start && slot <= r.end)!.master;
  const to = map.find((r) => r.master.port !== from.port)!.master;
  const src = { ...from, password: PW };
  const dst = { ...to, password: PW };
  const keys = Array.from({ length: 40 }, (_, i) => `${tag}:${i}`);
  await send(src, keys.map((k) => ["SET", k, `old-${k}`]));
  const myId = async (ep: typeof src) => String((await send(ep, [["CLUSTER", "MYID"]]))[0]);
  const [srcId, dstId] = [await myId(src), await myId(dst)];
  // The steps of redis-cli --cluster reshard for one slot: IMPORTING, MIGRATING, MIGRATE the keys, NODE everywhere.
  await send(dst, [["CLUSTER", "SETSLOT", String(slot), "IMPORTING", srcId]]);
  await send(src, [["CLUSTER", "SETSLOT", String(slot), "MIGRATING", dstId]]);
  // Every key of the slot moves (earlier tests' keys may hash to it too).
  const inSlot = ((await send(src, [["CLUSTER", "GETKEYSINSLOT", String(slot), "10000"]]))[0] as Buffer[]).map(String);
  assert.equal(String((await send(src, [["MIGRATE", to.host, String(to.port), "", "0", "5000", "AUTH", PW, "KEYS", ...inSlot]]))[0]), "OK");
  for (const m of map.map((r) => r.master)) await send({ ...m, password: PW }, [["CLUSTER", "SETSLOT", String(slot), "NODE", dstId]]);
  const moved = Date.now();
  await send(dst, keys.slice(0, 20).map((k) => ["SET", k, `new-${k}`])); // the new owner changes half of them
  const moveSec = Math.floor(moved / 1000);

  // Every shard takes a new base once the moves stop (here 1 s); until then the move's seconds are missing.
  const { sec, base } = await rebasedAfterMove(srv.services.catalog, ID.source, 3, moved, moveSec, info);
  const r = await runCli(["restore", "--data", `${srv.dataDir}/data`, "--instance", ID.target, "--from", ID.source, "--at", tz.format(moveSec * 1000)]);
  assert.notEqual(r.code, 0, r.out);

  // A second after the new bases: every moved key once, with the value its owner had then.
  const at = await cloneOf(base, sec);
  const got = await getAll({ host: "127.0.0.1", port: at.port }, keys);
  for (const [i, k] of keys.entries()) assert.equal(String(got[i]), `${i < 20 ? "new" : "old"}-${k}`, k);
});

/** Moves every key of `slot` from its owner to the master `to` (id `toId`), as redis-cli --cluster reshard does. */
async function moveSlot(slot: number, masters: RedisEndpoint[], to: RedisEndpoint, toId: string): Promise<void> {
  const map = await readSlotMap(nodes[0]!.endpoint);
  const from = { ...map.find((r) => slot >= r.start && slot <= r.end)!.master, password: PW };
  const fromId = String((await send(from, [["CLUSTER", "MYID"]]))[0]);
  await send({ ...to, password: PW }, [["CLUSTER", "SETSLOT", String(slot), "IMPORTING", fromId]]);
  await send(from, [["CLUSTER", "SETSLOT", String(slot), "MIGRATING", toId]]);
  const inSlot = ((await send(from, [["CLUSTER", "GETKEYSINSLOT", String(slot), "10000"]]))[0] as Buffer[]).map(String);
  if (inSlot.length) assert.equal(String((await send(from, [["MIGRATE", to.host, String(to.port), "", "0", "5000", "AUTH", PW, "KEYS", ...inSlot]]))[0]), "OK");
  for (const m of [to, ...masters]) {
    try {
      await send({ ...m, password: PW }, [["CLUSTER", "SETSLOT", String(slot), "NODE", toId]]);
    } catch (err) {
      // A master that gave away its last slot turns into a replica of the new owner (cluster-allow-replica-migration).
      if (!/only with masters/.test(String(err))) throw err;
    }
  }
}

test("a master added to the cluster while streaming: the stream starts afresh on 4 shards (StartTimestamp moves, a base each), and a second after clones every key", async () => {
  const startedBefore = (await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: Math.floor(Date.now() / 1000) - 1 })).StartTimestamp!;
  const extra = await startRedis(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--requirepass", PW, "--masterauth", PW, "--repl-diskless-sync-delay", "0"], { password: PW });
  added.push(extra);
  // One entry per master (a master owns several ranges once a slot has moved: the previous test).
  const masters = [...new Map((await readSlotMap(nodes[0]!.endpoint)).map((r) => [r.master.port, r.master])).values()];
  assert.equal(masters.length, 3);
  await send({ ...masters[0]!, password: PW }, [["CLUSTER", "MEET", "127.0.0.1", String(extra.port)]]);
  const extraId = String((await send(extra.endpoint, [["CLUSTER", "MYID"]]))[0]);
  for (const m of masters) {
    await waitFor(`${m.port} to know the new node`, async () => String((await send({ ...m, password: PW }, [["CLUSTER", "NODES"]]))[0]).includes(extraId) || undefined, 20_000, 100);
  }
  // Its own view must be whole before it imports keys (a MIGRATE into it answers CLUSTERDOWN until then).
  await waitFor("the new node's cluster_state:ok", async () => /cluster_state:ok/.test(String((await send(extra.endpoint, [["CLUSTER", "INFO"]]))[0])) || undefined, 20_000, 100);
  const tag = "{grown}";
  const keys = Array.from({ length: 30 }, (_, i) => `${tag}:${i}`);
  const owner = (await readSlotMap(nodes[0]!.endpoint)).find((r) => keySlot(tag) >= r.start && keySlot(tag) <= r.end)!.master;
  await send({ ...owner, password: PW }, keys.map((k) => ["SET", k, `before-${k}`]));
  await moveSlot(keySlot(tag), masters, extra.endpoint, extraId);
  const grown = Date.now();

  // The stream sees 4 masters, starts afresh and takes a base on each.
  const config = await waitFor("the stream restarted", async () => {
    const cfg = await srv.services.catalog.streamConfig(ID.source);
    return cfg?.epoch !== undefined && cfg.epoch > startedBefore ? cfg : undefined;
  }, 30_000, 200);
  await waitFor("a base on each of the 4 shards", async () => {
    for (const shard of [0, 1, 2, 3]) if (!(await srv.services.catalog.streamBases(ID.source, shard)).some((b) => b.takenAt >= config.epoch!)) return undefined;
    return true;
  }, 60_000, 250);
  assert.equal(srv.services.streams.shardSessions(ID.source).length, 4);
  await send(extra.endpoint, keys.slice(0, 10).map((k) => ["SET", k, `after-${k}`])); // the new master changes a third of them

  const sec = Math.floor(Date.now() / 1000) + 1;
  const base = await waitFor(`second ${sec} covered`, async () => (await info(sec)).BackupId || undefined, 30_000, 200);
  const now = await info(sec);
  assert.equal(now.StartTimestamp, Math.floor(config.since! / 1000));
  assert.ok(now.StartTimestamp! >= Math.floor(grown / 1000) - 5 && now.StartTimestamp! > startedBefore, JSON.stringify(now));
  // A second before the restart is no longer restorable to a second (its bases were of 3 shards).
  const r = await runCli(["restore", "--data", `${srv.dataDir}/data`, "--instance", ID.target, "--from", ID.source, "--at", tz.format((startedBefore + 2) * 1000)]);
  assert.notEqual(r.code, 0, r.out);

  const at = await cloneOf(base, sec);
  assert.match(at.message, /4 shards/);
  const atEp = { host: "127.0.0.1", port: at.port };
  assert.equal(at.shards, 4);
  assert.deepEqual(await shapeOf(atEp), await shapeOf(nodes[0]!.endpoint), "the clone has the source's 4 masters and their slots");
  const got = await getAll(atEp, keys);
  for (const [i, k] of keys.entries()) assert.equal(String(got[i]), `${i < 10 ? "after" : "before"}-${k}`, k);
  let total = 0;
  for (const m of [...masters, extra.endpoint]) total += Number((await send({ ...m, password: PW }, [["DBSIZE"]]))[0]);
  assert.equal(await dbsizeOf(atEp), total);
});

test("the added master emptied again: the stream starts afresh on 3 shards, and the fourth shard's bases no longer count", async () => {
  const extra = added[0]!;
  const masters = [...new Map((await readSlotMap(nodes[0]!.endpoint)).map((r) => [r.master.port, r.master])).values()].filter((m) => m.port !== extra.port);
  assert.equal(masters.length, 3);
  const epochBefore = (await srv.services.catalog.streamConfig(ID.source))!.epoch!;
  const back = masters[0]!;
  const backId = String((await send({ ...back, password: PW }, [["CLUSTER", "MYID"]]))[0]);
  const slots = (await readSlotMap(nodes[0]!.endpoint)).filter((r) => r.master.port === extra.port).flatMap((r) => Array.from({ length: r.end - r.start + 1 }, (_, i) => r.start + i));
  for (const slot of slots) await moveSlot(slot, [...masters, extra.endpoint], back, backId);
  const config = await waitFor("the stream restarted on 3 shards", async () => {
    const cfg = await srv.services.catalog.streamConfig(ID.source);
    return cfg?.epoch !== undefined && cfg.epoch > epochBefore && srv.services.streams.shardSessions(ID.source).length === 3 ? cfg : undefined;
  }, 30_000, 200);
  await waitFor("a base on each of the 3 shards", async () => {
    for (const shard of [0, 1, 2]) if (!(await srv.services.catalog.streamBases(ID.source, shard)).some((b) => b.takenAt >= config.epoch!)) return undefined;
    return true;
  }, 60_000, 250);
  const sec = Math.floor(Date.now() / 1000) + 1;
  const base = await waitFor(`second ${sec} covered`, async () => (await info(sec)).BackupId || undefined, 30_000, 200);
  const at = await cloneOf(base, sec);
  assert.match(at.message, /3 shards/);
  const atEp = { host: "127.0.0.1", port: at.port };
  assert.equal(at.shards, 3);
  let total = 0;
  for (const m of masters) total += Number((await send({ ...m, password: PW }, [["DBSIZE"]]))[0]);
  assert.equal(await dbsizeOf(atEp), total);
  const keys = Array.from({ length: 30 }, (_, i) => `{grown}:${i}`);
  const got = await getAll(atEp, keys);
  for (const [i, k] of keys.entries()) assert.equal(String(got[i]), `${i < 10 ? "after" : "before"}-${k}`, k);
});

