// captureRdb / discoverShards against real redis-server processes: every capture is checked by
// redis-check-rdb and by loading it into a fresh redis-server and comparing the data with the source.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { captureRdb, CaptureError, CaptureResult, discoverShards, parseClusterNodes } from "../src/redis/capture/capture";
import { RedisEndpoint, RespConnection } from "../src/redis/client/resp";
import type { BlobWriter } from "../src/storage/blob-store";
import { LocalBlobStore } from "../src/storage/local";
import { assertSameData, dbsize, filesUnder, send, writeMixedDataset } from "./support/dataset";
import { keySlot, redisCheckRdb, RedisProcess, startCluster, startRedis, waitFor } from "./support/redis";

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

/**
 * A fake master on a free port: answers REPLCONF with +OK and SYNC with `payload`, then closes; or, given a
 * function, lets it answer each command itself.
 */
async function fakeMaster<T>(payload: Buffer | ((s: net.Socket, cmd: string) => void), use: (ep: RedisEndpoint) => Promise<T>): Promise<T> {
  const sockets: net.Socket[] = [];
  const srv = net.createServer((s) => {
    sockets.push(s);
    s.setNoDelay(true);
    s.on("error", () => undefined);
    // The client waits for each reply, so every data event carries exactly one command.
    s.on("data", (d) => {
      const cmd = d.toString("latin1");
      if (typeof payload === "function") payload(s, cmd);
      else if (cmd.includes("SYNC")) s.end(payload);
      else if (cmd.includes("REPLCONF")) s.write("+OK\r\n");
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  try {
    return await use({ host: "127.0.0.1", port: (srv.address() as net.AddressInfo).port });
  } finally {
    for (const s of sockets) s.destroy();
    srv.close();
  }
}

/** Runs a capture that must fail against a fake master, returning the error. */
function fakeCaptureError(payload: Buffer): Promise<CaptureError> {
  return fakeMaster(payload, (ep) =>
    captureRdb(ep, new LocalBlobStore(path.join(tempDir(), "s")).createWriter("b/x.rdb"), { timeoutMs: 2000 }).then(
      () => assert.fail("should fail"),
      (e: unknown) => {
        assert.ok(e instanceof CaptureError, String(e));
        return e;
      },
    ),
  );
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

    // A sink that never accepts: the capture must not wait forever. (A fake master sends a payload at once,
    // so the only thing that can stall is the sink, whatever the machine's load.)
    const big = Buffer.concat([Buffer.from("$10000000\r\nREDIS0010"), Buffer.alloc(10_000_000 - 9)]);
    const stuck = new Writable({ highWaterMark: 1024, write: () => undefined /* never calls back */ });
    await fakeMaster(big, (ep) =>
      assert.rejects(captureRdb(ep, stuck, { timeoutMs: 300 }), (e: unknown) => {
        assert.ok(e instanceof CaptureError && e.code === "STORAGE", String(e));
        assert.match(e.message, /^writing the backup stalled: storage accepted no data for 300 ms after \d+ bytes$/);
        return true;
      }),
    );
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

  test("an old master without rdb-only: keep-alives, split EOF mark, replication traffic after the payload", async () => {
    const src = await redis();
    await writeMixedDataset(src.endpoint);
    await send(src.endpoint, [["SAVE"]]);
    const rdb = fs.readFileSync(path.join(src.dir, "dump.rdb"));
    const mark = Buffer.from("abcdefghij".repeat(4));
    const writeSlowly = async (s: net.Socket, parts: Buffer[]): Promise<void> => {
      for (const part of parts) {
        await new Promise<void>((resolve) => s.write(part, () => setImmediate(resolve)));
      }
    };
    for (const form of ["eof-mark", "length"] as const) {
      let hungUp = false;
      const hungUpWatched = new Set<net.Socket>();
      const res = await fakeMaster(
        (s, cmd) => {
          if (!hungUpWatched.has(s)) hungUpWatched.add(s.once("close", () => (hungUp = true)));
          if (cmd.includes("rdb-only")) s.write("-ERR Unrecognized REPLCONF option: rdb-only\r\n");
          else if (cmd.includes("REPLCONF")) s.write("+OK\r\n");
          else if (cmd.includes("SYNC")) {
            const header = form === "eof-mark" ? Buffer.from(`$EOF:${mark}\r\n`) : Buffer.from(`$${rdb.length}\r\n`);
            const body = form === "eof-mark" ? Buffer.concat([rdb, mark]) : rdb;
            // The mark (or the last bytes) cut across writes; then the replication stream, and no close.
            const cut = body.length - 17;
            void writeSlowly(s, [Buffer.from("\n"), Buffer.from("\n"), header, body.subarray(0, 5), body.subarray(5, cut), body.subarray(cut), Buffer.from("*1\r\n$4\r\nPING\r\n")]);
          }
        },
        async (ep) => {
          const r = await captureRdb(ep, new Writable({ write: (_c, _e, cb) => cb() }), { timeoutMs: 5000 });
          // We must hang up ourselves: this server would go on streaming forever.
          await waitFor("the client to close the replication link", () => hungUp || undefined, 5000);
          return r;
        },
      );
      assert.equal(res.payload, form);
      assert.equal(res.bytes, rdb.length);
      assert.equal(res.rdb.checksum, "ok");
    }
  });

  test("garbage instead of a snapshot: protocol error; corrupt payload: CRC error", async () => {
    const garbage = await fakeCaptureError(Buffer.from("\n\nHTTP/1.1 400 Bad Request\r\n\r\n"));
    assert.equal(garbage.code, "PROTOCOL");
    assert.match(garbage.message, /unexpected reply to SYNC from 127\.0\.0\.1:\d+: "HTTP\/1\.1 400 Bad Request" \(not a Redis master\?\)/);

    // A real RDB with one flipped byte, sent with the EOF-mark framing.
    const src = await redis();
    await writeMixedDataset(src.endpoint);
    await send(src.endpoint, [["SAVE"]]);
    const rdb = fs.readFileSync(path.join(src.dir, "dump.rdb"));
    rdb[Math.floor(rdb.length / 2)] ^= 0x01;
    const mark = "0123456789abcdef0123456789abcdef01234567";
    const corrupt = await fakeCaptureError(Buffer.concat([Buffer.from(`\n$EOF:${mark}\r\n`), rdb, Buffer.from(mark)]));
    assert.equal(corrupt.code, "CORRUPT");
    assert.match(corrupt.message, /corrupt snapshot from 127\.0\.0\.1:\d+: RDB checksum mismatch/);

    const short = await fakeCaptureError(Buffer.concat([Buffer.from(`$${rdb.length}\r\n`), rdb.subarray(0, 1000)]));
    assert.equal(short.code, "CLOSED");
    assert.match(short.message, new RegExp(`closed the connection mid-transfer after 1000 of ${rdb.length} bytes`));
  });
});

describe("Redis Cluster", () => {
  test("three masters: one valid RDB per master, key counts add up", async () => {
    const nodes = await startCluster(3, "cpw", ["--repl-diskless-sync-delay", "0"]);
    servers.push(...nodes);
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
