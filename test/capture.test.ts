// captureRdb / discoverShards against real redis-server processes: every capture is checked by
// redis-check-rdb and by loading it into a fresh redis-server and comparing the data with the source.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { captureRdb, CaptureError, CaptureResult, discoverShards, parseClusterNodes } from "../src/backup/capture";
import { RedisEndpoint, RespConnection, RespValue } from "../src/backup/resp";
import { BlobWriter, LocalBlobStore } from "../src/backup/storage";
import { redisCheckRdb, RedisProcess, startRedis, waitFor } from "./support/redis";

const servers: RedisProcess[] = [];
const tempDirs: string[] = [];

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "crs-capture-"));
  tempDirs.push(d);
  return d;
}

async function redis(extra: string[] = [], opts: { password?: string; username?: string; dir?: string } = {}): Promise<RedisProcess> {
  const r = await startRedis(["--repl-diskless-sync-delay", "0", ...extra], opts);
  servers.push(r);
  return r;
}

after(async () => {
  for (const r of servers) r.kill();
  for (const d of [...tempDirs, ...servers.map((s) => s.dir)]) fs.rmSync(d, { recursive: true, force: true });
});

async function send(ep: RedisEndpoint, commands: Array<Array<string | number>>): Promise<RespValue[]> {
  const c = await RespConnection.connect(ep);
  try {
    return await Promise.all(commands.map((args) => c.command(...args))); // pipelined
  } finally {
    c.close();
  }
}

const LONG_TTL_MS = 3_600_000;

/** Writes keys of every type and common encoding (in db 0 and db 3); returns the number of keys. */
async function writeMixedDataset(ep: RedisEndpoint, prefix = "m:"): Promise<number> {
  const cmds: Array<Array<string | number>> = [];
  const p = prefix;
  cmds.push(["SET", `${p}str`, "hello"]);
  cmds.push(["SET", `${p}int`, 12345]);
  cmds.push(["SET", `${p}bin`, "\u0000\u00ff\r\n binary"]);
  cmds.push(["SET", `${p}big`, "compressible ".repeat(10_000)]); // LZF-compressed in the RDB
  cmds.push(["SET", `${p}ttl`, "soon", "PX", LONG_TTL_MS]);
  cmds.push(["RPUSH", `${p}list:small`, "a", "b", "c", 1, 2, 3]);
  cmds.push(["RPUSH", `${p}list:big`, ...Array.from({ length: 2000 }, (_, i) => `item-${i}-${"x".repeat(i % 50)}`)]);
  cmds.push(["SADD", `${p}set:int`, 1, 2, 3, 100, 100000]);
  cmds.push(["SADD", `${p}set:str`, ...Array.from({ length: 500 }, (_, i) => `member-${i}`)]);
  cmds.push(["ZADD", `${p}zset:small`, 1, "a", 2.5, "b", -3, "c"]);
  cmds.push(["ZADD", `${p}zset:big`, ...Array.from({ length: 400 }, (_, i) => [i * 1.5, `z${i}`]).flat()]);
  cmds.push(["HSET", `${p}hash:small`, "f1", "v1", "f2", 2]);
  cmds.push(["HSET", `${p}hash:big`, ...Array.from({ length: 600 }, (_, i) => [`field${i}`, `value-${i}-${"y".repeat(i % 80)}`]).flat()]);
  cmds.push(["PEXPIRE", `${p}hash:big`, LONG_TTL_MS * 2]);
  for (let i = 0; i < 150; i++) cmds.push(["XADD", `${p}stream`, `${1_000_000 + i}-0`, "n", i, "payload", "p".repeat(i % 30)]);
  cmds.push(["XGROUP", "CREATE", `${p}stream`, "grp", "1000010-0"]);
  cmds.push(["XREADGROUP", "GROUP", "grp", "alice", "COUNT", 5, "STREAMS", `${p}stream`, ">"]);
  cmds.push(["SELECT", 3]);
  cmds.push(["SET", `${p}db3:str`, "in db 3"]);
  cmds.push(["LPUSH", `${p}db3:list`, "x", "y"]);
  cmds.push(["SET", `${p}db3:ttl`, "v", "EX", 7200]);
  await send(ep, cmds);
  return 17;
}

/** Everything observable about a key, normalised so that element order from unordered types doesn't matter. */
async function snapshotKey(c: RespConnection, key: string): Promise<unknown> {
  const type = String(await c.command("TYPE", key));
  const str = (v: RespValue): unknown => (Buffer.isBuffer(v) ? v.toString("latin1") : Array.isArray(v) ? v.map(str) : v);
  let value: unknown;
  switch (type) {
    case "string":
      value = str(await c.command("GET", key));
      break;
    case "list":
      value = str(await c.command("LRANGE", key, 0, -1));
      break;
    case "set":
      value = (str(await c.command("SMEMBERS", key)) as string[]).sort();
      break;
    case "zset":
      value = str(await c.command("ZRANGE", key, 0, -1, "WITHSCORES"));
      break;
    case "hash": {
      const flat = str(await c.command("HGETALL", key)) as string[];
      const pairs: string[] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push(`${flat[i]}=${flat[i + 1]}`);
      value = pairs.sort();
      break;
    }
    case "stream":
      value = {
        entries: str(await c.command("XRANGE", key, "-", "+")),
        groups: str(await c.command("XINFO", "GROUPS", key)),
        len: await c.command("XLEN", key),
      };
      break;
    default:
      throw new Error(`unexpected type ${type} for ${key}`);
  }
  return { type, value, ttl: Number(await c.command("PTTL", key)) };
}

async function allKeys(c: RespConnection): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = (await c.command("SCAN", cursor, "COUNT", 1000)) as [Buffer, Buffer[]];
    cursor = next.toString();
    for (const k of batch) keys.push(k.toString("latin1"));
  } while (cursor !== "0");
  return keys.sort();
}

/** Compares every key of dbs 0..15 between two servers: type, value and TTL (within a tolerance). */
async function assertSameData(source: RedisEndpoint, copy: RedisEndpoint): Promise<number> {
  const a = await RespConnection.connect(source);
  const b = await RespConnection.connect(copy);
  let compared = 0;
  try {
    for (let db = 0; db < 16; db++) {
      await a.command("SELECT", db);
      await b.command("SELECT", db);
      const keysA = await allKeys(a);
      assert.deepEqual(await allKeys(b), keysA, `keys of db ${db}`);
      for (const key of keysA) {
        const sa = (await snapshotKey(a, key)) as { ttl: number };
        const sb = (await snapshotKey(b, key)) as { ttl: number };
        if (sa.ttl >= 0 || sb.ttl >= 0) {
          assert.ok(sa.ttl > 0 && sb.ttl > 0 && Math.abs(sa.ttl - sb.ttl) < 10_000, `ttl of ${key}: ${sa.ttl} vs ${sb.ttl}`);
          sa.ttl = sb.ttl = 1;
        }
        assert.deepEqual(sb, sa, `key ${key} in db ${db}`);
        compared++;
      }
    }
  } finally {
    a.close();
    b.close();
  }
  return compared;
}

/** Loads an RDB file into a fresh redis-server (its own dir) and returns it. */
async function loadRdb(file: string): Promise<RedisProcess> {
  const dir = tempDir();
  fs.copyFileSync(file, path.join(dir, "restored.rdb"));
  return redis(["--dbfilename", "restored.rdb"], { dir });
}

/** Captures into a LocalBlobStore writer; returns the capture result and the committed file's path. */
async function captureToStore(ep: RedisEndpoint, opts: { compress?: boolean; timeoutMs?: number } = {}): Promise<{ res: CaptureResult; file: string; store: LocalBlobStore; key: string }> {
  const store = new LocalBlobStore(path.join(tempDir(), "store"));
  const key = `backups/t/shard-0.rdb${opts.compress ? ".gz" : ""}`;
  const writer = store.createWriter(key, { compress: opts.compress });
  let progress = 0;
  const res = await captureRdb(ep, writer, { timeoutMs: opts.timeoutMs, onProgress: (n) => (progress = n) });
  const committed = await writer.commit();
  assert.equal(committed.bytes, res.bytes);
  assert.equal(progress, res.bytes);
  let file = store.pathOf(key);
  if (opts.compress) {
    // Decompress through the store's own reader, as a restore would.
    file = path.join(tempDir(), "decompressed.rdb");
    await pipeline(await store.openRead(key, { decompress: true }), fs.createWriteStream(file));
  }
  assert.equal(fs.statSync(file).size, res.bytes);
  const check = redisCheckRdb(file);
  assert.ok(check.ok, check.output);
  return { res, file, store, key };
}

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? e.path, e.name));
}

async function dbsize(ep: RedisEndpoint): Promise<number> {
  const [n] = await send(ep, [["DBSIZE"]]);
  return Number(n);
}

describe("captureRdb against real Redis", { concurrency: 2 }, () => {
  test("password auth, diskless ($EOF mark): valid RDB with identical data", async () => {
    const src = await redis(["--requirepass", "s3cret", "--repl-diskless-sync", "yes"], { password: "s3cret" });
    await writeMixedDataset(src.endpoint);
    const { res, file } = await captureToStore(src.endpoint, { compress: true });
    assert.equal(res.payload, "eof-mark");
    assert.equal(res.rdb.redisVersion, "7.0.15");
    assert.equal(res.rdb.checksum, "ok");
    assert.equal(res.rdb.bytes, res.bytes);
    const copy = await loadRdb(file);
    assert.equal(await assertSameData(src.endpoint, copy.endpoint), 17);
  });

  test("ACL user with only sync/psync/replconf, disk-based ($len): valid RDB with identical data", async () => {
    const src = await redis(
      ["--repl-diskless-sync", "no", "--user", "backup", "on", ">bk-pw", "-@all", "+sync", "+psync", "+replconf", "+ping"],
      { username: "backup", password: "bk-pw" },
    );
    const admin: RedisEndpoint = { host: src.endpoint.host, port: src.port }; // default user, for writing
    await writeMixedDataset(admin);
    const { res, file } = await captureToStore(src.endpoint);
    assert.equal(res.payload, "length");
    assert.equal(res.rdb.checksum, "ok");
    const copy = await loadRdb(file);
    assert.equal(await assertSameData(admin, copy.endpoint), 17);
  });

  test("ACL user with +@all", async () => {
    const src = await redis(["--user", "ops", "on", ">ops-pw", "~*", "&*", "+@all"], { username: "ops", password: "ops-pw" });
    await writeMixedDataset(src.endpoint);
    const { res } = await captureToStore(src.endpoint);
    assert.equal(res.rdb.aux["redis-bits"], "64");
  });

  test("more than 1,000,000 keys (DEBUG POPULATE + every type), both payload forms", async () => {
    const src = await redis(["--enable-debug-command", "yes"]);
    await send(src.endpoint, [["DEBUG", "POPULATE", 1_000_000, "pop", 16]]);
    const mixed = await writeMixedDataset(src.endpoint);
    const db0 = await dbsize(src.endpoint);
    assert.equal(db0, 1_000_000 + mixed - 3);
    for (const diskless of ["yes", "no"]) {
      await send(src.endpoint, [["CONFIG", "SET", "repl-diskless-sync", diskless]]);
      const { res, file } = await captureToStore(src.endpoint, { compress: diskless === "yes" });
      assert.equal(res.payload, diskless === "yes" ? "eof-mark" : "length");
      const copy = await loadRdb(file);
      assert.equal(await dbsize(copy.endpoint), db0);
      const [keyspace] = await send(copy.endpoint, [["INFO", "keyspace"]]);
      assert.match(String(keyspace), /db3:keys=3,expires=1/);
      copy.kill();
    }
  });

  test("source killed mid-transfer: precise rejection, nothing left in storage", async () => {
    // A slow snapshot: ~0.1 ms per key on the server side.
    const src = await redis(["--enable-debug-command", "yes", "--rdb-key-save-delay", "100"]);
    await send(src.endpoint, [["DEBUG", "POPULATE", 200_000, "slow", 64]]);
    const root = path.join(tempDir(), "store");
    const store = new LocalBlobStore(root);
    const writer = store.createWriter("backups/killed/shard-0.rdb.gz", { compress: true });
    let killed = false;
    const err = await captureRdb(src.endpoint, writer, {
      onProgress: (bytes) => {
        if (!killed && bytes > 0) {
          killed = true;
          src.kill(); // SIGKILL, fork child included
        }
      },
    }).then(
      () => assert.fail("capture should fail"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CaptureError, String(err));
    assert.equal(err.code, "CLOSED");
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${src.port} closed the connection mid-transfer after \\d+ bytes`));
    assert.deepEqual(filesUnder(root), []);
    await assert.rejects(writer.commit());
  });

  test("backpressure: a slow sink pauses the socket; a stuck sink or an abort fails cleanly", async () => {
    const src = await redis(["--enable-debug-command", "yes"]);
    await send(src.endpoint, [["DEBUG", "POPULATE", 200_000, "bp", 32]]);
    let maxBuffered = 0;
    let written = 0;
    const slow = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, cb) {
        written += chunk.length;
        maxBuffered = Math.max(maxBuffered, slow.writableLength);
        setImmediate(cb);
      },
    });
    const res = await captureRdb(src.endpoint, slow);
    assert.equal(written, res.bytes);
    assert.ok(res.bytes > 4_000_000, `rdb of ${res.bytes} bytes`);
    // Never more than the high-water mark plus the chunk that crossed it.
    assert.ok(maxBuffered <= 64 * 1024 + 128 * 1024, `sink buffered up to ${maxBuffered} bytes`);

    const stuck = new Writable({ highWaterMark: 1024, write: () => undefined /* never calls back */ });
    await assert.rejects(captureRdb(src.endpoint, stuck, { timeoutMs: 300 }), (e: unknown) => {
      assert.ok(e instanceof CaptureError && e.code === "STORAGE", String(e));
      assert.match(e.message, /^writing the backup stalled: storage accepted no data for 300 ms after \d+ bytes$/);
      return true;
    });
    assert.ok(stuck.destroyed);

    const root = path.join(tempDir(), "store");
    const controller = new AbortController();
    const writer = new LocalBlobStore(root).createWriter("b/aborted.rdb");
    await assert.rejects(captureRdb(src.endpoint, writer, { signal: controller.signal, onProgress: () => controller.abort() }), (e: unknown) => {
      assert.ok(e instanceof CaptureError && e.code === "ABORTED", String(e));
      assert.match(e.message, /^capture aborted after \d+ bytes$/);
      return true;
    });
    assert.deepEqual(filesUnder(root), []);
  });

  test("SYNC and PSYNC renamed away: precise rejection", async () => {
    const src = await redis(["--rename-command", "SYNC", "", "--rename-command", "PSYNC", ""]);
    const root = path.join(tempDir(), "store");
    const writer = new LocalBlobStore(root).createWriter("b/x.rdb");
    await assert.rejects(captureRdb(src.endpoint, writer), (e: unknown) => {
      assert.ok(e instanceof CaptureError);
      assert.equal(e.code, "SYNC_REFUSED");
      assert.match(e.message, /refused to send a snapshot \(SYNC: ERR unknown command 'SYNC'.*PSYNC: ERR unknown command 'PSYNC'.*\) — the replication commands are renamed or disabled/);
      return true;
    });
    assert.deepEqual(filesUnder(root), []);
  });

  test("ACL user without sync permissions: precise rejection", async () => {
    const src = await redis(["--user", "app", "on", ">app-pw", "~*", "&*", "+@all", "-sync", "-psync"], { username: "app", password: "app-pw" });
    await assert.rejects(captureRdb(src.endpoint, new LocalBlobStore(path.join(tempDir(), "s")).createWriter("b/x.rdb")), (e: unknown) => {
      assert.ok(e instanceof CaptureError);
      assert.equal(e.code, "SYNC_REFUSED");
      assert.match(e.message, /NOPERM.*'sync'.*NOPERM.*'psync'.*the user needs \+sync, \+psync and \+replconf/);
      return true;
    });
  });

  test("SYNC renamed but PSYNC allowed: falls back to PSYNC", async () => {
    const src = await redis(["--rename-command", "SYNC", ""]);
    await writeMixedDataset(src.endpoint);
    const { res, file } = await captureToStore(src.endpoint);
    assert.equal(res.rdb.checksum, "ok");
    const copy = await loadRdb(file);
    assert.equal(await assertSameData(src.endpoint, copy.endpoint), 17);
  });

  test("authentication and connection failures", async () => {
    const src = await redis(["--requirepass", "right"], { password: "right" });
    const sink = (): BlobWriter => new LocalBlobStore(path.join(tempDir(), "s")).createWriter("b/x.rdb");
    await assert.rejects(captureRdb({ ...src.endpoint, password: "wrong" }, sink()), (e: unknown) => {
      assert.ok(e instanceof CaptureError && e.code === "AUTH", String(e));
      assert.match(e.message, /authentication refused by 127\.0\.0\.1:\d+: WRONGPASS/);
      return true;
    });
    await assert.rejects(captureRdb({ host: "127.0.0.1", port: src.port }, sink()), (e: unknown) => {
      assert.ok(e instanceof CaptureError && e.code === "AUTH", String(e));
      assert.match(e.message, /NOAUTH/);
      return true;
    });
    // A port nobody listens on: take a free one from a server we close again.
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    await assert.rejects(captureRdb({ host: "127.0.0.1", port }, sink()), (e: unknown) => {
      assert.ok(e instanceof CaptureError && e.code === "CONNECT", String(e));
      assert.equal(e.message, `connection refused by 127.0.0.1:${port} (is Redis running and the port right?)`);
      return true;
    });
  });

  test("stall: a peer that accepts and then says nothing", async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s.on("error", () => undefined)));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      await assert.rejects(captureRdb({ host: "127.0.0.1", port }, new LocalBlobStore(path.join(tempDir(), "s")).createWriter("b/x.rdb"), { timeoutMs: 300 }), (e: unknown) => {
        assert.ok(e instanceof CaptureError && e.code === "STALL", String(e));
        assert.equal(e.message, `stalled: no reply to REPLCONF from 127.0.0.1:${port} within 300 ms`);
        return true;
      });
      assert.ok(Date.now() - started < 5_000);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  test("stall: a real Redis whose snapshot stops flowing", async () => {
    // 2 s per key: the fork starts, but no payload bytes arrive for far longer than timeoutMs.
    const src = await redis(["--rdb-key-save-delay", "2000000"]);
    await send(src.endpoint, [["SET", "a", 1], ["SET", "b", 2]]);
    const root = path.join(tempDir(), "store");
    await assert.rejects(captureRdb(src.endpoint, new LocalBlobStore(root).createWriter("b/x.rdb"), { timeoutMs: 500 }), (e: unknown) => {
      assert.ok(e instanceof CaptureError && e.code === "STALL", String(e));
      assert.match(e.message, new RegExp(`^stalled: no data from 127\\.0\\.0\\.1:${src.port} for 500 ms`));
      return true;
    });
    assert.deepEqual(filesUnder(root), []);
    src.kill();
  });

  test("garbage instead of a snapshot: protocol error; corrupt payload: CRC error", async () => {
    // A fake master: answers the handshake, then sends a given payload.
    const fake = async (payload: Buffer): Promise<unknown> => {
      const srv = net.createServer((s) => {
        s.on("error", () => undefined);
        // The client waits for each reply, so every data event carries exactly one command.
        s.on("data", (d) => {
          const cmd = d.toString("latin1");
          if (cmd.includes("SYNC")) s.end(payload);
          else if (cmd.includes("REPLCONF")) s.write("+OK\r\n");
        });
      });
      await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
      const port = (srv.address() as net.AddressInfo).port;
      try {
        return await captureRdb({ host: "127.0.0.1", port }, new LocalBlobStore(path.join(tempDir(), "s")).createWriter("b/x.rdb"), { timeoutMs: 2000 }).then(
          () => assert.fail("should fail"),
          (e: unknown) => e,
        );
      } finally {
        srv.close();
      }
    };
    const garbage = (await fake(Buffer.from("\n\nHTTP/1.1 400 Bad Request\r\n\r\n"))) as CaptureError;
    assert.equal(garbage.code, "PROTOCOL");
    assert.match(garbage.message, /unexpected reply to SYNC from 127\.0\.0\.1:\d+: "HTTP\/1\.1 400 Bad Request" \(not a Redis master\?\)/);

    // A real RDB with one flipped byte, sent with the EOF-mark framing split oddly.
    const src = await redis();
    await writeMixedDataset(src.endpoint);
    await send(src.endpoint, [["SAVE"]]);
    const rdb = fs.readFileSync(path.join(src.dir, "dump.rdb"));
    rdb[Math.floor(rdb.length / 2)] ^= 0x01;
    const mark = "0123456789abcdef0123456789abcdef01234567";
    const corrupt = (await fake(Buffer.concat([Buffer.from(`\n$EOF:${mark}\r\n`), rdb, Buffer.from(mark)]))) as CaptureError;
    assert.equal(corrupt.code, "CORRUPT");
    assert.match(corrupt.message, /corrupt snapshot from 127\.0\.0\.1:\d+: RDB checksum mismatch/);

    const short = (await fake(Buffer.concat([Buffer.from(`$${rdb.length}\r\n`), rdb.subarray(0, 1000)]))) as CaptureError;
    assert.equal(short.code, "CLOSED");
    assert.match(short.message, new RegExp(`closed the connection mid-transfer after 1000 of ${rdb.length} bytes`));
  });
});

/** CRC16/XMODEM key slot, to route writes in the cluster test without a cluster client. */
function keySlot(key: string): number {
  let k = key;
  const open = k.indexOf("{");
  if (open >= 0) {
    const close = k.indexOf("}", open + 1);
    if (close > open + 1) k = k.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(k)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

describe("Redis Cluster", () => {
  test("three masters: one valid RDB per master, key counts add up", async () => {
    const nodes = await Promise.all([0, 1, 2].map(() => redis(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--requirepass", "cpw", "--masterauth", "cpw"], { password: "cpw" })));
    await new Promise<void>((resolve, reject) =>
      execFile(
        "redis-cli",
        ["-a", "cpw", "--no-auth-warning", "--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"],
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve()),
      ),
    );
    for (const n of nodes) {
      await waitFor("cluster_state:ok", async () => {
        const [info] = await send(n.endpoint, [["CLUSTER", "INFO"]]);
        return /cluster_state:ok/.test(String(info)) || undefined;
      });
    }
    const topo = await discoverShards(nodes[1].endpoint);
    assert.equal(topo.cluster, true);
    assert.deepEqual(
      topo.masters.map((m) => m.port).sort(),
      nodes.map((n) => n.port).sort(),
    );
    assert.ok(topo.masters.every((m) => m.password === "cpw"));
    assert.deepEqual(topo.shards.map((s) => s.slots[0][0]), [0, 5461, 10923]);

    // Route 3000 keys to their masters by slot.
    const total = 3000;
    const byMaster = new Map<number, Array<Array<string | number>>>();
    for (let i = 0; i < total; i++) {
      const key = `ck:${i}`;
      const slot = keySlot(key);
      const owner = topo.shards.findIndex((s) => s.slots.some(([a, b]) => slot >= a && slot <= b));
      if (!byMaster.has(owner)) byMaster.set(owner, []);
      byMaster.get(owner)!.push(["SET", key, `v${i}`]);
    }
    await Promise.all([...byMaster].map(([owner, cmds]) => send(topo.masters[owner], cmds)));

    let sum = 0;
    for (const master of topo.masters) {
      const { file, res } = await captureToStore(master, { compress: true });
      assert.equal(res.rdb.checksum, "ok");
      const copy = await loadRdb(file);
      const n = await dbsize(copy.endpoint);
      assert.equal(n, await dbsize(master));
      sum += n;
      copy.kill();
    }
    assert.equal(sum, total);
  });

  test("a standalone server is its own single shard", async () => {
    const src = await redis();
    const topo = await discoverShards(src.endpoint);
    assert.equal(topo.cluster, false);
    assert.deepEqual(topo.masters, [src.endpoint]);
  });

  test("CLUSTER NODES parsing: replicas, slot-less masters, migrating markers, IPv6, failed masters", () => {
    const via: RedisEndpoint = { host: "gateway.example", port: 7000, password: "p" };
    const text = [
      "a1 10.0.0.2:7001@17001 master - 0 0 2 connected 5461-10922 [5461->-b2]",
      "b2 10.0.0.1:7000@17000,host-a myself,master - 0 0 1 connected 0-5460",
      "c3 ::1:7002@17002 master - 0 0 3 connected 12000 10923-11999 12001-16383",
      "d4 10.0.0.4:7003@17003 slave a1 0 0 2 connected",
      "e5 10.0.0.5:7004@17004 master - 0 0 0 connected",
      "",
    ].join("\n");
    const shards = parseClusterNodes(text, via);
    assert.deepEqual(shards.map((s) => s.id), ["b2", "a1", "c3"]);
    assert.deepEqual(shards[0].endpoint, via);
    assert.deepEqual(shards[1].endpoint, { host: "10.0.0.2", port: 7001, password: "p" });
    assert.equal(shards[2].endpoint.host, "::1");
    assert.deepEqual(shards[2].slots, [[10923, 11999], [12000, 12000], [12001, 16383]]);
    assert.throws(() => parseClusterNodes("f6 10.0.0.6:7005@17005 master,fail - 0 0 4 connected 0-16383\n", via), /marked as failed/);
  });
});
