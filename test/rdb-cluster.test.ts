// Cluster backups restored by commands: a 3-master Redis Cluster (Debian 7.0) is backed up through the capture
// path (one RDB per master) and restored into a fresh 3-master and a fresh 5-master cluster; every key must be
// present on its new owner with the same DEBUG DIGEST-VALUE and TTL. Redirections: a deliberately stale slot
// map makes every misrouted command come back MOVED; a slot in migration makes new keys come back ASK.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { keySlot, readSlotMap, SlotRange } from "../src/redis/client/cluster";
import { discoverShards } from "../src/redis/capture/capture";
import { readRdbSync, RdbType, verifyAgainstServer } from "../src/redis/rdb/index";
import { restoreByCommands } from "../src/redis/restore/commands";
import { RedisEndpoint, RespConnection, RespValue } from "../src/redis/client/resp";
import { captureToBuffer } from "./support/rdb-corpus";
import { RdbBuilder } from "./support/rdb-build";
import { RedisProcess, startCluster, ClusterClient } from "./support/redis";

const PASSWORD = "cluster-pw";
const DEBUG = ["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"];
const str = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : String(v));

/** Runs one command on the master owning `key` (routed by our own slot map, as a cluster client would). */

const seedOf = (nodes: RedisProcess[]): RedisEndpoint => nodes[0].endpoint;

async function dbsizeSum(nodes: RedisProcess[]): Promise<number> {
  let n = 0;
  for (const node of nodes) {
    const c = await node.connect();
    n += Number(await c.command("DBSIZE"));
    c.close();
  }
  return n;
}

/** Every key of the backups: DEBUG DIGEST-VALUE and PTTL on the target equal the source's. */
async function assertSameKeys(keys: string[], source: ClusterClient, target: ClusterClient): Promise<void> {
  for (const k of keys) {
    const [want] = (await source.run(k, "DEBUG", "DIGEST-VALUE", k)) as RespValue[];
    const [got] = (await target.run(k, "DEBUG", "DIGEST-VALUE", k)) as RespValue[];
    assert.equal(str(got), str(want), `value of ${k}`);
    const a = Number(await source.run(k, "PTTL", k));
    const b = Number(await target.run(k, "PTTL", k));
    if (a < 0) assert.equal(b, a, `no TTL on ${k}`);
    else assert.ok(Math.abs(a - b) < 60_000 && b > 0, `TTL of ${k}: ${a} vs ${b}`);
  }
}

describe("cluster backups restored by commands", () => {
  let source: RedisProcess[];
  let three: RedisProcess[];
  let five: RedisProcess[];
  let rdbs: Buffer[];
  let keys: string[];
  let src: ClusterClient;

  before(async () => {
    [source, three, five] = await Promise.all([startCluster(3, PASSWORD, DEBUG), startCluster(3, PASSWORD, DEBUG), startCluster(5, PASSWORD, DEBUG)]);
    src = await ClusterClient.open(seedOf(source));
    const writes: Array<Promise<RespValue>> = [];
    for (let i = 0; i < 150; i++) {
      writes.push(src.run(`str:${i}`, "SET", `str:${i}`, `value-${i}`));
      if (i % 3 === 0) writes.push(src.run(`ttl:${i}`, "SET", `ttl:${i}`, "v", "PX", 3_600_000));
      if (i % 5 === 0) writes.push(src.run(`list:${i}`, "RPUSH", `list:${i}`, "a", i, "c"));
      if (i % 7 === 0) writes.push(src.run(`hash:${i}`, "HSET", `hash:${i}`, ...Array.from({ length: 200 }, (_, j) => [`f${j}`, `v${j}`]).flat()));
      if (i % 11 === 0) writes.push(src.run(`zset:${i}`, "ZADD", `zset:${i}`, 1.5, "x", 2, "y"));
      if (i % 13 === 0) writes.push(src.run(`{tag}:set:${i}`, "SADD", `{tag}:set:${i}`, "m1", "m2", i));
    }
    await Promise.all(writes);
    await src.run("stream", "XADD", "stream", "1-1", "f", "v");
    await src.run("stream", "XGROUP", "CREATE", "stream", "g", "0");
    await src.run("stream", "XREADGROUP", "GROUP", "g", "c", "STREAMS", "stream", ">");
    const shards = await discoverShards(seedOf(source));
    assert.equal(shards.masters.length, 3);
    rdbs = await Promise.all(shards.masters.map((m) => captureToBuffer(m)));
    keys = rdbs.flatMap((r) => readRdbSync(r).keys.map((k) => k.key.toString()));
    assert.equal(keys.length, await dbsizeSum(source));
  });

  after(() => {
    src?.close();
    for (const n of [...(source ?? []), ...(three ?? []), ...(five ?? [])]) n.kill();
  });

  for (const [name, nodes] of [["3-master", () => three], ["5-master", () => five]] as const) {
    test(`a 3-shard backup into a fresh ${name} cluster: every key with value and TTL`, async () => {
      const target = nodes();
      const s = await restoreByCommands(rdbs, { target: seedOf(target) });
      assert.equal(s.failed, 0, JSON.stringify(s.failures.slice(0, 3)));
      assert.equal(s.keys, keys.length);
      assert.ok(s.target.cluster);
      assert.equal(await dbsizeSum(target), keys.length);
      const dst = await ClusterClient.open(seedOf(target));
      try {
        await assertSameKeys(keys, src, dst);
      } finally {
        dst.close();
      }
      const v = await verifyAgainstServer(rdbs.map((r) => (async function* () { yield r; })()), seedOf(target));
      assert.deepEqual([v.keys, v.missing, v.different, v.extraOnTarget], [keys.length, 0, 0, 0]);
    });
  }

  test("a stale slot map: misrouted commands come back MOVED and are re-sent to the owner", async () => {
    const c = await RespConnection.connect(seedOf(five));
    await Promise.all(five.map(async (n) => {
      const x = await n.connect();
      await x.command("FLUSHALL");
      x.close();
    }));
    c.close();
    // claim that the first master serves every slot
    const stale: SlotRange[] = [{ start: 0, end: 16383, master: seedOf(five) }];
    const s = await restoreByCommands(rdbs, { target: seedOf(five), slotMap: stale, mode: "commands" });
    assert.equal(s.failed, 0, JSON.stringify(s.failures.slice(0, 3)));
    assert.equal(s.keys, keys.length);
    assert.ok(s.redirections!.moved > keys.length / 2, `${s.redirections!.moved} MOVED replies followed`);
    assert.ok(s.redirections!.mapRefreshes >= 1);
    const dst = await ClusterClient.open(seedOf(five));
    try {
      await assertSameKeys(keys, src, dst);
    } finally {
      dst.close();
    }
  });

  test("a slot being migrated: new keys come back ASK and are written on the importing node", async () => {
    const target = three;
    const map = await readSlotMap(seedOf(target));
    const slot = keySlot("{ask}");
    const from = map.find((r) => slot >= r.start && slot <= r.end)!.master;
    const toEp = map.find((r) => r.master.port !== from.port)!.master;
    const id = async (ep: RedisEndpoint): Promise<string> => {
      const c = await RespConnection.connect(ep);
      try {
        return str(await c.command("CLUSTER", "MYID"));
      } finally {
        c.close();
      }
    };
    const [fromId, toId] = [await id(from), await id(toEp)];
    const run = async (ep: RedisEndpoint, ...args: string[]): Promise<RespValue> => {
      const c = await RespConnection.connect(ep);
      try {
        return await c.command(...args);
      } finally {
        c.close();
      }
    };
    await run(toEp, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", fromId);
    await run(from, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", toId);
    const b = new RdbBuilder(10).selectDb(0);
    for (let i = 0; i < 20; i++) b.key(RdbType.STRING, `{ask}:${i}`).str(`v${i}`);
    b.key(RdbType.LIST, "{ask}:list").len(2).str("a").str("b");
    const s = await restoreByCommands(b.end(), { target: seedOf(target) });
    assert.equal(s.failed, 0, JSON.stringify(s.failures));
    assert.equal(s.keys, 21);
    assert.ok(s.redirections!.ask >= 21, `${s.redirections!.ask} ASK replies followed`);
    // finish the migration; the keys are where ASK sent them
    for (const n of target) await run(n.endpoint, "CLUSTER", "SETSLOT", String(slot), "NODE", toId);
    assert.equal(Number(await run(toEp, "CLUSTER", "COUNTKEYSINSLOT", String(slot))), 21);
    assert.equal(str(await run(toEp, "GET", "{ask}:7")), "v7");
    assert.deepEqual(((await run(toEp, "LRANGE", "{ask}:list", "0", "-1")) as Buffer[]).map(str), ["a", "b"]);
  });
});
