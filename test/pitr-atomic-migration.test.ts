// Atomic slot migration while a cluster streams (Valkey 9: CLUSTER MIGRATESLOTS; Redis 8.4+: CLUSTER MIGRATION
// IMPORT). Neither sends RESTORE-ASKING: Valkey's importing master gets `CLUSTER SYNCSLOTS ESTABLISH ... FINISH`
// around plain SET/HSET/... and its source master only plain UNLINKs; Redis's masters both get `CLUSTER SYNCSLOTS
// CONF ASM-TASK ...` and the source a `TRIMSLOTS`. The stream must see those as keys moving between masters: the
// seconds of the move are missing (replayed shard by shard they would restore wrong), every shard re-bases, and a
// second after that clones exactly, into a cluster of the same shape.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { readSlotMap } from "../src/redis/client/cluster";
import { LocalTime } from "../src/protocol/time";
import { clusterClonePorts, keySlot, RedisProcess, startCluster, waitFor } from "./support/redis";
import { KEY, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";
import { getAll, killClones, rebasedAfterMove, shapeOf } from "./support/pitr";
import { send } from "./support/dataset";
import { missing, version } from "./support/versions";

const PW = "pitr-asm-pw";
const ID = "crs-pasm0001";
const tz = new LocalTime("Asia/Shanghai");
const KEYS = Array.from({ length: 40 }, (_, i) => `{mv}:${i}`);
const SLOT = keySlot(KEYS[0]!);

const running: Array<{ nodes: RedisProcess[]; srv: TestServer }> = [];

after(async () => {
  for (const { nodes, srv } of running) {
    await srv.close();
    killClones(path.join(srv.dataDir, "data"));
    for (const n of nodes) n.kill();
  }
});

/** Moves SLOT from its master to the other one with the server's own atomic slot migration; resolves once done. */
async function migrateAtomically(server: "redis" | "valkey", nodes: RedisProcess[]): Promise<void> {
  const map = await readSlotMap(nodes[0]!.endpoint);
  const from = map.find((r) => SLOT >= r.start && SLOT <= r.end)!.master;
  const to = map.find((r) => r.master.port !== from.port)!.master;
  const toId = String((await send({ ...to, password: PW }, [["CLUSTER", "MYID"]]))[0]);
  const [reply] = server === "valkey"
    ? await send({ ...from, password: PW }, [["CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", String(SLOT), String(SLOT), "NODE", toId]])
    : await send({ ...to, password: PW }, [["CLUSTER", "MIGRATION", "IMPORT", String(SLOT), String(SLOT)]]);
  assert.ok(!(reply instanceof Error), String(reply));
  await waitFor("the slot served by its new master, its keys gone from the old one", async () => {
    const now = await readSlotMap(nodes[0]!.endpoint);
    if (now.find((r) => SLOT >= r.start && SLOT <= r.end)?.master.port !== to.port) return undefined;
    const left = Number((await send({ ...from, password: PW }, [["CLUSTER", "COUNTKEYSINSLOT", String(SLOT)]]))[0]);
    const arrived = Number((await send({ ...to, password: PW }, [["CLUSTER", "COUNTKEYSINSLOT", String(SLOT)]]))[0]);
    return left === 0 && arrived === KEYS.length ? true : undefined;
  }, 30_000, 100);
}

for (const name of ["valkey-9.1", "8.6"]) {
  const v = version(name);
  describe(`atomic slot migration on ${name}`, { skip: missing(v) }, () => {
    let nodes: RedisProcess[];
    let srv: TestServer;
    let c: SdkClient;
    const info = (sec: number) => c.DescribeSecondLevelBackupInfo({ InstanceId: ID, BackupTimestamp: sec });

    test(`${name}: the move is seen in the stream, its seconds are missing, every shard re-bases, a second after clones exactly`, async () => {
      nodes = await startCluster(3, PW, [...v.args, "--repl-diskless-sync-delay", "0"], 0, v.bin);
      srv = await startTestServer({
        Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
        Instances: [{ InstanceId: ID, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:${PW}@127.0.0.1:${nodes[0]!.port}` }],
      }, { rateLimit: 0, pitrRebaseAfterMs: 1000, cloneRedisServer: v.bin!, clonePorts: clusterClonePorts(10) });
      running.push({ nodes, srv });
      c = srv.client({ language: "en-US" });
      await c.ModifyInstanceBackupMode({ InstanceId: ID, BackupMode: "SecondLevelBackup" });
      await waitFor("every shard streaming", async () => (await info(Math.floor(Date.now() / 1000) - 1)).BackupId || undefined, 30_000, 200);

      // The keys written into one slot of the first master, and in the stream.
      const owner = (await readSlotMap(nodes[0]!.endpoint)).find((r) => SLOT >= r.start && SLOT <= r.end)!.master;
      await send({ ...owner, password: PW }, KEYS.map((k, i) => ["SET", k, `old-${i}`]));
      const written = Math.floor(Date.now() / 1000) + 1;
      await waitFor(`second ${written} covered`, async () => (await info(written)).BackupId || undefined, 30_000, 200);
      assert.equal(await srv.services.catalog.lastKeyMove(ID), undefined, "no key has moved yet");

      const moving = Date.now();
      await migrateAtomically(v.server, nodes);
      const moveSec = Math.floor(Date.now() / 1000);
      const moved = await waitFor("the stream to record the move", async () => srv.services.catalog.lastKeyMove(ID), 20_000, 100);
      assert.ok(moved >= moving - 1000, `the move recorded at ${moved}, the migration began at ${moving}`);

      // Writes on the new master after the move; then every shard takes a new base.
      const newOwner = (await readSlotMap(nodes[0]!.endpoint)).find((r) => SLOT >= r.start && SLOT <= r.end)!.master;
      await send({ ...newOwner, password: PW }, KEYS.slice(0, 10).map((k, i) => ["SET", k, `new-${i}`]));
      const last = (await srv.services.catalog.lastKeyMove(ID))!;
      const { sec, base } = await rebasedAfterMove(srv.services.catalog, ID, 3, last, moveSec, info);

      // A clone at the later second: a cluster of 3 masters with the slot at its new owner, every key as it was then.
      const out = await c.CloneInstances({
        InstanceId: ID, BackupId: base, GoodsNum: 1, ZoneId: 100003, BillingMode: 0, Period: 1, SecurityGroupIdList: [], NoAuth: true, CloneTime: tz.format(sec * 1000),
      });
      const t = await waitForTask(c, Number(out.DealId), 120_000);
      assert.equal(t.Status, "succeed", t.TaskMessage);
      const i = (await c.DescribeInstances({ InstanceId: out.InstanceIds![0]! })).InstanceSet![0]!;
      const ep = { host: "127.0.0.1", port: i.Port! };
      assert.deepEqual(await shapeOf(ep), await shapeOf(nodes[0]!.endpoint), "the source's masters and slots, the moved slot included");
      const got = await getAll(ep, KEYS);
      for (const [n, k] of KEYS.entries()) assert.equal(String(got[n]), `${n < 10 ? "new" : "old"}-${n}`, k);
    });
  });
}
