// CRC-64 and the streaming RDB inspector, against Redis's own test vector, real RDB files written by
// redis-server, and hand-built files exercising each encoding and each failure.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { crc64, crc64Equals, crc64Init, crc64ToBuffer, crc64ToHex, crc64Update } from "../src/redis/rdb/crc64";
import { inspectRdb, lzfDecompress, RdbInspector } from "../src/redis/rdb/header";
import { fileTypeFor, instanceTypeFor, isClusterType, serverOfType } from "../src/protocol/instance-types";
import { RedisProcess, startRedis } from "./support/redis";

describe("crc64", () => {
  test("matches Redis's test vector", () => {
    assert.equal(crc64ToHex(crc64(Buffer.from("123456789"))), "e9c6d914c4b8d9ca");
    assert.equal(crc64ToHex(crc64(Buffer.alloc(0))), "0000000000000000");
  });

  test("incremental updates at any split equal the one-shot value", () => {
    const data = crypto.randomBytes(10_007);
    const whole = crc64ToHex(crc64(data));
    for (const step of [1, 3, 7, 8, 9, 64, 4096]) {
      const s = crc64Init();
      for (let i = 0; i < data.length; i += step) crc64Update(s, data.subarray(i, i + step));
      assert.equal(crc64ToHex(s), whole, `step ${step}`);
    }
    const s = crc64Init();
    crc64Update(s, data, 0, 5000);
    crc64Update(s, data, 5000);
    assert.equal(crc64ToHex(s), whole);
  });

  test("agrees with a bit-at-a-time BigInt reference", () => {
    const poly = 0x95ac9329ac4bc9b5n; // reflected 0xad93d23594c935a9
    for (let n = 0; n < 50; n++) {
      const data = crypto.randomBytes(n * 3);
      let ref = 0n;
      for (const b of data) {
        ref ^= BigInt(b);
        for (let i = 0; i < 8; i++) ref = ref & 1n ? (ref >> 1n) ^ poly : ref >> 1n;
      }
      assert.equal(crc64ToHex(crc64(data)), ref.toString(16).padStart(16, "0"));
    }
  });

  test("little-endian buffer form round-trips through crc64Equals", () => {
    const s = crc64(Buffer.from("123456789"));
    const le = crc64ToBuffer(s);
    assert.equal(le.toString("hex"), "cad9b8c414d9c6e9");
    assert.ok(crc64Equals(s, le));
    le[0] ^= 1;
    assert.ok(!crc64Equals(s, le));
  });
});

describe("RDB inspector on files written by redis-server", () => {
  let redis: RedisProcess;
  let noChecksum: RedisProcess;
  let rdb: Buffer;
  let rdbNoChecksum: Buffer;

  before(async () => {
    redis = await startRedis();
    noChecksum = await startRedis(["--rdbchecksum", "no"]);
    for (const r of [redis, noChecksum]) {
      const c = await r.connect();
      await Promise.all([
        c.command("SET", "s", "v".repeat(1000)),
        c.command("RPUSH", "l", "a", "b", "c"),
        c.command("HSET", "h", "f", "v"),
        c.command("SET", "e", "x", "PX", "3600000"),
        c.command("XADD", "st", "*", "f", "v"),
      ]);
      await c.command("SAVE");
      c.close();
    }
    rdb = fs.readFileSync(path.join(redis.dir, "dump.rdb"));
    rdbNoChecksum = fs.readFileSync(path.join(noChecksum.dir, "dump.rdb"));
  });

  after(async () => {
    await redis?.stop();
    await noChecksum?.stop();
    for (const r of [redis, noChecksum]) if (r) fs.rmSync(r.dir, { recursive: true, force: true });
  });

  test("the trailer of a real RDB is our CRC-64 of the preceding bytes", () => {
    const body = rdb.subarray(0, rdb.length - 8);
    assert.equal(body[body.length - 1], 0xff);
    assert.ok(crc64Equals(crc64(body), rdb.subarray(rdb.length - 8)));
  });

  test("reads version and AUX fields and verifies the checksum", () => {
    const info = inspectRdb(rdb);
    assert.equal(info.rdbVersion, 10);
    assert.equal(info.redisVersion, "7.0.15");
    assert.equal(info.aux["redis-ver"], "7.0.15");
    assert.equal(info.aux["redis-bits"], "64");
    assert.match(info.aux.ctime, /^\d{10}$/);
    assert.ok(Math.abs(Number(info.aux.ctime) - Date.now() / 1000) < 600);
    assert.match(info.aux["used-mem"], /^\d+$/);
    assert.equal(info.checksum, "ok");
    assert.equal(info.bytes, rdb.length);
  });

  test("gives the same answer for every chunking, down to 1-byte chunks", () => {
    const expected = inspectRdb(rdb);
    for (const step of [1, 2, 5, 9, 10, 13, 100, 4096]) {
      const i = new RdbInspector();
      for (let at = 0; at < rdb.length; at += step) i.update(rdb.subarray(at, at + step));
      assert.deepEqual(i.end(), expected, `step ${step}`);
    }
    // irregular splits, including empty chunks
    const i = new RdbInspector();
    let at = 0;
    let n = 0;
    while (at < rdb.length) {
      const len = (n++ * 7919) % 23;
      i.update(rdb.subarray(at, at + len));
      at += len;
    }
    assert.deepEqual(i.end(), expected);
  });

  test("reports a disabled checksum (rdbchecksum no)", () => {
    assert.deepEqual(rdbNoChecksum.subarray(-8), Buffer.alloc(8));
    const info = inspectRdb(rdbNoChecksum);
    assert.equal(info.checksum, "disabled");
    assert.equal(info.redisVersion, "7.0.15");
  });

  test("detects a flipped bit anywhere as a CRC mismatch", () => {
    for (const pos of [20, Math.floor(rdb.length / 2), rdb.length - 10]) {
      const bad = Buffer.from(rdb);
      bad[pos] ^= 0x10;
      assert.throws(() => inspectRdb(bad), /checksum mismatch/);
    }
    const badCrc = Buffer.from(rdb);
    badCrc[rdb.length - 1] ^= 1;
    assert.throws(() => inspectRdb(badCrc), /RDB checksum mismatch: file says [0-9a-f]{16}, computed [0-9a-f]{16}/);
  });

  test("detects truncation", () => {
    assert.throws(() => inspectRdb(rdb.subarray(0, rdb.length - 1)), /truncated RDB|checksum mismatch/);
    assert.throws(() => inspectRdb(rdb.subarray(0, rdb.length - 100)), /truncated RDB: no 0xFF end-of-file opcode|checksum mismatch/);
    assert.throws(() => inspectRdb(rdb.subarray(0, 7)), /truncated RDB: only 7 bytes, header incomplete/);
    assert.throws(() => inspectRdb(rdb.subarray(0, 30)), /truncated RDB: stream ended inside the AUX section/);
    assert.throws(() => inspectRdb(Buffer.alloc(0)), /truncated RDB/);
  });
});

/** Builds an RDB string with an explicit length encoding. */
function rdbLen(n: number, form: "6" | "14" | "32" | "64"): Buffer {
  switch (form) {
    case "6":
      return Buffer.from([n]);
    case "14":
      return Buffer.from([0x40 | (n >> 8), n & 0xff]);
    case "32": {
      const b = Buffer.alloc(5);
      b[0] = 0x80;
      b.writeUInt32BE(n, 1);
      return b;
    }
    case "64": {
      const b = Buffer.alloc(9);
      b[0] = 0x81;
      b.writeBigUInt64BE(BigInt(n), 1);
      return b;
    }
  }
}

function rdbStr(s: string | Buffer, form: "6" | "14" | "32" | "64" = "6"): Buffer {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  return Buffer.concat([rdbLen(b.length, form), b]);
}

/** A minimal valid RDB: header, AUX fields, one string key, EOF and CRC. */
function buildRdb(version: string, auxFields: Buffer[], opts: { crc?: "ok" | "zero" | "bad"; eof?: boolean } = {}): Buffer {
  const parts: Buffer[] = [Buffer.from(`REDIS${version}`)];
  for (let i = 0; i < auxFields.length; i += 2) parts.push(Buffer.from([0xfa]), auxFields[i], auxFields[i + 1]);
  parts.push(Buffer.from([0xfe, 0x00, 0x00]), rdbStr("k"), rdbStr("v"));
  if (opts.eof !== false) parts.push(Buffer.from([0xff]));
  const body = Buffer.concat(parts);
  const crc = opts.crc === "zero" ? Buffer.alloc(8) : crc64ToBuffer(crc64(body));
  if (opts.crc === "bad") crc[3] ^= 0xff;
  return Buffer.concat([body, crc]);
}

describe("RDB inspector on hand-built files", () => {
  test("decodes every length and integer encoding", () => {
    const long14 = "x".repeat(300);
    const long32 = "y".repeat(20_000);
    const file = buildRdb("0010", [
      rdbStr("redis-ver"), rdbStr("7.2.4"),
      rdbStr("int8"), Buffer.from([0xc0, 0xfe]), // -2
      rdbStr("int16"), Buffer.from([0xc1, 0x39, 0x30]), // 12345 LE
      rdbStr("int32"), Buffer.from([0xc2, 0x15, 0xcd, 0x5b, 0x07]), // 123456789 LE
      rdbStr("neg32"), Buffer.from([0xc2, 0xff, 0xff, 0xff, 0xff]), // -1
      rdbStr("len14", "14"), rdbStr(long14, "14"),
      rdbStr("len32", "32"), rdbStr(long32, "32"),
      rdbStr("len64", "64"), rdbStr("sixty-four", "64"),
    ]);
    for (const step of [1, 3, 4096, file.length]) {
      const i = new RdbInspector();
      for (let at = 0; at < file.length; at += step) i.update(file.subarray(at, at + step));
      const info = i.end();
      assert.equal(info.rdbVersion, 10);
      assert.equal(info.redisVersion, "7.2.4");
      assert.deepEqual(info.aux, {
        "redis-ver": "7.2.4",
        int8: "-2",
        int16: "12345",
        int32: "123456789",
        neg32: "-1",
        len14: long14,
        len32: long32,
        len64: "sixty-four",
      });
      assert.equal(info.checksum, "ok");
      assert.equal(info.bytes, file.length);
    }
  });

  test("decompresses LZF-encoded AUX strings", () => {
    // "abcabcabcabcabcabcabcabc-end": literal "abc", back-reference (offset 3, length 21), literal "-end"
    const expected = "abc".repeat(8) + "-end";
    const lzf = Buffer.from([0x02, 0x61, 0x62, 0x63, 0xe0, 21 - 2 - 7, 0x02, 0x03, 0x2d, 0x65, 0x6e, 0x64]);
    assert.equal(lzfDecompress(lzf, expected.length).toString(), expected);
    const value = Buffer.concat([Buffer.from([0xc3]), rdbLen(lzf.length, "6"), rdbLen(expected.length, "6"), lzf]);
    const file = buildRdb("0009", [rdbStr("redis-ver"), rdbStr("5.0.14"), rdbStr("repl-id"), value]);
    const i = new RdbInspector();
    for (const b of file) i.update(Buffer.from([b]));
    const info = i.end();
    assert.equal(info.aux["repl-id"], expected);
    assert.equal(info.redisVersion, "5.0.14");
    assert.throws(() => lzfDecompress(Buffer.from([0xe0, 0x05, 0x10]), 20), /corrupt LZF/);
  });

  test("accepts a file without AUX fields (pre-3.2) and reports an unknown Redis version", () => {
    const info = inspectRdb(buildRdb("0006", []));
    assert.equal(info.rdbVersion, 6);
    assert.equal(info.redisVersion, undefined);
    assert.deepEqual(info.aux, {});
  });

  test("precise errors", () => {
    assert.throws(() => inspectRdb(Buffer.from("RUDIS0010xxxxxxxxxxx")), /not an RDB file: bad magic "RUDIS"/);
    assert.throws(() => inspectRdb(Buffer.from("-ERR nope\r\n")), /not an RDB file: bad magic/);
    assert.throws(() => inspectRdb(buildRdb("00a1", [])), /bad version field "00a1"/);
    assert.throws(() => inspectRdb(buildRdb("0099", [])), /unsupported RDB version 99/);
    assert.throws(() => inspectRdb(buildRdb("0010", [], { eof: false })), /no 0xFF end-of-file opcode/);
    assert.throws(() => inspectRdb(buildRdb("0010", [], { crc: "bad" })), /checksum mismatch/);
    assert.equal(inspectRdb(buildRdb("0010", [], { crc: "zero" })).checksum, "disabled");
    // The bad magic is reported as soon as the first bytes arrive, not only at the end.
    const i = new RdbInspector();
    assert.throws(() => i.update(Buffer.from("RX")), /bad magic "RX"/);
  });
});

describe("catalogue helpers", () => {
  test("fileTypeFor", () => {
    assert.equal(fileTypeFor("7.0.15"), "RDB-Redis 7.0");
    assert.equal(fileTypeFor("6.2.14"), "RDB-Redis 6.2");
    assert.equal(fileTypeFor("2.8.24"), "RDB-Redis 2.8");
    assert.throws(() => fileTypeFor("unknown"), /cannot read a Redis version/);
  });

  test("instanceTypeFor", () => {
    assert.equal(instanceTypeFor("2.8.24", false), 5);
    assert.equal(instanceTypeFor("4.0.14", false), 6);
    assert.equal(instanceTypeFor("4.0.14", true), 7);
    assert.equal(instanceTypeFor("5.0.14", false), 8);
    assert.equal(instanceTypeFor("5.0.14", true), 9);
    assert.equal(instanceTypeFor("6.0.20", false), 15);
    assert.equal(instanceTypeFor("6.2.14", true), 16);
    assert.equal(instanceTypeFor("7.0.15", false), 17);
    assert.equal(instanceTypeFor("7.2.4", true), 18);
    assert.equal(instanceTypeFor("8.0.0", false), 17);
    assert.equal(instanceTypeFor("8.1.0", true, "valkey"), 20);
    // The same table answers the other way round (DescribeInstances' ProductType, a backup's server).
    for (const code of [7, 9, 16, 18, 20, 22]) assert.equal(isClusterType(code), true, `type ${code} is a cluster`);
    for (const code of [5, 6, 8, 15, 17, 19, 21]) assert.equal(isClusterType(code), false, `type ${code} is standard`);
    assert.equal(serverOfType(19), "valkey");
    assert.equal(serverOfType(17), "redis");
    assert.equal(instanceTypeFor("8.6.3", true), 18);
    assert.equal(instanceTypeFor("8.1.1", false, "valkey"), 19);
    assert.equal(instanceTypeFor("9.1.2", false, "valkey"), 21);
    assert.equal(instanceTypeFor("9.1.2", true, "valkey"), 22);
  });
});
