// The pieces under RestoreInstance, against real redis-server 7.0 processes: restoreRdb loading from the socket
// (repl-diskless-load switched to swapdb and back, every byte parsed by our reader before the target sees it),
// the verification after a restore (digest, key by key, DEBUG refused), and the recovery of an interrupted
// restore (the target switched back to master and its setting put back).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { Readable } from "node:stream";
import { crc64, crc64ToBuffer } from "../src/redis/rdb/crc64";
import { digestRdb } from "../src/redis/rdb/index";
import { RedisEndpoint, RespValue } from "../src/redis/client/resp";
import { ConfigChange, RdbSource, restoreRdb, RestoreError } from "../src/redis/restore/replication";
import { datasetDigest, describeVerification, verifyRestore } from "../src/redis/restore/verify";
import type { Task } from "../src/catalog/types";
import { send, writeMixedDataset } from "./support/dataset";
import { captureToBuffer } from "./support/rdb-corpus";
import { RedisProcess, startRedis } from "./support/redis";
import { KEY, startTestServer } from "./support/server";
import { missing, startVersion, version } from "./support/versions";

const DEBUG = ["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"];
const servers: RedisProcess[] = [];
async function redis(extra: string[] = DEBUG): Promise<RedisProcess> {
  const r = await startRedis(extra);
  servers.push(r);
  return r;
}
after(() => {
  for (const r of servers) r.kill();
});

const str = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : String(v));
async function command(ep: RedisEndpoint, ...args: Array<string | number>): Promise<RespValue> {
  return (await send(ep, [args]))[0]!;
}
const config = async (ep: RedisEndpoint): Promise<string> => str(((await command(ep, "CONFIG", "GET", "repl-diskless-load")) as RespValue[])[1]!);

function source(buf: Buffer, onOpen?: () => void): RdbSource {
  return {
    size: buf.length,
    open: async () => {
      onOpen?.();
      const parts: Buffer[] = [];
      for (let i = 0; i < buf.length; i += 16_384) parts.push(buf.subarray(i, i + 16_384));
      return Readable.from(parts);
    },
  };
}

let rdb: Buffer;
let expectedKeys: number;
before(async () => {
  const src = await redis();
  await writeMixedDataset(src.endpoint);
  await command(src.endpoint, "DEBUG", "POPULATE", 20_000, "pop", 100); // LZF-compressed values, as in real data
  // One incompressible 40 KB value: a unit longer than the 16 KB chunks the sources are read in.
  const c = await src.connect();
  await c.command("SET", "random", crypto.randomBytes(40_000));
  c.close();
  expectedKeys = Number(await command(src.endpoint, "DBSIZE")) + 3; // + db 3
  rdb = await captureToBuffer(src.endpoint);
});

async function markedTarget(extra: string[] = DEBUG): Promise<RedisProcess> {
  const t = await redis(extra);
  await send(t.endpoint, [["SET", "marker", "untouched"]]);
  return t;
}

describe("restoreRdb loading from the socket", () => {
  test("switches the target to swapdb for the load and back, records the change first", async () => {
    const t = await markedTarget();
    const changes: ConfigChange[] = [];
    const r = await restoreRdb(t.endpoint, source(rdb), { loadFromSocket: true, beforeConfigChange: async (c) => void changes.push(c) });
    assert.equal(r.load, "socket");
    assert.equal(r.keys, expectedKeys);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(changes, [{ parameter: "repl-diskless-load", original: "disabled", value: "swapdb" }]);
    assert.equal(await config(t.endpoint), "disabled");
    assert.equal(str(await command(t.endpoint, "DEBUG", "DIGEST")), digestRdb(rdb).digest);
  });

  test("a corrupt RDB never reaches the target's parser: the target stays up with its data, its setting put back", async () => {
    const t = await markedTarget();
    // Damage in LZF data makes a target parsing from the socket exit ("Terminating server after rdb file
    // reading failure"): ours must stop before it.
    for (const at of [0.2, 0.5, 0.8]) {
      const bad = Buffer.from(rdb);
      for (let j = 0; j < 40; j++) bad[Math.floor(bad.length * at) + j * 7] ^= 0x5a;
      await assert.rejects(restoreRdb(t.endpoint, source(bad), { loadFromSocket: true, timeoutMs: 10_000 }), (err: unknown) => {
        assert.ok(err instanceof RestoreError);
        assert.equal(err.kind, "load");
        // Found by the CRC, or earlier by the load check (damage that makes a member appear twice): either way before the target.
        assert.match(err.message, /(checksum does not match|a Redis loading it would stop).*abandoned before the target loaded anything/);
        return true;
      });
      assert.equal(str(await command(t.endpoint, "GET", "marker")), "untouched", `damage at ${at}`);
      assert.equal(Number(await command(t.endpoint, "DBSIZE")), 1);
      assert.equal(str(((await command(t.endpoint, "ROLE")) as RespValue[])[0]!), "master");
      assert.equal(await config(t.endpoint), "disabled");
    }
  });

  test("an RDB intact by its CRC that a loading Redis would refuse (a member twice) is not sent: the target stays up", async () => {
    // What a bit flip in an integer-encoded member produces when the CRC is recomputed over it, e.g. by a
    // tool that rewrote the file: Redis 7.0 exits on it ("Duplicate zset fields detected").
    const double = (v: number) => {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(v);
      return b;
    };
    const rdbStr = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s)]);
    const body = Buffer.concat([
      Buffer.from("REDIS0009"), Buffer.from([0xfe, 0x00]),
      Buffer.from([0x00]), rdbStr("marker2"), rdbStr("kept"), // a string first: released before the bad key
      Buffer.from([0x05]), rdbStr("z"), Buffer.from([0x02]), rdbStr("a"), double(1), rdbStr("a"), double(2),
      Buffer.from([0xff]),
    ]);
    const file = Buffer.concat([body, crc64ToBuffer(crc64(body))]);
    const t = await markedTarget();
    await assert.rejects(restoreRdb(t.endpoint, source(file), { loadFromSocket: true, timeoutMs: 10_000 }), (err: unknown) => {
      assert.ok(err instanceof RestoreError);
      assert.equal(err.kind, "load");
      assert.match(err.message, /a sorted-set member that appears twice \(key "z" at offset \d+\); a Redis loading it would stop; the transfer was abandoned/);
      return true;
    });
    assert.equal(str(await command(t.endpoint, "GET", "marker")), "untouched");
    assert.equal(Number(await command(t.endpoint, "DBSIZE")), 1);
    assert.equal(await config(t.endpoint), "disabled");
  });

  test("a unit too long to hold back: proven by the CRC, then sent from a second read", async () => {
    const t = await markedTarget();
    let opens = 0;
    // 1 KiB is less than the 40 KB value, which arrives in three chunks: validation gives up there.
    const r = await restoreRdb(t.endpoint, source(rdb, () => opens++), { loadFromSocket: true, maxHeldBytes: 1024 });
    assert.equal(r.load, "socket");
    assert.equal(opens, 2, "the source is read once more for the rest");
    assert.equal(str(await command(t.endpoint, "DEBUG", "DIGEST")), digestRdb(rdb).digest);
  });

  test("a target that refuses CONFIG SET loads from its disk, as before", async () => {
    const t = await markedTarget([...DEBUG, "--rename-command", "CONFIG", "config-renamed-away"]);
    const changes: ConfigChange[] = [];
    const r = await restoreRdb(t.endpoint, source(rdb), { loadFromSocket: true, beforeConfigChange: async (c) => void changes.push(c) });
    assert.equal(r.load, "disk");
    assert.deepEqual(changes, []);
    assert.equal(str(await command(t.endpoint, "DEBUG", "DIGEST")), digestRdb(rdb).digest);
  });
});

describe("swapdb keeps the old data set when a load from the socket fails, on every version we switch", () => {
  for (const name of ["6.2", "7.2", "7.4", "valkey-8.0"]) {
    const v = version(name);
    test(`${name}: a good RDB loads from the socket; a damaged one leaves the target up with its data`, { skip: missing(v) }, async () => {
      const src = await startVersion(v);
      servers.push(src);
      await command(src.endpoint, "DEBUG", "POPULATE", 5000, "pop", 100);
      const own = await captureToBuffer(src.endpoint);
      const t = await startVersion(v);
      servers.push(t);
      await send(t.endpoint, [["SET", "marker", "untouched"]]);
      const bad = Buffer.from(own);
      for (let j = 0; j < 40; j++) bad[Math.floor(bad.length / 2) + j * 7] ^= 0x5a;
      await assert.rejects(restoreRdb(t.endpoint, source(bad), { loadFromSocket: true, timeoutMs: 10_000 }), /checksum does not match/);
      assert.equal(str(await command(t.endpoint, "GET", "marker")), "untouched");
      assert.equal(await config(t.endpoint), "disabled");
      const r = await restoreRdb(t.endpoint, source(own), { loadFromSocket: true });
      assert.equal(r.load, "socket");
      assert.equal(r.keys, 5000);
      assert.equal(str(await command(t.endpoint, "DEBUG", "DIGEST")), str(await command(src.endpoint, "DEBUG", "DIGEST")));
      assert.equal(await config(t.endpoint), "disabled");
    });
  }
});

describe("verifyRestore", () => {
  let t: RedisProcess;
  const open = async () => [Readable.from([rdb])];
  before(async () => {
    t = await redis();
    await restoreRdb(t.endpoint, source(rdb));
  });

  test("equal: by the data-set digest, and key by key", async () => {
    const expected = digestRdb(rdb).digest;
    const v = await verifyRestore({ target: t.endpoint, cluster: false, expectedDigest: expected, open, selection: {} });
    assert.deepEqual(v, { outcome: "equal", how: "digest", digest: expected });
    const k = await verifyRestore({ target: t.endpoint, cluster: false, open, selection: {} });
    assert.equal(k.outcome, "equal");
    assert.match(describeVerification(k), new RegExp(`^verified equal key by key \\(${expectedKeys} keys\\)$`));
  });

  test("a target whose data differs: the digest differs and the first differing key is named", async () => {
    await send(t.endpoint, [["SET", "m:str", "changed after the restore"]]);
    try {
      const expected = digestRdb(rdb).digest;
      const v = await verifyRestore({ target: t.endpoint, cluster: false, expectedDigest: expected, open, selection: {} });
      assert.equal(v.outcome, "different");
      assert.ok(v.outcome === "different" && v.how === "digest" && v.first?.key === "m:str" && v.different === 1 && v.missing === 0, JSON.stringify(v));
      assert.equal(v.digest?.actual, await datasetDigest(t.endpoint));
      assert.match(describeVerification(v), /^NOT equal to the backup: digest [0-9a-f]{40}, expected [0-9a-f]{40}; first differing key "m:str"; 0 missing, 1 different$/);
      // a key missing, in another database, found key by key
      await send(t.endpoint, [["SELECT", 3], ["DEL", "m:db3:str"]]);
      const k = await verifyRestore({ target: t.endpoint, cluster: false, open, selection: { dbs: [3] } });
      assert.match(describeVerification(k), /^NOT equal to the backup; first differing key "m:db3:str" \(db 3\) \(missing on the target\); 1 missing, 0 different$/);
    } finally {
      await restoreRdb(t.endpoint, source(rdb));
    }
  });

  test("keys with a TTL that ran out are not counted as differences", async () => {
    const src = await redis();
    await send(src.endpoint, [["SET", "stays", "1"], ["SET", "short", "1", "PX", 1500]]);
    const withTtl = await captureToBuffer(src.endpoint);
    const target = await redis();
    await restoreRdb(target.endpoint, source(withTtl));
    await send(target.endpoint, [["DEL", "short"]]); // as if it had expired meanwhile
    const v = await verifyRestore({ target: target.endpoint, cluster: false, expectedDigest: digestRdb(withTtl).digest, open: async () => [Readable.from([withTtl])], selection: {} });
    assert.equal(v.outcome, "equal", describeVerification(v));
    assert.match(describeVerification(v), /^verified equal key by key \(1 keys\); the data-set digest differed/);
  });

  test("a target refusing DEBUG is not verified, which is not a difference", async () => {
    const plain = await redis(["--repl-diskless-sync-delay", "0"]); // 7.0: enable-debug-command no
    await restoreRdb(plain.endpoint, source(rdb));
    for (const expectedDigest of [digestRdb(rdb).digest, undefined]) {
      const v = await verifyRestore({ target: plain.endpoint, cluster: false, expectedDigest, open, selection: {} });
      assert.deepEqual(v, { outcome: "skipped", reason: "DEBUG not allowed" });
      assert.equal(describeVerification(v), "not verified (DEBUG not allowed)");
    }
  });
});

describe("recovery of an interrupted restore (RestoreJobs.undo)", () => {
  test("replication: the target is switched back to master and its repl-diskless-load put back", async () => {
    const t = await markedTarget();
    const srv = await startTestServer({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
      Instances: [{ InstanceId: "crs-undo0001", InstanceName: "undo", Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${t.port}` }],
    }, { rateLimit: 0 });
    try {
      // What a node that died mid-load leaves: the target following its (now gone) endpoint, swapdb set.
      const dead = { host: "127.0.0.1", port: 1 };
      await send(t.endpoint, [["CONFIG", "SET", "repl-diskless-load", "swapdb"], ["REPLICAOF", dead.host, dead.port]]);
      const change: ConfigChange = { parameter: "repl-diskless-load", original: "disabled", value: "swapdb" };
      const task = { taskId: 1, instanceId: "crs-undo0001", accountId: KEY.account, taskType: "010", status: "running", progress: 40, startTime: Date.now(), message: "",
        state: { path: "replication", replicaOf: dead, config: change } } as Task;
      const undone = await srv.services.restores.undo(task, "interrupted");
      assert.match(undone.note ?? "", /the target was switched back to master \(REPLICAOF NO ONE\)/);
      assert.equal(str(((await command(t.endpoint, "ROLE")) as RespValue[])[0]!), "master");
      assert.equal(await config(t.endpoint), "disabled");
      // Idempotent: a second recovery changes nothing and says nothing more.
      assert.match((await srv.services.restores.undo(task, "interrupted")).note ?? "", /no longer followed our endpoint/);
      // A setting someone changed since is left alone.
      await send(t.endpoint, [["CONFIG", "SET", "repl-diskless-load", "on-empty-db"]]);
      await srv.services.restores.undo({ ...task, state: { path: "replication", config: change } }, "failed");
      assert.equal(await config(t.endpoint), "on-empty-db");
      // commands: nothing to switch back, the note says the target holds part of the backup
      const cmd = await srv.services.restores.undo({ ...task, state: { path: "commands" } }, "interrupted");
      assert.match(cmd.note ?? "", /stopped part-way: the target holds the keys written until then/);
    } finally {
      await srv.close();
    }
  });
});
