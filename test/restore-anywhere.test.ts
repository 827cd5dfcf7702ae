// "Backups that restore anywhere", through the service: RestoreInstance (official SDK) and DescribeTaskInfo
// pick the replication path or the command path, name it in the task's message, verify the result against the
// backup, and fail cleanly when the target dies. Real servers: Debian's redis-server 7.0, Redis 7.4 from
// /work/shared/redis-bin (its test skips without it), Redis Clusters of 3 and 5 masters.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RedisEndpoint, RespValue } from "../src/redis/client/resp";
import { assertSameData, dbsize, send, writeMixedDataset } from "./support/dataset";
import { RedisProcess, startCluster, startRedis, waitFor, ClusterClient } from "./support/redis";
import { KEY, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";
import { missing, version } from "./support/versions";

const DEBUG = ["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"];
const CPW = "cluster-pw";
const v74 = version("7.4");

const servers: RedisProcess[] = [];
async function redis(extra: string[] = [], opts: { password?: string; bin?: string } = {}): Promise<RedisProcess> {
  const r = await startRedis([...DEBUG, ...(opts.password ? ["--requirepass", opts.password] : []), ...extra], opts);
  servers.push(r);
  return r;
}

const str = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : String(v));
const url = (p: RedisProcess, password = ""): string => `redis://${password ? `:${password}@` : ""}127.0.0.1:${p.port}`;

async function command(ep: RedisEndpoint, ...args: Array<string | number>): Promise<RespValue> {
  return (await send(ep, [args]))[0]!;
}

let srv: TestServer;
let c: SdkClient;
let src70: RedisProcess;
let big: RedisProcess;
let src74: RedisProcess | undefined;
let source3: RedisProcess[];
let five: RedisProcess[];
const ids = {
  src70: "crs-any00001", src74: "crs-any00002", big: "crs-any00003", cluster3: "crs-any00004", cluster5: "crs-any00005",
  t70: "crs-any00010", noRepl: "crs-any00011", killCmd: "crs-any00012", killRepl: "crs-any00013", plain: "crs-any00014",
};
const targets: Record<string, RedisProcess> = {};

before(async () => {
  // Cluster nodes are registered as soon as they run, so that a failure elsewhere still stops them.
  const cluster = (n: number) => startCluster(n, CPW, DEBUG).then((nodes) => (servers.push(...nodes), nodes));
  [src70, big, source3, five] = await Promise.all([redis(), redis(), cluster(3), cluster(5)]);
  if (!missing(v74)) src74 = await redis([], { bin: v74.bin });
  const [t70, noRepl, killCmd, killRepl, plain] = await Promise.all([
    redis([], { password: "tpw" }),
    // REPLICAOF renamed away (as on managed services): replication is refused before anything changes
    redis(["--rename-command", "REPLICAOF", "replicaof-renamed-away"]),
    redis(["--rename-command", "REPLICAOF", "replicaof-renamed-away"]),
    redis(),
    redis(),
  ]);
  Object.assign(targets, { t70, noRepl, killCmd, killRepl, plain });

  await writeMixedDataset(src70.endpoint);
  await send(src70.endpoint, Array.from({ length: 300 }, (_, i) => ["SET", `plain:${i}`, `value-${i}`]));
  if (src74) await writeMixedDataset(src74.endpoint, "v74:");
  // Enough keys that a restore by commands takes a while: the kill tests stop the target part-way.
  await command(big.endpoint, "DEBUG", "POPULATE", 150_000, "big", 64);

  const inst = (id: string, p: RedisProcess, password = "") => ({ InstanceId: id, InstanceName: id, Region: "ap-guangzhou", Account: KEY.account, Redis: url(p, password) });
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [
      inst(ids.src70, src70), inst(ids.big, big), inst(ids.cluster3, source3[0]!, CPW), inst(ids.cluster5, five[0]!, CPW),
      ...(src74 ? [inst(ids.src74, src74)] : []),
      inst(ids.t70, t70, "tpw"), inst(ids.noRepl, noRepl), inst(ids.killCmd, killCmd), inst(ids.killRepl, killRepl), inst(ids.plain, plain),
    ],
  }, { rateLimit: 0 });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  await srv?.close();
  for (const r of servers) r.kill();
});

const backups = new Map<string, string>();
/** One backup per source instance, taken through the API. */
async function backupOf(instanceId: string): Promise<string> {
  const known = backups.get(instanceId);
  if (known) return known;
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: instanceId, StorageDays: 7 });
  const t = await waitForTask(c, TaskId!);
  assert.equal(t.Status, "succeed", t.TaskMessage);
  const id = (await c.DescribeInstanceBackups({ InstanceId: instanceId, Limit: 1 })).BackupSet![0]!.BackupId!;
  backups.set(instanceId, id);
  return id;
}

async function restore(target: string, backupId: string, password = ""): Promise<number> {
  return (await c.RestoreInstance({ InstanceId: target, BackupId: backupId, Password: password })).TaskId!;
}

async function config(ep: RedisEndpoint, name: string): Promise<string> {
  return str(((await command(ep, "CONFIG", "GET", name)) as RespValue[])[1]!);
}

describe("RestoreInstance picks the path", () => {
  test("same version, standalone: replication from the socket, verified by digest, the target's setting put back", async (ctx) => {
    const t = targets.plain!;
    await send(t.endpoint, [["SET", "stale", "gone after the restore"]]);
    const task = await waitForTask(c, await restore(ids.plain, await backupOf(ids.src70)));
    ctx.diagnostic(task.TaskMessage ?? "");
    assert.equal(task.Status, "succeed", task.TaskMessage);
    assert.match(task.TaskMessage!, /^replication: \d+ keys loaded in \d+ ms \(from the socket/);
    assert.match(task.TaskMessage!, /verified equal \(digest [0-9a-f]{40}\)/);
    await assertSameData(src70.endpoint, t.endpoint);
    assert.equal(await config(t.endpoint, "repl-diskless-load"), "disabled");
    assert.equal(str(((await command(t.endpoint, "ROLE")) as RespValue[])[0]!), "master");
  });

  test("a Redis 7.4 backup into Debian's 7.0: the command path (RDB 12 > 10), every key equal, digest verified", { skip: missing(v74) }, async (ctx) => {
    const t = targets.t70!;
    const task = await waitForTask(c, await restore(ids.t70, await backupOf(ids.src74), "tpw"));
    ctx.diagnostic(task.TaskMessage ?? "");
    assert.equal(task.Status, "succeed", task.TaskMessage);
    assert.match(task.TaskMessage!, /^commands \(the target \(Redis 7\.0\.\d+\) loads RDB versions up to 10, the backup is version 12\): \d+ written, 0 skipped, 0 failed/);
    assert.match(task.TaskMessage!, /verified equal \(digest [0-9a-f]{40}\)$/);
    await assertSameData(src74!.endpoint, t.endpoint);
    // The scores of this data set print alike in 7.4's and 7.0's formats, so the digests are equal too.
    assert.equal(str(await command(t.endpoint, "DEBUG", "DIGEST")), str(await command(src74!.endpoint, "DEBUG", "DIGEST")));
  });

  test("a target with REPLICAOF renamed away: auto falls back to commands before touching it", async (ctx) => {
    const t = targets.noRepl!;
    const task = await waitForTask(c, await restore(ids.noRepl, await backupOf(ids.src70)));
    ctx.diagnostic(task.TaskMessage ?? "");
    assert.equal(task.Status, "succeed", task.TaskMessage);
    assert.match(task.TaskMessage!, /^commands \(the target refused replication \(target 127\.0\.0\.1:\d+ refused REPLICAOF: ERR unknown command/);
    assert.match(task.TaskMessage!, /verified equal \(digest [0-9a-f]{40}\)$/);
    await assertSameData(src70.endpoint, t.endpoint);
    // swapdb was set for the replication attempt and put back when REPLICAOF was refused
    assert.equal(await config(t.endpoint, "repl-diskless-load"), "disabled");
  });

  test("a 3-master cluster backup into a fresh 5-master cluster: commands, every key with its value and TTL, verified key by key", async (ctx) => {
    const writes: Array<Array<string | number>> = [];
    for (let i = 0; i < 200; i++) {
      writes.push(["SET", `str:${i}`, `value-${i}`]);
      if (i % 3 === 0) writes.push(["SET", `ttl:${i}`, "v", "PX", 3_600_000]);
      if (i % 5 === 0) writes.push(["RPUSH", `list:${i}`, "a", i, "c"]);
      if (i % 7 === 0) writes.push(["HSET", `hash:${i}`, ...Array.from({ length: 50 }, (_, j) => [`f${j}`, `v${j}`]).flat()]);
      if (i % 11 === 0) writes.push(["ZADD", `zset:${i}`, 1.5, "x", 2, "y"]);
      if (i % 13 === 0) writes.push(["SADD", `{tag}:set:${i}`, "m1", "m2", i]);
    }
    const src = await ClusterClient.open(source3[0]!.endpoint);
    const dst = await ClusterClient.open(five[0]!.endpoint);
    try {
      await Promise.all(writes.map((w) => src.run(String(w[1]), ...w)));
      const keys = writes.map((w) => String(w[1]));
      const backupId = await backupOf(ids.cluster3);
      const detail = await srv.services.catalog.backup(backupId);
      assert.equal(detail!.files.length, 3, "one file per master");
      const task = await waitForTask(c, await restore(ids.cluster5, backupId, CPW));
      ctx.diagnostic(task.TaskMessage ?? "");
      assert.equal(task.Status, "succeed", task.TaskMessage);
      assert.match(task.TaskMessage!, new RegExp(`^commands \\(a cluster backup \\(3 shards\\)\\): ${keys.length} written, 0 skipped, 0 failed`));
      assert.match(task.TaskMessage!, new RegExp(`verified equal key by key \\(${keys.length} keys\\)$`));
      let total = 0;
      for (const n of five) total += await dbsize(n.endpoint);
      assert.equal(total, keys.length);
      for (const k of keys) {
        assert.equal(str(((await dst.run(k, "DEBUG", "DIGEST-VALUE", k)) as RespValue[])[0]!), str(((await src.run(k, "DEBUG", "DIGEST-VALUE", k)) as RespValue[])[0]!), `value of ${k}`);
        const a = Number(await src.run(k, "PTTL", k));
        const b = Number(await dst.run(k, "PTTL", k));
        if (a < 0) assert.equal(b, a, `no TTL on ${k}`);
        else assert.ok(b > 0 && Math.abs(a - b) < 60_000, `TTL of ${k}: ${a} vs ${b}`);
      }
    } finally {
      src.close();
      dst.close();
    }
  });
});

describe("a target killed mid-restore", () => {
  test("commands: the task fails with a message naming the target, without hanging", async (ctx) => {
    const t = targets.killCmd!;
    const backupId = await backupOf(ids.big);
    const taskId = await restore(ids.killCmd, backupId);
    await waitFor("keys arriving on the target", async () => ((await dbsize(t.endpoint)) > 0 ? true : undefined), 30_000, 5);
    t.kill();
    const started = Date.now();
    const task = await waitForTask(c, taskId, 30_000);
    ctx.diagnostic(task.TaskMessage ?? "");
    assert.equal(task.Status, "failed");
    assert.match(task.TaskMessage!, /^commands: restore into 127\.0\.0\.1:\d+ failed after \d+ keys written/);
    assert.match(task.TaskMessage!, /the target keeps the keys written before the failure$/);
    assert.ok(Date.now() - started < 20_000);
    assert.equal((await c.DescribeBackupDetail({ InstanceId: ids.big, BackupId: backupId })).Locked, 0, "the backup is unlocked");
  });

  test("replication: the task fails with a message, without hanging", async (ctx) => {
    const t = targets.killRepl!;
    const backupId = await backupOf(ids.big);
    const taskId = await restore(ids.killRepl, backupId);
    await waitFor("the target to replicate from us", async () => {
      const role = (await command(t.endpoint, "ROLE")) as RespValue[];
      return str(role[0]!) === "slave" ? true : undefined;
    }, 30_000, 2);
    t.kill();
    const task = await waitForTask(c, taskId, 30_000);
    ctx.diagnostic(task.TaskMessage ?? "");
    assert.equal(task.Status, "failed");
    assert.match(task.TaskMessage!, /^replication: .*target 127\.0\.0\.1:\d+/);
    // what could not be undone on a dead target is said once, with what to run when it is back
    assert.match(task.TaskMessage!, /run REPLICAOF NO ONE on it/);
    assert.equal(task.TaskMessage!.split("could not be set back").length - 1, 1, task.TaskMessage);
  });
});

/** Runs one command on the master owning `key` (routed by our own slot map, as a cluster client would). */
