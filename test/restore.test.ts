// restoreRdb against real redis-server processes: a source with every value type is snapshotted with
// `redis-cli --rdb`, then restored into other servers through the replication protocol.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { RespConnection, RespValue } from "../src/redis/client/resp";
import { RdbSource, restoreRdb, RestoreError, verifyTargetPassword } from "../src/redis/restore/replication";
import { redisCheckRdb, RedisProcess, startRedis, withConn } from "./support/redis";

const PASSWORD = "s3cret-restore";
const TTL_TOLERANCE_MS = 2000;

interface KeyState { type: string; dump: string; expireAt: number /* absolute ms, or -1 */ }
type Snapshot = Map<string, KeyState>; // "db/key(hex)" -> state

const started: RedisProcess[] = [];
async function redis(password?: string, extra: string[] = []): Promise<RedisProcess> {
  const p = await startRedis([...(password ? ["--requirepass", password] : []), ...extra], { password });
  started.push(p);
  return p;
}

async function fillSource(c: RespConnection): Promise<void> {
  const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  await c.command("SET", "str", "hello world");
  await c.command("SET", Buffer.from([0x00, 0xff, 0x0d, 0x0a]), binary); // binary-safe key and value
  await c.command("SET", "int", "1234567890");
  await c.command("SET", "big-str", "x".repeat(100_000));
  await c.command("RPUSH", "list-small", "a", "b", "c");
  await c.command("RPUSH", "list-big", ...Array.from({ length: 2000 }, (_, i) => `item-${i}`));
  await c.command("SADD", "set-int", 1, 2, 3, 99);
  await c.command("SADD", "set-str", "red", "green", "blue");
  await c.command("SADD", "set-big", ...Array.from({ length: 700 }, (_, i) => `m${i}`));
  await c.command("ZADD", "zset-small", 1, "one", 2.5, "two-and-half", -3, "neg");
  await c.command("ZADD", "zset-big", ...Array.from({ length: 300 }, (_, i) => [i * 1.5, `z${i}`]).flat());
  await c.command("HSET", "hash-small", "f1", "v1", "f2", binary);
  await c.command("HSET", "hash-big", ...Array.from({ length: 600 }, (_, i) => [`f${i}`, `v${i}`]).flat());
  for (let i = 0; i < 5; i++) await c.command("XADD", "stream", "*", "n", i, "payload", `p${i}`);
  await c.command("XGROUP", "CREATE", "stream", "grp", "0");
  await c.command("XREADGROUP", "GROUP", "grp", "alice", "COUNT", 2, "STREAMS", "stream", ">");
  await c.command("SET", "ttl-str", "soon", "PX", 600_000);
  await c.command("HSET", "ttl-hash", "a", "1");
  await c.command("PEXPIRE", "ttl-hash", 300_000);
  await c.command("SELECT", 3);
  await c.command("SET", "db3-key", "in another database");
  await c.command("SELECT", 0);
}

async function snapshot(c: RespConnection): Promise<Snapshot> {
  const out: Snapshot = new Map();
  const keyspace = String(await c.command("INFO", "keyspace"));
  for (const m of keyspace.matchAll(/^db(\d+):/gm)) {
    const db = Number(m[1]);
    await c.command("SELECT", db);
    for (const key of (await c.command("KEYS", "*")) as Buffer[]) {
      const type = String(await c.command("TYPE", key));
      const dump = await content(c, type, key);
      const pttl = Number(await c.command("PTTL", key));
      out.set(`${db}/${key.toString("hex")}`, { type, dump, expireAt: pttl < 0 ? pttl : Date.now() + pttl });
    }
  }
  await c.command("SELECT", 0);
  return out;
}

/**
 * DUMP bytes for order-preserving types; hashtable-encoded sets and hashes serialise in hash-seed order,
 * which differs per process, so those compare as sorted members.
 */
async function content(c: RespConnection, type: string, key: Buffer): Promise<string> {
  const hex = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("hex") : String(v));
  if (type === "set") return ((await c.command("SMEMBERS", key)) as RespValue[]).map(hex).sort().join(",");
  if (type === "hash") {
    const flat = (await c.command("HGETALL", key)) as RespValue[];
    const pairs: string[] = [];
    for (let i = 0; i < flat.length; i += 2) pairs.push(`${hex(flat[i])}=${hex(flat[i + 1])}`);
    return pairs.sort().join(",");
  }
  return ((await c.command("DUMP", key)) as Buffer).toString("hex");
}

function assertSameData(actual: Snapshot, expected: Snapshot): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [k, want] of expected) {
    const got = actual.get(k)!;
    assert.equal(got.type, want.type, `TYPE of ${k}`);
    assert.equal(got.dump, want.dump, `content of ${k}`);
    if (want.expireAt < 0) assert.equal(got.expireAt, want.expireAt, `PTTL of ${k}`);
    else assert.ok(Math.abs(got.expireAt - want.expireAt) < TTL_TOLERANCE_MS, `expiry of ${k}: ${got.expireAt} vs ${want.expireAt}`);
  }
}

function bufferSource(buf: Buffer): RdbSource {
  // Small chunks so the streaming path (chunk boundaries, trailer withholding) is exercised.
  return { size: buf.length, open: async () => Readable.from(chunks(buf, 4096)) };
}
function* chunks(buf: Buffer, n: number): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += n) yield buf.subarray(i, i + n);
}

const role = (p: RedisProcess): Promise<string> => withConn(p, async (c) => String(((await c.command("ROLE")) as RespValue[])[0]));

async function expectRestoreError(p: Promise<unknown>, kind: string, message: RegExp): Promise<RestoreError> {
  const err = await p.then(() => assert.fail("restore should have failed"), (e: unknown) => e);
  assert.ok(err instanceof RestoreError, `expected RestoreError, got ${String(err)}`);
  assert.equal(err.kind, kind, err.message);
  assert.match(err.message, message);
  return err;
}

/** A target holding one marker key, to prove failed restores leave it alone. */
async function markedTarget(password?: string): Promise<RedisProcess> {
  const t = await redis(password);
  await withConn(t, (c) => c.command("SET", "marker", "untouched"));
  return t;
}
async function assertUntouched(t: RedisProcess): Promise<void> {
  assert.equal(await role(t), "master");
  await withConn(t, async (c) => {
    assert.equal(String(await c.command("GET", "marker")), "untouched");
    assert.equal(await c.command("DBSIZE"), 1);
  });
}

describe("restoreRdb", () => {
  let rdb: Buffer;
  let expected: Snapshot;

  before(async () => {
    const src = await redis(undefined, ["--repl-diskless-sync-delay", "0"]);
    await withConn(src, fillSource);
    expected = await withConn(src, snapshot);
    const file = path.join(src.dir, "source.rdb");
    execFileSync("redis-cli", ["-p", String(src.port), "--rdb", file], { stdio: "ignore" });
    assert.ok(redisCheckRdb(file).ok);
    rdb = fs.readFileSync(file);
  });

  after(async () => {
    await Promise.all(started.map((p) => p.stop()));
    for (const p of started) fs.rmSync(p.dir, { recursive: true, force: true });
  });

  test("restores every value type into an empty password-protected server", async () => {
    const t = await redis(PASSWORD);
    const progress: number[] = [];
    const result = await restoreRdb(t.endpoint, bufferSource(rdb), { onProgress: (n) => progress.push(n), timeoutMs: 20_000 });
    assert.equal(result.keys, expected.size);
    assert.ok(result.loadMs >= 0);
    assert.equal(progress.at(-1), rdb.length);
    assertSameData(await withConn(t, snapshot), expected);
    assert.equal(await role(t), "master");
    await withConn(t, async (c) => {
      assert.equal(await c.command("SET", "after-restore", "writable"), "OK");
      assert.equal(String(await c.command("GET", "after-restore")), "writable");
    });
  });

  test("replaces the existing data of the target", async () => {
    const t = await redis();
    await withConn(t, async (c) => {
      await c.command("SET", "other", "data");
      await c.command("SET", "str", "to be overwritten");
      await c.command("SELECT", 5);
      await c.command("RPUSH", "other-list", "x");
    });
    const result = await restoreRdb(t.endpoint, { size: rdb.length, open: async () => fs.createReadStream(path.join(started[0].dir, "source.rdb")) });
    assert.equal(result.keys, expected.size);
    assertSameData(await withConn(t, snapshot), expected);
    assert.equal(await role(t), "master");
  });

  test("a wrong password is reported as kind 'auth' and the target is untouched", async () => {
    const t = await markedTarget(PASSWORD);
    const wrong = { ...t.endpoint, password: "not-the-password" };
    await expectRestoreError(restoreRdb(wrong, bufferSource(rdb)), "auth", /password rejected/);
    await expectRestoreError(restoreRdb({ ...t.endpoint, password: undefined }, bufferSource(rdb)), "auth", /NOAUTH/);
    await expectRestoreError(verifyTargetPassword(wrong), "auth", /password rejected/);
    await verifyTargetPassword(t.endpoint);
    await assertUntouched(t);
  });

  test("garbage instead of an RDB is refused (kind 'load') before touching the target", async () => {
    const t = await markedTarget();
    const garbage = Buffer.from("this is not a redis database file, just text; ".repeat(50));
    await expectRestoreError(restoreRdb(t.endpoint, bufferSource(garbage)), "load", /not an RDB file/);
    await assertUntouched(t);
  });

  test("an RDB version newer than the target is refused (kind 'load')", async () => {
    const t = await markedTarget();
    const newer = Buffer.from(rdb);
    newer.write("0012", 5, "latin1");
    await expectRestoreError(restoreRdb(t.endpoint, bufferSource(newer)), "load", /version 12 is newer than .*Redis 7\.0/);
    await assertUntouched(t);
  });

  test("a corrupt RDB (bad checksum) is abandoned before the target loads it; its data survives", async () => {
    const t = await markedTarget();
    const corrupt = Buffer.from(rdb);
    corrupt[Math.floor(corrupt.length / 2)] ^= 0x55;
    await expectRestoreError(restoreRdb(t.endpoint, bufferSource(corrupt)), "load", /checksum does not match/);
    await assertUntouched(t);
  });

  test("the same corrupt RDB is refused up front when the target loads from the socket", async () => {
    const t = await redis(undefined, ["--repl-diskless-load", "swapdb"]);
    await withConn(t, (c) => c.command("SET", "marker", "untouched"));
    const corrupt = Buffer.from(rdb);
    corrupt[Math.floor(corrupt.length / 2)] ^= 0x55;
    await expectRestoreError(restoreRdb(t.endpoint, bufferSource(corrupt)), "load", /checksum does not match.*not touched/);
    await assertUntouched(t);
    // ...and a good one still loads through the diskless path.
    assert.equal((await restoreRdb(t.endpoint, bufferSource(rdb))).keys, expected.size);
    assertSameData(await withConn(t, snapshot), expected);
  });

  test("a target that fails to load the payload (kind 'load') is left a master", async () => {
    const t = await redis(undefined, ["--enable-protected-configs", "yes"]);
    // After receiving the payload a disk-loading replica renames it onto its dbfilename; make that a directory
    // so the target fails on its side after the whole transfer, as with an RDB it cannot load.
    fs.mkdirSync(path.join(t.dir, "dump-is-a-dir"));
    await withConn(t, (c) => c.command("CONFIG", "SET", "dbfilename", "dump-is-a-dir"));
    await expectRestoreError(restoreRdb(t.endpoint, bufferSource(rdb), { timeoutMs: 10_000 }), "load", /closed the replication link while loading/);
    assert.equal(await role(t), "master");
    await withConn(t, async (c) => assert.equal(await c.command("SET", "still", "writable"), "OK"));
  });

  test("a stalled source times out (kind 'timeout') and the target keeps its data", async () => {
    const t = await markedTarget();
    const half = rdb.subarray(0, rdb.length >> 1);
    const stalled: RdbSource = {
      size: rdb.length,
      open: async () => new Readable({ read() { if (!this.readableLength && !(this as { sentHalf?: boolean }).sentHalf) { (this as { sentHalf?: boolean }).sentHalf = true; this.push(half); } } }),
    };
    await expectRestoreError(restoreRdb(t.endpoint, stalled, { timeoutMs: 1000 }), "timeout", /no progress for 1000 ms during transfer/);
    await assertUntouched(t);
  });

  test("a target that cannot connect back is reported (kind 'connect') and left a master", async () => {
    const t = await markedTarget();
    const opts = { advertiseHost: "127.0.0.3", listenHost: "127.0.0.1", timeoutMs: 1000 };
    await expectRestoreError(restoreRdb(t.endpoint, bufferSource(rdb), opts), "connect", /did not connect back to 127\.0\.0\.3/);
    await assertUntouched(t);
  });

  test("a replica target is refused, and an unreachable target is kind 'connect'", async () => {
    const master = await redis();
    const replica = await redis(undefined, ["--replicaof", "127.0.0.1", String(master.port)]);
    await expectRestoreError(restoreRdb(replica.endpoint, bufferSource(rdb)), "unsupported", /is a replica of/);
    assert.equal(await role(replica), "slave");
    const dead = await redis();
    await dead.stop();
    await expectRestoreError(restoreRdb(dead.endpoint, bufferSource(rdb)), "connect", /cannot reach target/);
  });

  test("an aborted restore rejects with kind 'aborted'", async () => {
    const t = await markedTarget();
    const ac = new AbortController();
    ac.abort();
    await expectRestoreError(restoreRdb(t.endpoint, bufferSource(rdb), { signal: ac.signal }), "aborted", /aborted/);
    await assertUntouched(t);
  });
});
