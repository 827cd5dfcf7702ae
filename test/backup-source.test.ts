// Backups taken from replicas (issue 18.3): a Redis Cluster with one replica per master backed up with
// BackupSource replica leaves every master's fork count (INFO stats total_forks) where it was, each shard
// recorded with the replica and replication offset it came from; prefer-replica falls back to the master and
// says so; replica alone never forks the master. Which replicas are fit is decided from their INFO replication.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { replicaProblem } from "../src/redis/capture/source";
import { ClusterClient, infoField, RedisProcess, startCluster, startRedis, waitFor } from "./support/redis";
import { send } from "./support/dataset";
import { KEY, SdkClient, startTestServer, TestServer } from "./support/server";

const ID = { cluster: "crs-rs000001", prefer: "crs-rs000002", only: "crs-rs000003", pair: "crs-rs000004" };
const servers: RedisProcess[] = [];
let cluster: RedisProcess[];
let lone: RedisProcess;
let pairMaster: RedisProcess;
let pairReplica: RedisProcess;
let srv: TestServer;
let c: SdkClient;

const forks = async (n: RedisProcess): Promise<number> => Number(await infoField(n, "stats", "total_forks"));

async function backup(id: string): Promise<{ Status?: string; TaskMessage?: string }> {
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: id });
  return waitFor(`task ${TaskId}`, async () => {
    const t = await c.DescribeTaskInfo({ TaskId: TaskId! });
    return t.Status === "preparing" || t.Status === "running" ? undefined : t;
  }, 60_000, 50);
}

/** The newest backup of `id`, once its data-set digest (and key count), computed after the transfer, is attached. */
async function newest(id: string) {
  const b = (await srv.services.catalog.backupsOfInstance(id)).sort((a, b) => b.startTime - a.startTime)[0]!;
  await srv.services.digests?.settled(b.backupId);
  return (await srv.services.catalog.backup(b.backupId))!;
}

before(async () => {
  const opts = ["--repl-diskless-sync-delay", "0"];
  cluster = await startCluster(3, "cpw", opts, 1);
  servers.push(...cluster);
  const cc = await ClusterClient.open(cluster[0]!.endpoint);
  for (let i = 0; i < 300; i++) await cc.run(`rk:${i}`, "SET", `rk:${i}`, `v${i}`);
  cc.close();
  lone = await startRedis(opts);
  pairMaster = await startRedis([...opts, "--requirepass", "ppw"], { password: "ppw" });
  pairReplica = await startRedis([...opts, "--requirepass", "ppw", "--masterauth", "ppw", "--replicaof", "127.0.0.1", String(pairMaster.port)], { password: "ppw" });
  servers.push(lone, pairMaster, pairReplica);
  await send(lone.endpoint, [["SET", "a", "1"]]);
  await send(pairMaster.endpoint, [["SET", "p", "1"], ["SET", "q", "2"]]);
  // Every replica has everything its master has.
  for (const n of [...cluster, pairReplica]) {
    await waitFor(`node ${n.port} caught up`, async () => {
      if ((await infoField(n, "replication", "role")) !== "slave") return true;
      const masterPort = Number(await infoField(n, "replication", "master_port"));
      const master = [...cluster, pairMaster].find((m) => m.port === masterPort)!;
      return (await infoField(n, "replication", "master_link_status")) === "up"
        && (await infoField(n, "replication", "slave_repl_offset")) === (await infoField(master, "replication", "master_repl_offset")) || undefined;
    }, 30_000, 50);
  }
  const masterNode = await (async () => {
    for (const n of cluster) if ((await infoField(n, "replication", "role")) === "master") return n;
    throw new Error("no master");
  })();
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [
      { InstanceId: ID.cluster, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:cpw@127.0.0.1:${masterNode.port}`, BackupSource: "replica" },
      { InstanceId: ID.prefer, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${lone.port}`, BackupSource: "prefer-replica" },
      { InstanceId: ID.only, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${lone.port}`, BackupSource: "replica" },
      { InstanceId: ID.pair, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:ppw@127.0.0.1:${pairMaster.port}`, BackupSource: "prefer-replica" },
    ],
  }, { rateLimit: 0 });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  await srv?.close();
  for (const s of servers) s.kill();
});

describe("backups from replicas", () => {
  test("a cluster with one replica per master: every shard from its replica, the masters' total_forks unchanged", async () => {
    const roles = await Promise.all(cluster.map(async (n) => infoField(n, "replication", "role")));
    const masters = cluster.filter((_, i) => roles[i] === "master");
    const replicas = cluster.filter((_, i) => roles[i] === "slave");
    assert.equal(masters.length, 3);
    assert.equal(replicas.length, 3);
    const mastersBefore = await Promise.all(masters.map(forks));
    const replicasBefore = await Promise.all(replicas.map(forks));

    const t = await backup(ID.cluster);
    assert.equal(t.Status, "succeed", t.TaskMessage);
    assert.deepEqual(await Promise.all(masters.map(forks)), mastersBefore, "a master forked during a backup from replicas");
    const replicasAfter = await Promise.all(replicas.map(forks));
    replicas.forEach((_, i) => assert.equal(replicasAfter[i], replicasBefore[i]! + 1, "each replica forks once for its shard"));

    const b = await newest(ID.cluster);
    assert.equal(b.status, 2);
    assert.equal(b.files.length, 3);
    assert.equal(b.files.reduce((n, f) => n + (f.keys ?? 0), 0), 300, "the replicas' snapshots hold every key");
    assert.deepEqual(b.source!.map((s) => s.role), ["replica", "replica", "replica"]);
    assert.deepEqual(b.source!.map((s) => s.node).sort(), replicas.map((r) => `127.0.0.1:${r.port}`).sort());
    for (const s of b.source!) {
      const replica = replicas.find((r) => s.node === `127.0.0.1:${r.port}`)!;
      // the replica's own offset at the snapshot (it only grows: the master's PINGs move it on)
      assert.ok(s.offset! > 0 && s.offset! <= Number(await infoField(replica, "replication", "slave_repl_offset")), `offset ${s.offset}`);
      assert.match(t.TaskMessage!, new RegExp(`replica ${s.node} \\(offset ${s.offset}\\)`));
    }
    // Each shard's replica follows one of the masters, a different one each.
    const followed = await Promise.all(b.source!.map(async (s) => Number(await infoField(replicas.find((r) => s.node === `127.0.0.1:${r.port}`)!, "replication", "master_port"))));
    assert.deepEqual(followed.sort(), masters.map((m) => m.port).sort());
  });

  test("a standalone master's replica is found through INFO replication", async () => {
    const before = await forks(pairMaster);
    const t = await backup(ID.pair);
    assert.equal(t.Status, "succeed", t.TaskMessage);
    assert.match(t.TaskMessage!, new RegExp(`from replica 127\\.0\\.0\\.1:${pairReplica.port} \\(offset \\d+\\)(;|$)`));
    assert.equal(await forks(pairMaster), before);
    assert.equal((await newest(ID.pair)).files[0]!.keys, 2);
  });

  test("prefer-replica without a replica: taken from the master, and the task says so", async () => {
    const t = await backup(ID.prefer);
    assert.equal(t.Status, "succeed", t.TaskMessage);
    assert.match(t.TaskMessage!, new RegExp(`from master 127\\.0\\.0\\.1:${lone.port} \\(offset \\d+\\);.*shard 1 taken from the master: the master 127\\.0\\.0\\.1:${lone.port} has no replica`));
    assert.equal((await newest(ID.prefer)).source![0]!.role, "master");
  });

  test("replica without a healthy replica: failed, and the master was not forked", async () => {
    const before = await forks(lone);
    const t = await backup(ID.only);
    assert.equal(t.Status, "failed");
    assert.match(t.TaskMessage!, /shard 1: the master 127\.0\.0\.1:\d+ has no replica; the backup source is replica, so the master is not forked/);
    assert.equal(await forks(lone), before);
    const { BackupSet } = await c.DescribeInstanceBackups({ InstanceId: ID.only, Limit: 10 });
    assert.equal(BackupSet!.length, 0);
  });

  test("which replicas are fit: link down, syncing, another history, lagging beyond the bound", () => {
    const info = (o: Record<string, string>) => new Map(Object.entries({ role: "slave", master_link_status: "up", master_sync_in_progress: "0", master_replid: "r1", slave_repl_offset: "1000", ...o }));
    const master = { replid: "r1", offset: 1500 };
    assert.equal(replicaProblem(info({}), master, 1000), undefined);
    assert.match(replicaProblem(info({ master_link_status: "down" }), master, 1000)!, /link to the master is down \(master_link_status\)/);
    assert.match(replicaProblem(info({ master_sync_in_progress: "1" }), master, 1000)!, /still syncing/);
    assert.match(replicaProblem(info({ master_replid: "r2" }), master, 1000)!, /another replication history/);
    assert.match(replicaProblem(info({}), master, 100)!, /lags 500 bytes behind the master \(offset 1000, the master's 1500; at most 100 allowed\)/);
    assert.match(replicaProblem(info({ role: "master" }), master, 100)!, /role:master/);
  });
});
