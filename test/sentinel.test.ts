// A Sentinel-managed Redis (issue 18.2, 18.3): three Sentinels, a master and a replica started by the test, all
// with passwords (the data nodes' and the Sentinels' differ). The instance is registered by its
// redis-sentinel:// URL; every backup asks the Sentinels for the master, a SENTINEL FAILOVER between two backups
// is followed, one during a backup fails it cleanly naming the switch, and the next succeeds. The same deployment
// backed up from its replica leaves the master's fork count where it was.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { parseRedisUrl, RedisUrlError } from "../src/redis/client/url";
import { maskUrl } from "../src/log";
import { filesUnder, send } from "./support/dataset";
import { RedisProcess, startRedis, waitFor, withConn } from "./support/redis";
import { masterOf, SentinelProcess, startSentinel } from "./support/sentinel";
import { KEY, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";

const NAME = "crsmaster";
const DPW = "data-pw";
const SPW = "sentinel-pw";
const ID = { master: "crs-sn000001", replica: "crs-sn000002" };

let nodes: RedisProcess[] = [];
let sentinels: SentinelProcess[] = [];
let srv: TestServer;
let c: SdkClient;

const byPort = (addr: string): RedisProcess => nodes.find((n) => addr.endsWith(`:${n.port}`))!;
const info = async (n: RedisProcess, section: string): Promise<string> => String(await withConn(n, (x) => x.command("INFO", section)));
const field = (text: string, name: string): string | undefined => new RegExp(`^${name}:(.*)$`, "m").exec(text)?.[1]?.trim();

const waitTask = (taskId: number) => waitForTask(c, taskId);

/** Waits until every Sentinel names `addr` as the master, it says role:master and the other node follows it with its link up. */
async function settled(addr: string): Promise<void> {
  await waitFor(`every Sentinel naming ${addr}`, async () => {
    for (const s of sentinels) if ((await masterOf(s, NAME)) !== addr) return undefined;
    return true;
  }, 30_000, 100);
  const master = byPort(addr);
  const replica = nodes.find((n) => n !== master)!;
  await waitFor("the roles to settle", async () => {
    const m = await info(master, "replication");
    const r = await info(replica, "replication");
    return (field(m, "role") === "master" && field(r, "role") === "slave" && field(r, "master_port") === String(master.port)
      && field(r, "master_link_status") === "up" && field(r, "master_sync_in_progress") === "0") || undefined;
  }, 30_000, 100);
  // The Sentinels must see the replica too before they can promote it.
  await waitFor("the Sentinels to see a healthy replica", async () => {
    for (const s of sentinels) {
      const reps = (await s.command("SENTINEL", "replicas", NAME)) as Buffer[][];
      const ok = reps.some((r) => {
        const kv = new Map<string, string>();
        for (let i = 0; i + 1 < r.length; i += 2) kv.set(String(r[i]), String(r[i + 1]));
        return kv.get("port") === String(replica.port) && kv.get("flags") === "slave" && kv.get("master-link-status") === "ok";
      });
      if (!ok) return undefined;
    }
    return true;
  }, 30_000, 100);
}

async function backup(id: string): Promise<{ Status?: string; TaskMessage?: string }> {
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: id });
  return waitTask(TaskId!);
}

/** The newest backup of `id`, once its data-set digest (and key count), computed after the transfer, is attached. */
async function newestBackup(id: string) {
  const b = (await srv.services.catalog.backupsOfInstance(id)).sort((a, b) => b.startTime - a.startTime)[0]!;
  await srv.services.digests?.settled(b.backupId);
  return (await srv.services.catalog.backup(b.backupId))!;
}

before(async () => {
  const common = ["--requirepass", DPW, "--masterauth", DPW, "--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"];
  const master = await startRedis(common, { password: DPW });
  // Written by commands (DEBUG POPULATE is not replicated), before the replica starts: its first full sync
  // carries them, and it holds the same 201 keys before anything else begins (a replica started first and fed
  // during its initial diskless sync was seen, one run in a few, to end that sync empty at offset 0).
  await send(master.endpoint, [...Array.from({ length: 200 }, (_, i) => ["SET", `k:${i}`, `v${i}`]), ["SET", "before", "failover"]]);
  const replica = await startRedis([...common, "--replicaof", "127.0.0.1", String(master.port)], { password: DPW });
  nodes = [master, replica];
  await waitFor("the replica to hold the master's 201 keys", async () => {
    const [size, repl] = await send(replica.endpoint, [["DBSIZE"], ["INFO", "replication"]]);
    return Number(size) === 201 && /master_link_status:up/.test(String(repl)) || undefined;
  }, 20_000, 50);
  sentinels = await Promise.all([0, 1, 2].map(() => startSentinel({ masterName: NAME, masterPort: master.port, dataPassword: DPW, sentinelPassword: SPW })));
  await settled(`127.0.0.1:${master.port}`);
  const url = `redis-sentinel://:${DPW}@${sentinels.map((s) => `127.0.0.1:${s.port}`).join(",")}/${NAME}?sentinelPassword=${SPW}`;
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [
      { InstanceId: ID.master, InstanceName: "through sentinel", Region: "ap-guangzhou", Account: KEY.account, Redis: url },
      { InstanceId: ID.replica, InstanceName: "from its replica", Region: "ap-guangzhou", Account: KEY.account, Redis: url, BackupSource: "replica" },
    ],
  }, { rateLimit: 0 });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  await srv?.close();
  for (const s of sentinels) s.kill();
  for (const n of nodes) n.kill();
});

describe("redis-sentinel:// URLs", () => {
  test("hosts, default port, master name, data-node and Sentinel credentials; refusals name the part", () => {
    const u = parseRedisUrl("redis-sentinel://app:p%40ss@h1:26380,[::1],h3/mymaster?sentinelUsername=sen&sentinelPassword=s3");
    assert.equal(u.kind, "sentinel");
    if (u.kind !== "sentinel") return;
    assert.deepEqual(u.sentinels, [{ host: "h1", port: 26380 }, { host: "::1", port: 26379 }, { host: "h3", port: 26379 }]);
    assert.equal(u.masterName, "mymaster");
    assert.deepEqual(u.data, { username: "app", password: "p@ss" });
    assert.deepEqual(u.sentinel, { username: "sen", password: "s3" });
    const t = parseRedisUrl("rediss-sentinel://h1/m");
    assert.ok(t.kind === "sentinel" && t.data.tls && t.sentinel.tls);
    assert.throws(() => parseRedisUrl("redis-sentinel://h1:26379"), (e: unknown) => e instanceof RedisUrlError && /names no master/.test(e.message));
    assert.throws(() => parseRedisUrl("redis-sentinel://h1:99999/m"), /port 99999/);
    assert.throws(() => parseRedisUrl("redis-sentinel://h1/m?password=x"), /unknown parameter "password"/);
    assert.throws(() => parseRedisUrl("redis-sentinel:///m"), /names no Sentinel/);
    assert.deepEqual(parseRedisUrl("redis://:pw@10.0.0.5"), { kind: "direct", endpoint: { host: "10.0.0.5", port: 6379, password: "pw" } });
    const masked = maskUrl("redis-sentinel://app:secret@h1,h2/m?sentinelPassword=alsosecret");
    assert.doesNotMatch(masked, /secret/);
    assert.match(masked, /^redis-sentinel:\/\/app:\*\*\*@h1,h2\/m\?sentinelPassword=\*\*\*$/);
  });

  test("a fixture refuses a bad Sentinel URL or BackupSource, naming the field", async () => {
    await assert.rejects(startTestServer({ Instances: [{ InstanceId: "crs-sn000009", Region: "ap-guangzhou", Redis: "redis-sentinel://h1:26379" }] }), /Instances\[0\]\.Redis: .*names no master/);
    await assert.rejects(startTestServer({ Instances: [{ InstanceId: "crs-sn000009", Region: "ap-guangzhou", Redis: "redis://h:1", BackupSource: "slave" }] }), /Instances\[0\]\.BackupSource: must be one of master, replica, prefer-replica, got "slave"/);
  });
});

describe("Sentinel", () => {
  test("DescribeInstances shows the first Sentinel; the data password decides NoAuth", async () => {
    const { InstanceSet } = await c.DescribeInstances({ InstanceId: ID.master });
    assert.equal(InstanceSet![0]!.WanIp, "127.0.0.1");
    assert.equal(InstanceSet![0]!.Port, sentinels[0]!.port);
    assert.equal(InstanceSet![0]!.NoAuth, false);
  });

  test("a failover between two backups is followed; a restore goes to the master of now", async () => {
    const first = byPort(await masterOf(sentinels[0]!, NAME));
    const t1 = await backup(ID.master);
    assert.equal(t1.Status, "succeed", t1.TaskMessage);
    assert.match(t1.TaskMessage!, new RegExp(`from master 127\\.0\\.0\\.1:${first.port} \\(offset \\d+\\)`));
    const b1 = await newestBackup(ID.master);
    assert.equal(b1.status, 2);
    assert.deepEqual(b1.source?.map((s) => [s.role, s.node]), [["master", `127.0.0.1:${first.port}`]]);

    assert.equal(String(await sentinels[0]!.command("SENTINEL", "FAILOVER", NAME)), "OK");
    const second = nodes.find((n) => n !== first)!;
    await settled(`127.0.0.1:${second.port}`);
    await send(second.endpoint, [["SET", "after", "failover"]]);

    const t2 = await backup(ID.master);
    assert.equal(t2.Status, "succeed", t2.TaskMessage);
    assert.match(t2.TaskMessage!, new RegExp(`from master 127\\.0\\.0\\.1:${second.port} `));
    const b2 = await newestBackup(ID.master);
    assert.deepEqual(b2.source?.map((s) => s.node), [`127.0.0.1:${second.port}`]);
    assert.equal(b2.files[0]!.keys, b1.files[0]!.keys! + 1, "the second backup holds the key written to the new master");

    // The first backup restored into the instance lands on the current master (the key written since goes).
    const { TaskId } = await c.RestoreInstance({ InstanceId: ID.master, BackupId: b1.backupId, Password: DPW });
    const r = await waitTask(TaskId!);
    assert.equal(r.Status, "succeed", r.TaskMessage);
    const [after, before] = await send(second.endpoint, [["GET", "after"], ["GET", "before"]]);
    assert.equal(after, null);
    assert.equal(String(before), "failover");
    await settled(`127.0.0.1:${second.port}`);
  });

  test("a failover during a backup fails it, naming the switch; nothing is left; the next one succeeds", async () => {
    const from = byPort(await masterOf(sentinels[0]!, NAME));
    const to = nodes.find((n) => n !== from)!;
    // No snapshot of the replica's own resync still running: the next fork is the backup's.
    await waitFor("no fork under way", async () => (field(await info(from, "persistence"), "rdb_bgsave_in_progress") === "0"
      && !/state=(wait_bgsave|send_bulk)/.test(await info(from, "replication"))) || undefined, 20_000, 50);
    // 201 keys at 20 ms each: the snapshot takes about 4 s, long enough to fail over in the middle of it.
    await send(from.endpoint, [["CONFIG", "SET", "rdb-key-save-delay", "20000"]]);
    try {
      const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID.master });
      await waitFor("the snapshot to be under way", async () => field(await info(from, "persistence"), "rdb_bgsave_in_progress") === "1" || undefined, 20_000, 20);
      assert.equal(String(await sentinels[1]!.command("SENTINEL", "FAILOVER", NAME)), "OK");
      const t = await waitTask(TaskId!);
      assert.equal(t.Status, "failed");
      assert.match(t.TaskMessage!, new RegExp(`the master of ${NAME} switched from 127\\.0\\.0\\.1:${from.port} to 127\\.0\\.0\\.1:${to.port} during the backup \\(Sentinel failover`));
      assert.match(t.TaskMessage!, /this backup was discarded and the next one is taken from the new master/);
      assert.doesNotMatch(t.TaskMessage!, new RegExp(`${DPW}|${SPW}`));
      const { BackupSet } = await c.DescribeInstanceBackups({ InstanceId: ID.master, Limit: 100 });
      assert.ok(BackupSet!.every((b) => b.Status !== 1), "no backup is left at Status 1");
      const stored = await srv.services.catalog.backupsOfInstance(ID.master);
      const files = filesUnder(path.join(srv.dataDir, "data", "files", "backups")).map((f) => path.basename(path.dirname(f)));
      assert.ok(files.every((id) => stored.some((b) => b.backupId === id && b.status === 2)), `orphan files: ${files.join(", ")}`);
    } finally {
      await send(from.endpoint, [["CONFIG", "SET", "rdb-key-save-delay", "0"]]);
    }
    await settled(`127.0.0.1:${to.port}`);
    const next = await backup(ID.master);
    assert.equal(next.Status, "succeed", next.TaskMessage);
    assert.match(next.TaskMessage!, new RegExp(`from master 127\\.0\\.0\\.1:${to.port} `));
  });

  test("BackupSource replica: the snapshot comes from the replica; the master's total_forks does not move", async () => {
    const master = byPort(await masterOf(sentinels[0]!, NAME));
    const replica = nodes.find((n) => n !== master)!;
    const forks = async (n: RedisProcess) => Number(field(await info(n, "stats"), "total_forks"));
    const [masterBefore, replicaBefore] = [await forks(master), await forks(replica)];
    const t = await backup(ID.replica);
    assert.equal(t.Status, "succeed", t.TaskMessage);
    assert.match(t.TaskMessage!, new RegExp(`from replica 127\\.0\\.0\\.1:${replica.port} \\(offset \\d+\\)`));
    assert.equal(await forks(master), masterBefore, "the master forked");
    assert.ok((await forks(replica)) > replicaBefore, "the replica did not fork: where did the snapshot come from?");
    const b = await newestBackup(ID.replica);
    assert.equal(b.source![0]!.role, "replica");
    assert.equal(b.source![0]!.node, `127.0.0.1:${replica.port}`);
    assert.ok(b.source![0]!.offset! > 0);
  });
});
