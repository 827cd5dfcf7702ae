// The RDB engine against real servers of every version here: their backups (taken through our capture path)
// parse completely in any chunking, the computed digest equals the server's DEBUG DIGEST (per key: DEBUG
// DIGEST-VALUE), DUMP payloads round-trip, huge keys stay within bounded memory, corrupt input is refused with
// the offset named; plus hand-built RDBs for the encodings no server here writes any more (checked by loading
// them into a real server and comparing its DEBUG DIGEST).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { isUtf8 } from "node:buffer";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { inspectRdb } from "../src/redis/rdb/header";
import {
  digestDumpPayload, digestRdb, DigestStream, DumpBuilder, RdbDigest, exportJsonLines, exportResp, formatG17, fpconvDtoa, inspectRdbStream, RdbParseError,
  RdbReader, RdbType, readRdb, readRdbSync, RdbVisitor, KeyHeader,
} from "../src/redis/rdb/index";
import { fpconvSlow } from "../src/redis/rdb/double-format";
import { FingerprintSet, LoadCheck, LoadCheckLimit, LoadRuleViolation } from "../src/redis/rdb/load-check";
import { RespValue } from "../src/redis/client/resp";
import { captureToBuffer, chunks, debugDigest, writeCorpus } from "./support/rdb-corpus";
import { listpack, moduleId, RdbBuilder, ziplist, zipmap } from "./support/rdb-build";
import { RedisProcess, startRedis, withConn } from "./support/redis";
import { missing, startVersion, version, VERSIONS } from "./support/versions";

const str = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : String(v));

/** Parses a buffer with the given visitor in chunks of `size`; returns the reader. */
function parse(buf: Buffer, v: RdbVisitor, size = buf.length): RdbReader {
  const r = new RdbReader(v);
  for (let i = 0; i < buf.length; i += size) r.feed(buf.subarray(i, i + size));
  r.end();
  return r;
}

function rdbError(fn: () => unknown): RdbParseError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RdbParseError, `expected RdbParseError, got ${(err as Error)?.stack}`);
    return err;
  }
  assert.fail("no error");
}

/** Loads an RDB file into a fresh Debian redis-server 7.0 (which reads RDB versions up to 10). */
async function loadIntoServer(rdb: Buffer): Promise<RedisProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-rdbload-"));
  fs.writeFileSync(path.join(dir, "hand.rdb"), rdb);
  return startRedis(["--dbfilename", "hand.rdb", "--enable-debug-command", "yes"], { dir });
}

// ---------------------------------------------------------------------------------------------------------

describe("hand-built RDBs: encodings of older servers", () => {
  const oldZ: Array<[string, string]> = [["a", "1.5"], ["b", "inf"], ["c", "-inf"], ["d", "0.10000000000000001"], ["e", "-3"]];
  function oldFile(): Buffer {
    const b = new RdbBuilder(6).aux("redis-ver", "2.8.24").selectDb(0).resizeDb(9, 2);
    b.key(RdbType.LIST, "linked").len(4).str("a").str("b").raw([0xc1, 0x39, 0x30]).str(""); // 12345 as INT16
    b.key(RdbType.ZSET, "ascii-z").len(oldZ.length);
    for (const [m, s] of oldZ) {
      b.str(m);
      if (s === "inf") b.raw([254]);
      else if (s === "-inf") b.raw([255]);
      else b.raw([s.length, ...Buffer.from(s)]);
    }
    b.key(RdbType.HASH_ZIPMAP, "zipmap").str(zipmap([["f1", "v1"], ["field-two", "value-two"], ["n", "7"]], 2));
    b.key(RdbType.LIST_ZIPLIST, "ziplist").str(ziplist(["x", 0, 12, -1, 200, -30000, 5_000_000, 3_000_000_000, "y".repeat(70), 9e15]));
    b.key(RdbType.SET_INTSET, "intset").str(Buffer.from([2, 0, 0, 0, 3, 0, 0, 0, 0xfe, 0xff, 1, 0, 2, 0]));
    b.key(RdbType.HASH_ZIPLIST, "hzl").str(ziplist(["f", "v", "n", 42]));
    b.key(RdbType.ZSET_ZIPLIST, "zzl").str(ziplist(["m1", 1, "m2", "2.5", 3, "-0.25"]));
    b.expireSeconds(2000000000).key(RdbType.STRING, "exp-s").str("seconds"); // 2033
    b.expireMs(4102444800123).key(RdbType.STRING, "exp-ms").str("millis");
    b.selectDb(2).key(RdbType.STRING, "db2").raw([0xc0, 0xfb]); // -5 as INT8
    return b.end();
  }

  test("values decode as written", () => {
    const { keys, summary } = readRdbSync(oldFile());
    assert.equal(summary.rdbVersion, 6);
    assert.equal(summary.checksum, "ok");
    const by = new Map(keys.map((k) => [`${k.db}/${k.key.toString()}`, k]));
    const values = (k: string): string[] => (by.get(k)!.value as Buffer[]).map((b) => b.toString());
    assert.deepEqual(values("0/linked"), ["a", "b", "12345", ""]);
    const z = by.get("0/ascii-z")!.value as Array<[Buffer, number]>;
    assert.deepEqual(z.map(([m, s]) => [m.toString(), s]), [["a", 1.5], ["b", Infinity], ["c", -Infinity], ["d", 0.1], ["e", -3]]);
    const zm = by.get("0/zipmap")!.value as Array<[Buffer, Buffer, number]>;
    assert.deepEqual(zm.map(([f, v, e]) => [f.toString(), v.toString(), e]), [["f1", "v1", -1], ["field-two", "value-two", -1], ["n", "7", -1]]);
    assert.deepEqual(values("0/ziplist"), ["x", "0", "12", "-1", "200", "-30000", "5000000", "3000000000", "y".repeat(70), "9000000000000000"]);
    assert.deepEqual(values("0/intset"), ["-2", "1", "2"]);
    assert.equal(by.get("0/exp-s")!.expireAt, 2000000000000);
    assert.equal(by.get("0/exp-ms")!.expireAt, 4102444800123);
    assert.equal((by.get("2/db2")!.value as Buffer).toString(), "-5");
    assert.equal(by.get("0/linked")!.encoding, "linkedlist");
  });

  test("a real server loads them and reports the digest we compute", async () => {
    const file = oldFile();
    const ours = digestRdb(file, { scoreFormat: "%.17g" });
    const r = await loadIntoServer(file);
    try {
      await withConn(r, async (c) => {
        assert.equal(str(await c.command("DEBUG", "DIGEST")), ours.digest);
        assert.deepEqual((await c.command("LRANGE", "ziplist", 0, -1) as Buffer[]).map(str).slice(-1), ["9000000000000000"]);
        assert.equal(str(await c.command("HGET", "zipmap", "field-two")), "value-two");
        assert.equal(Number(await c.command("PEXPIRETIME", "exp-ms")), 4102444800123);
      });
    } finally {
      await r.stop();
    }
  });

  test("module values, module AUX, functions, LRU/LFU, slot info and resize hints are reported", () => {
    const id = moduleId("testmodul", 3);
    const b = new RdbBuilder(12).aux("redis-ver", "7.4.1");
    // module aux: id, when-opcode UINT, when, then a UINT and EOF
    b.raw([0xf7]).len(id).len(2).len(2).len(2).len(99).len(0);
    b.raw([0xf5]).str("#!lua name=lib\nredis.register_function('f', function() return 1 end)");
    b.selectDb(0).raw([0xf4]).len(866).len(1).len(0);
    const moduleBody = new RdbBuilder(0);
    moduleBody.w.reset();
    moduleBody.len(2).len(7).len(5).str("opaque").len(4).raw(Buffer.alloc(8, 1)).len(3).raw(Buffer.alloc(4, 2)).len(1).len(123n).len(0);
    const body = Buffer.from(moduleBody.w.view());
    b.idle(77).key(RdbType.MODULE_2, "mod").len(id).raw(body);
    b.freq(9).key(RdbType.STRING, "hot").str("x");
    const file = b.end();
    const seen: string[] = [];
    const raw: Buffer[] = [];
    let header: KeyHeader | undefined;
    const hot: KeyHeader[] = [];
    parse(file, {
      onModuleAux: (m, when, data) => seen.push(`aux ${m.name} v${m.encVersion} when ${when} ${data.length}b`),
      onFunction: (code) => seen.push(`fn ${code.toString().split("\n")[0]}`),
      onSlotInfo: (slot, size, exp) => seen.push(`slot ${slot} ${size} ${exp}`),
      onKeyStart: (h) => {
        if (h.type === "module") header = h;
        else hot.push(h);
      },
      onModuleData: (d) => raw.push(Buffer.from(d)),
    }, 5);
    assert.deepEqual(seen, ["aux testmodul v3 when 2 4b", "fn #!lua name=lib", "slot 866 1 0"]);
    assert.equal(header!.module!.name, "testmodul");
    assert.equal(header!.module!.encVersion, 3);
    assert.equal(header!.lruIdle, 77);
    assert.deepEqual(Buffer.concat(raw), body);
    assert.equal(hot[0].lfuFreq, 9);
    assert.equal(hot[0].lruIdle, -1);
    const d = digestRdb(file);
    assert.equal(d.moduleKeys, 1, "module keys are reported: their digest needs the module");
  });

  test("RDB 4 (no trailer) and a disabled checksum", () => {
    const v4 = new RdbBuilder(4).key(RdbType.STRING, "k").str("v").end();
    assert.equal(readRdbSync(v4).summary.checksum, "absent");
    const off = new RdbBuilder(9).key(RdbType.STRING, "k").str("v").end({ noChecksum: true });
    assert.equal(readRdbSync(off).summary.checksum, "disabled");
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("what a Redis loading from the socket refuses (load-check)", () => {
  const dbl = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    return b;
  };
  const refused = (file: Buffer, why: RegExp) => {
    assert.throws(() => parse(file, new LoadCheck(), 5), (err: unknown) => {
      assert.ok(err instanceof LoadRuleViolation, String(err));
      assert.match(err.message, why);
      return true;
    });
  };

  test("a key twice in a database, a member twice in a set, sorted set or hash, a NaN score", () => {
    refused(new RdbBuilder(10).selectDb(0).key(RdbType.STRING, "k").str("1").key(RdbType.STRING, "k").str("2").end(), /a key that appears twice in its database \(key "k"/);
    refused(new RdbBuilder(10).selectDb(0).key(RdbType.SET, "s").len(3).str("1").str("2").str("1").end(), /a set member that appears twice/);
    refused(new RdbBuilder(10).selectDb(0).key(RdbType.ZSET_2, "z").len(2).str("a").raw(dbl(1)).str("a").raw(dbl(2)).end(), /a sorted-set member that appears twice/);
    refused(new RdbBuilder(10).selectDb(0).key(RdbType.ZSET_2, "z").len(1).str("a").raw(dbl(NaN)).end(), /a sorted-set score that is NaN/);
    refused(new RdbBuilder(10).selectDb(0).key(RdbType.HASH_LISTPACK, "h").str(listpack(["f", "v", "f", "w"])).end(), /a hash field that appears twice/);
  });

  test("what Redis accepts passes: the same name in two databases, and as a member of two keys", () => {
    parse(new RdbBuilder(10).selectDb(0).key(RdbType.STRING, "k").str("1").selectDb(1).key(RdbType.STRING, "k").str("2")
      .key(RdbType.SET, "s").len(2).str("k").str("1").key(RdbType.SET, "t").len(2).str("k").str("1").end(), new LoadCheck(), 3);
  });

  test("fingerprints: no false duplicates among 300,000 names, every repeat found, a limit instead of unbounded memory", () => {
    const set = new FingerprintSet(400_000);
    const h = (i: number): [number, number] => {
      const d = crypto.createHash("sha1").update(String(i)).digest();
      return [d.readInt32LE(0), d.readInt32LE(4)];
    };
    for (let i = 0; i < 300_000; i++) assert.equal(set.add(...h(i)), true, `name ${i}`);
    for (let i = 0; i < 300_000; i += 997) assert.equal(set.add(...h(i)), false, `repeat ${i}`);
    assert.equal(set.add(0, 0), true, "the all-zero fingerprint is a name too");
    assert.equal(set.add(0, 0), false);
    assert.throws(() => {
      for (let i = 300_000; i < 1_000_000; i++) set.add(...h(i));
    }, LoadCheckLimit);
    set.clear();
    assert.equal(set.size, 0);
    assert.equal(set.add(...h(1)), true);
    // A small set (a key's members) is cleared slot by slot: every name is new again, none lingers.
    for (const n of [10, 64, 65, 700]) {
      const small = new FingerprintSet(1000);
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < n; i++) assert.equal(small.add(...h(i)), true, `${n} names, round ${round}, name ${i}`);
        assert.equal(small.add(...h(0)), false);
        small.clear();
      }
    }
  });
});

describe("precise errors on corrupt input", () => {
  let file: Buffer;
  before(() => {
    const b = new RdbBuilder(10).aux("redis-ver", "7.0.0").selectDb(0);
    for (let i = 0; i < 30; i++) b.key(RdbType.STRING, `key:${i}`).str(`value:${i}`.repeat(i % 5));
    b.key(RdbType.HASH_LISTPACK, "h").str(listpack(["f", "v", "g", 5]));
    b.key(RdbType.LIST_QUICKLIST_2, "l").len(1).len(2).str(listpack(["a", "b", 3]));
    file = b.end();
    assert.equal(readRdbSync(file).keys.length, 32);
  });

  test("a truncated stream names how far it got", () => {
    for (let cut = 1; cut < file.length; cut += 13) {
      const e = rdbError(() => parse(file.subarray(0, cut), {}, 7));
      assert.equal(e.offset, cut, `cut at ${cut}: ${e.message}`);
      assert.match(e.message, /ended early|offset/);
    }
  });

  test("every single bit flip is refused (structure or CRC), never accepted silently", () => {
    const rnd = crypto.createHash("sha256").update("flips").digest();
    for (let i = 0; i < 400; i++) {
      const at = (rnd.readUInt32LE(i % 28) * (i + 1)) % file.length;
      const bad = Buffer.from(file);
      bad[at] ^= 1 << (i % 8);
      const e = rdbError(() => parse(bad, {}, 64));
      assert.ok(e.offset >= 0 && e.offset <= file.length, e.message);
      assert.match(e.message, /at offset \d+/);
    }
  });

  test("unknown versions, types and encodings name the offset", () => {
    const v14 = Buffer.from(file);
    v14.write("0014", 5, "latin1");
    const e1 = rdbError(() => parse(v14, {}));
    assert.equal(e1.offset, 5);
    assert.match(e1.message, /unsupported RDB version 14 \(REDIS0014: written by a newer server/);
    const vk = Buffer.from(file);
    vk.write("VALKEY081", 0, "latin1");
    const ek = rdbError(() => parse(vk, {}));
    assert.equal(ek.offset, 6);
    assert.match(ek.message, /unsupported Valkey RDB version 81 \(VALKEY081: written by a newer server/);

    const typeAt = file.indexOf(Buffer.from("key:3", "latin1")) - 2; // type byte, length byte, name
    const t = Buffer.from(file);
    t[typeAt] = 30;
    const e2 = rdbError(() => parse(t, {}));
    assert.equal(e2.offset, typeAt);
    assert.match(e2.message, /unknown value type 30/);

    const lpAt = file.indexOf(listpack(["f", "v", "g", 5]));
    const l = Buffer.from(file);
    l[lpAt + 6] = 0xf5; // first entry: an encoding byte no listpack uses
    const e3 = rdbError(() => parse(l, {}));
    assert.equal(e3.offset, lpAt + 6);
    assert.match(e3.message, /invalid listpack entry encoding/);

    const fn = new RdbBuilder(10).raw([0xf6]).str("x").end();
    assert.match(rdbError(() => parse(fn, {})).message, /release-candidate format \(opcode 0xF6\)/);
    const notRdb = Buffer.from("HELLO0009....");
    assert.equal(rdbError(() => parse(notRdb, {})).offset, 0);
  });
});

// ---------------------------------------------------------------------------------------------------------

for (const v of VERSIONS) {
  describe(`backups of ${v.server} ${v.version} (RDB ${v.rdbVersion})`, { skip: missing(v) }, () => {
    let r: RedisProcess;
    let rdb: Buffer;
    let digest: string;
    let keyCount: number;

    before(async () => {
      r = await startVersion(v);
      const info = await writeCorpus(r.endpoint, v, "", { lfu: v.name === "6.2", lru: v.name === "7.4" });
      keyCount = info.keys;
      digest = await debugDigest(r.endpoint);
      rdb = await captureToBuffer(r.endpoint);
    });

    after(() => r?.kill());

    test("parses completely in any chunking; the digest equals DEBUG DIGEST", () => {
      for (const size of [rdb.length, 65536, 9000, 1000, 7, 1]) {
        let keys = 0;
        const d = new RdbReader({ onKeyEnd: () => void keys++ });
        for (let i = 0; i < rdb.length; i += size) d.feed(rdb.subarray(i, i + size));
        const s = d.end();
        assert.equal(keys, keyCount, `chunk ${size}`);
        assert.equal(s.rdbVersion, v.rdbVersion);
        assert.equal(s.checksum, "ok");
      }
      const ours = digestRdb(rdb);
      assert.equal(ours.digest, digest);
      assert.equal(ours.keys, keyCount);
    });

    const noDigestValue = v.name === "4.0" ? "DEBUG DIGEST-VALUE arrived in Redis 5.0" : undefined;

    test("per-key digests equal DEBUG DIGEST-VALUE", { skip: noDigestValue }, async () => {
      const mine = new Map<string, string>();
      digestRdb(rdb, { onKeyDigest: (db, key, d) => mine.set(`${db}/${key.toString("latin1")}`, d) });
      await withConn(r, async (c) => {
        for (const db of [0, 3, 15]) {
          await c.command("SELECT", db);
          const keys = ((await c.command("KEYS", "*")) as Buffer[]).map(str);
          const got = (await c.command("DEBUG", "DIGEST-VALUE", ...keys)) as RespValue[];
          keys.forEach((k, i) => assert.equal(mine.get(`${db}/${k}`), str(got[i]), `db${db} ${k}`));
        }
      });
    });

    test("DUMP payloads of the server parse and digest like DEBUG DIGEST-VALUE", { skip: noDigestValue }, async () => {
      const format = v.setListpack ? "fpconv" : "%.17g";
      await withConn(r, async (c) => {
        const keys = ((await c.command("KEYS", "*")) as Buffer[]).map(str);
        for (const k of keys) {
          const payload = (await c.command("DUMP", k)) as Buffer;
          const ttl = Number(await c.command("PTTL", k));
          const [want] = (await c.command("DEBUG", "DIGEST-VALUE", k)) as RespValue[];
          assert.equal(digestDumpPayload(payload, { scoreFormat: format, expiring: ttl >= 0 }), str(want), k);
        }
      });
    });

    test("the header inspector (catalogue) and the inspect report agree with the server", async () => {
      const info = inspectRdb(rdb);
      assert.equal(info.rdbVersion, v.rdbVersion);
      assert.equal(info.checksum, "ok");
      assert.deepEqual(info.server, { name: v.server, version: v.version });
      if (v.server === "redis") assert.equal(info.redisVersion, v.version);
      const report = await inspectRdbStream(chunks(rdb, 4096));
      assert.equal(report.keys, keyCount);
      assert.deepEqual(report.server, { name: v.server, version: v.version });
      await withConn(r, async (c) => {
        for (const db of [0, 3, 15]) {
          await c.command("SELECT", db);
          assert.equal(report.dbs[db].keys, Number(await c.command("DBSIZE")), `db${db}`);
        }
      });
      assert.equal(report.biggest[0].key, "s:large", "the 70 KB string is the biggest key");
      await withConn(r, async (c) => {
        for (const k of report.biggest.slice(0, 5)) {
          await c.command("SELECT", k.db);
          const real = Number(await c.command("MEMORY", "USAGE", k.key, "SAMPLES", "0"));
          assert.ok(k.memory > real / 2 && k.memory < real * 2, `memory estimate of ${k.key}: ${k.memory} vs MEMORY USAGE ${real}`);
        }
      });
      assert.ok(report.estimatedMemory > rdb.length, "memory estimate above the compact file size");
      if (v.name === "6.2") assert.ok(report.byType.string!.keys > 0);
    });

    test("redis-check-rdb of the same version accepts the captured file", { skip: v.checkRdb ? undefined : "no redis-check-rdb" }, () => {
      const file = path.join(r.dir, "captured.rdb");
      fs.writeFileSync(file, rdb);
      const out = spawnSync(v.checkRdb!, [file], { encoding: "utf8" });
      assert.match(`${out.stdout}${out.stderr}`, /RDB looks OK/);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------

describe("exports", { skip: missing(version("7.4")) }, () => {
  let src: RedisProcess;
  let rdb: Buffer;
  let digest: string;
  before(async () => {
    src = await startVersion(version("7.4"));
    await writeCorpus(src.endpoint, version("7.4"));
    digest = await debugDigest(src.endpoint);
    rdb = await captureToBuffer(src.endpoint);
  });
  after(() => src?.kill());

  test("JSON lines: one parseable line per key with the values readRdb gives", async () => {
    const out = new PassThrough();
    const text: Buffer[] = [];
    out.on("data", (d: Buffer) => text.push(d));
    await exportJsonLines(chunks(rdb, 3000), out);
    const lines = Buffer.concat(text).toString("utf8").trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const keys: Array<{ key: Buffer; type: string; value: unknown; expireAt: number }> = [];
    for await (const k of readRdb(chunks(rdb, 999))) keys.push(k);
    assert.equal(lines.length, keys.length);
    const asText = (b: Buffer): unknown => (isUtf8(b) ? b.toString("utf8") : { base64: b.toString("base64") });
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      const l = lines[i];
      assert.deepEqual(l.key, asText(k.key));
      assert.equal(l.type, k.type);
      assert.equal(l.expireAt, k.expireAt === -1 ? null : k.expireAt);
      if (k.type === "list") assert.deepEqual(l.value, (k.value as Buffer[]).map(asText));
      if (k.type === "hash") assert.deepEqual(l.value, (k.value as Array<[Buffer, Buffer, number]>).map(([f, v, e]) => (e === -1 ? [asText(f), asText(v)] : [asText(f), asText(v), e])));
      if (k.type === "stream") assert.ok(Array.isArray((l.value as { entries: unknown[] }).entries));
    }
    const hx = lines.find((l) => l.key === "hx:small")!;
    assert.ok((hx.value as unknown[][]).some((f) => f.length === 3), "field TTLs are exported");
  });

  test("RESP export loads with redis-cli --pipe into an identical data set", async () => {
    const file = path.join(src.dir, "export.resp");
    const out = fs.createWriteStream(file);
    const summary = await exportResp(chunks(rdb, 5000), out, { targetVersion: "7.4.1" });
    await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
    assert.ok(summary.keys > 30 && summary.failed === 0, JSON.stringify(summary.failures));
    const dst = await startVersion(version("7.4"));
    try {
      const res = spawnSync(version("7.4").cli!, ["-p", String(dst.port), "--pipe"], { input: fs.readFileSync(file), encoding: "utf8" });
      assert.match(res.stdout, /errors: 0, replies: \d+/, res.stdout + res.stderr);
      assert.equal(await debugDigest(dst.endpoint), digest);
      const fns = await withConn(dst, (c) => c.command("FUNCTION", "LIST"));
      assert.match(JSON.stringify(fns, (_k, x) => (x?.type === "Buffer" ? Buffer.from(x.data).toString() : x)), /corpuslib/);
    } finally {
      dst.kill();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("huge keys stay within bounded memory", () => {
  let r: RedisProcess;
  let rdb: Buffer;
  let digest: string;
  before(async () => {
    r = await startRedis(["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]);
    await withConn(r, async (c) => {
      // random items: LZF must not shrink the file below the sizes this test is about
      for (let b = 0; b < 20; b++) await c.command("RPUSH", "biglist", ...Array.from({ length: 5000 }, (_, i) => `${b}-${i}-${crypto.randomBytes(50).toString("hex")}`));
      await c.command("SET", "bigstring", crypto.randomBytes(5 << 20));
      // semi-compressible: LZF keeps it well above the piece size, so it is decompressed as a stream
      const alphabet = "abcdefghij";
      const semi = Buffer.alloc(3 << 20);
      const rnd = crypto.randomBytes(semi.length);
      for (let i = 0; i < semi.length; i++) semi[i] = alphabet.charCodeAt(rnd[i] % 10);
      await c.command("SET", "lzfstring", semi);
      await c.command("SET", "zeros", Buffer.alloc(4 << 20)); // compresses ~100:1: streamed by its output size
      await c.command("SADD", "bigset", ...Array.from({ length: 20000 }, (_, i) => `member-${i}`));
    });
    digest = await debugDigest(r.endpoint);
    rdb = await captureToBuffer(r.endpoint);
  });
  after(() => r?.kill());

  test("a 10 MB list, a 5 MB string and 3 MB / 4 MB LZF strings are read piece by piece", () => {
    let pieces = 0;
    let items = 0;
    let maxPiece = 0;
    let whole = 0;
    const reader = new RdbReader(
      {
        onString: (v) => void (whole = Math.max(whole, v.length)),
        onStringPiece: (p) => {
          pieces++;
          maxPiece = Math.max(maxPiece, p.length);
        },
        onListItem: () => void items++,
      },
      { stringPieceBytes: 1 << 16 },
    );
    for (let i = 0; i < rdb.length; i += 16384) reader.feed(rdb.subarray(i, i + 16384));
    reader.end();
    assert.ok(rdb.length > 15 << 20, `file is ${rdb.length} bytes`);
    assert.equal(items, 100_000);
    assert.ok(pieces > 100, `${pieces} pieces`);
    assert.ok(maxPiece <= (1 << 16) + 300, `pieces of about 64 KB (saw ${maxPiece})`);
    assert.ok(reader.peakBuffered < 256 * 1024, `held at most ${reader.peakBuffered} bytes between chunks`);
    assert.ok(whole <= 1 << 16, `no string above the piece size was delivered whole (saw ${whole})`);
  });

  test("the streamed digest (strings hashed in pieces) equals DEBUG DIGEST", () => {
    const d = new RdbDigest({ stringPieceBytes: 1 << 16 });
    for (let i = 0; i < rdb.length; i += 65536) d.update(rdb.subarray(i, i + 65536));
    assert.equal(d.digest().digest, digest);
  });

  test("DigestStream (worker thread, for the capture path) gives the same digest; a cut RDB names the offset", async () => {
    const d = new DigestStream({ maxQueuedBytes: 1 << 20 });
    await pipeline(chunks(rdb, 65536), d);
    const res = await d.result();
    assert.equal(res.digest, digest);
    assert.equal(res.rdb.checksum, "ok");
    const cut = new DigestStream();
    await assert.rejects(pipeline(chunks(rdb.subarray(0, 1_000_000), 65536), cut), (e: Error) => e instanceof RdbParseError && e.offset === 1_000_000);
    await assert.rejects(cut.result(), /ended early after 1000000 bytes/);
  });

  test("DigestStreams at once share the workers: each gets its own digest, a malformed one fails alone, a destroyed one is dropped", async () => {
    const good = Array.from({ length: 6 }, () => new DigestStream({ maxQueuedBytes: 1 << 18 }));
    const bad = new DigestStream();
    const dropped = new DigestStream();
    const garbage = Buffer.concat([rdb.subarray(0, 9), Buffer.alloc(4096, 0xf3)]);
    dropped.write(rdb.subarray(0, 100_000));
    dropped.destroy();
    await Promise.all([
      ...good.map((d, i) => pipeline(chunks(rdb, 16_384 + i * 1000), d)),
      assert.rejects(pipeline(chunks(garbage, 1024), bad)),
    ]);
    for (const d of good) assert.equal((await d.result()).digest, digest);
    await assert.rejects(bad.result());
    await assert.rejects(dropped.result(), /destroyed before the end/);
    // And the pool still serves a new stream afterwards.
    const after = new DigestStream();
    await pipeline(chunks(rdb, 65536), after);
    assert.equal((await after.result()).digest, digest);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("score formats match the servers", () => {
  const samples = (): number[] => {
    const out = [0.1, 1 / 3, 1e21, 1e-7, 123456789.125, -2.5e-10, 5e-324, 1.7976931348623157e308, 2 ** 60, -0.0];
    const rnd = crypto.createHash("sha256").update("scores").digest();
    let h = rnd;
    for (let i = 0; i < 600; i++) {
      h = crypto.createHash("sha256").update(h).digest();
      const f = h.readDoubleLE(0);
      if (Number.isFinite(f)) out.push(f);
      out.push((h.readUInt32LE(8) / 1000) * (h[12] & 1 ? -1 : 1), h.readInt32LE(16) / 7);
    }
    return out;
  };

  async function zscores(v: ReturnType<typeof version>, values: number[]): Promise<string[]> {
    const r = await startVersion(v);
    try {
      return await withConn(r, async (c) => {
        await Promise.all(values.map((x, i) => c.command("ZADD", "z", Object.is(x, -0) ? "-0" : String(x), `m${i}`)));
        return Promise.all(values.map(async (_x, i) => str(await c.command("ZSCORE", "z", `m${i}`))));
      });
    } finally {
      r.kill();
    }
  }

  // ZSCORE prints integral scores as integers (ll2string) and the others with the digest's format, so it checks
  // the formats on non-integers; integral scores are checked through DEBUG DIGEST-VALUE below.
  test("fpconv_dtoa (Redis 7.2+) as ZSCORE prints it", { skip: missing(version("7.2")) }, async () => {
    const values = samples().filter((x) => !Number.isInteger(x));
    const got = await zscores(version("7.2"), values);
    values.forEach((x, i) => assert.equal(fpconvDtoa(x), got[i], `score ${x}`));
  });

  test("%.17g (Redis <= 7.0) as ZSCORE prints it", async () => {
    const values = samples().filter((x) => !Number.isInteger(x));
    const got = await zscores(version("7.0"), values);
    values.forEach((x, i) => assert.equal(formatG17(x), got[i], `score ${x}`));
  });

  for (const name of ["7.0", "7.2"]) {
    test(`integral and extreme scores digest like DEBUG DIGEST-VALUE on ${name}`, { skip: missing(version(name)) }, async () => {
      const scores = [0, -0, 1, -1, 100, 2 ** 53, 2 ** 60, 1e15, 1e16, 1e17, 1e20, 1e21, 1e22, 123456789012345680, 1e300, -1e-300, 0.5, 1e-5, 1e-7];
      const r = await startVersion(version(name));
      try {
        await withConn(r, async (c) => {
          for (let i = 0; i < scores.length; i++) {
            const x = scores[i];
            const arg = Object.is(x, -0) ? "-0" : String(x);
            await c.command("ZADD", `small${i}`, arg, "m");
            await c.command("ZADD", `big${i}`, arg, "m", ...Array.from({ length: 200 }, (_, j) => [j, `filler${j}`]).flat());
          }
        });
        const mine = new Map<string, string>();
        digestRdb(await captureToBuffer(r.endpoint), { onKeyDigest: (_db, key, d) => mine.set(key.toString(), d) });
        await withConn(r, async (c) => {
          for (let i = 0; i < scores.length; i++) {
            const got = (await c.command("DEBUG", "DIGEST-VALUE", `small${i}`, `big${i}`)) as RespValue[];
            assert.equal(mine.get(`small${i}`), str(got[0]), `listpack score ${scores[i]}`);
            assert.equal(mine.get(`big${i}`), str(got[1]), `skiplist score ${scores[i]}`);
          }
        });
      } finally {
        r.kill();
      }
    });
  }

  test("the integer fast path equals the full Grisu2 path", () => {
    for (let i = 1; i < 200_000; i += 37) {
      const n = i * i * 31;
      assert.equal(fpconvDtoa(n), fpconvSlow(n, false));
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("DUMP payload writer", () => {
  test("plain re-encodings load on Redis 4.0 (RDB 8) and on 7.0 with the same digest", { skip: missing(version("4.0")) }, async () => {
    const b = new DumpBuilder({ rdbVersion: 8 });
    const payloads: Array<[string, Buffer, string]> = [];
    b.begin("list");
    ["a", "b", "17"].forEach((x) => b.listItem(Buffer.from(x)));
    payloads.push(["l", b.finish(), "list"]);
    b.begin("zset");
    b.zsetMember(Buffer.from("m"), 0.1);
    b.zsetMember(Buffer.from("n"), -Infinity);
    payloads.push(["z", b.finish(), "zset"]);
    b.begin("hash");
    b.hashField(Buffer.from("f"), Buffer.from("v"), -1);
    payloads.push(["h", b.finish(), "hash"]);
    b.begin("set");
    b.setMember(Buffer.from("1"));
    b.setMember(Buffer.from("x"));
    payloads.push(["s", b.finish(), "set"]);
    const old = await startVersion(version("4.0"));
    const cur = await startVersion(version("7.0"));
    try {
      await withConn(old, async (c) => {
        for (const [k, p, type] of payloads) {
          assert.equal(str(await c.command("RESTORE", k, "0", p)), "OK");
          assert.equal(str(await c.command("TYPE", k)), type);
        }
        assert.deepEqual(((await c.command("LRANGE", "l", 0, -1)) as Buffer[]).map(str), ["a", "b", "17"]);
        assert.deepEqual(((await c.command("ZRANGE", "z", 0, -1, "WITHSCORES")) as Buffer[]).map(str), ["n", "-inf", "m", "0.10000000000000001"]);
        assert.deepEqual(((await c.command("SMEMBERS", "s")) as Buffer[]).map(str).sort(), ["1", "x"]);
      });
      await withConn(cur, async (c) => {
        for (const [k, p] of payloads) {
          await c.command("RESTORE", k, "0", p);
          const [want] = (await c.command("DEBUG", "DIGEST-VALUE", k)) as RespValue[];
          assert.equal(digestDumpPayload(p, { scoreFormat: "%.17g" }), str(want), k);
        }
      });
    } finally {
      old.kill();
      cur.kill();
    }
  });

  test("streams and field TTLs are refused for targets without them, with the reason", () => {
    assert.throws(() => new DumpBuilder({ rdbVersion: 8 }).begin("stream"), /streams need a target with RDB version 9 \(Redis 5.0\)/);
    const b = new DumpBuilder({ rdbVersion: 11 });
    b.begin("hash", { mayHaveFieldTtls: true });
    b.hashField(Buffer.from("f"), Buffer.from("v"), Date.now() + 1000);
    assert.throws(() => b.finish(), /hash field TTL\(s\) \(Redis 7.4 HEXPIRE\) cannot be kept on a target with RDB version 11/);
    const d = new DumpBuilder({ rdbVersion: 11, dropFieldTtls: true });
    d.begin("hash", { mayHaveFieldTtls: true });
    d.hashField(Buffer.from("f"), Buffer.from("v"), Date.now() + 1000);
    d.finish();
    assert.equal(d.droppedFieldTtls, 1);
  });
});
