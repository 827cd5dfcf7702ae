// RDB formats beyond the shared ones, from hand-built files: Redis 8.6 (RDB 13: opcode 243 KEY_META, stream type
// 26) and Valkey 9 (VALKEY080: type 22 HASH_2, opcode 243 SLOT_IMPORT) — the same byte read as the file's
// magic says — and unknown versions, types and opcodes refused with the offset, the version and the opcode.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { KeyHeader, RdbReader, RdbVisitor } from "../src/redis/rdb/reader";
import { RdbParseError } from "../src/redis/rdb/errors";
import { digestRdb } from "../src/redis/rdb/index";
import { rdbRefusal } from "../src/redis/restore/target";
import { RdbBuilder } from "./support/rdb-build";

/** Parses in 1-byte chunks too (every unit resumable). */
function parse(buf: Buffer, v: RdbVisitor): void {
  for (const size of [buf.length, 1]) {
    const r = new RdbReader(v);
    for (let i = 0; i < buf.length; i += size) r.feed(buf.subarray(i, i + size));
    r.end();
  }
}

function refusal(buf: Buffer): RdbParseError {
  try {
    new RdbReader({}).feed(buf);
  } catch (err) {
    assert.ok(err instanceof RdbParseError, String(err));
    return err;
  }
  assert.fail("parsed");
}

describe("unknown formats are refused, never mis-parsed", () => {
  test("an unknown opcode names its offset, the RDB version and the opcode", () => {
    const at = new RdbBuilder(13).aux("redis-ver", "8.6.3").selectDb(0).w.len;
    const f = new RdbBuilder(13).aux("redis-ver", "8.6.3").selectDb(0).raw([0xf2]).key(0, "k").str("v").end();
    const e = refusal(f);
    assert.equal(e.offset, at);
    assert.match(e.message, /unknown opcode 0xf2 \(242\) in an RDB version 13 \(REDIS0013\) file.*at offset \d+/);
    assert.match(e.message, new RegExp(`at offset ${at} `));
  });

  test("243 is KEY_META only from RDB 13 on: in a version 12 file it is refused", () => {
    const f = new RdbBuilder(12).selectDb(0).raw([0xf3, 0x00]).key(0, "k").str("v").end();
    assert.match(refusal(f).message, /unknown opcode 0xf3 \(243\) in an RDB version 12 \(REDIS0012\) file/);
  });

  test("types from another family or a later version are refused with the file's format", () => {
    const vk = new RdbBuilder(80, true).selectDb(0).key(24, "h").end(); // Redis's HASH_METADATA
    const e = refusal(vk);
    assert.match(e.message, /unknown value type 24 in an RDB version 80 \(VALKEY080\) file/);
    assert.equal(e.offset, 9 + 2);
    const r12 = new RdbBuilder(12).selectDb(0).key(26, "st").end(); // a type-26 stream is RDB 13
    assert.match(refusal(r12).message, /unknown value type 26 in an RDB version 12 \(REDIS0012\) file/);
  });
});

describe("Redis 8.6 and Valkey 9 records", () => {
  test("Redis KEY_META: the class specs go to the next key, the value is read as usual", () => {
    const f = new RdbBuilder(13).selectDb(0)
      .raw([0xf3]).len(2)
      .raw([0x44, 0x33, 0x22, 0x11]).len(2).len(7).len(0) // UINT 7, EOF
      .raw([0x01, 0x00, 0x00, 0x80]).len(5).str("abc").len(0) // STRING "abc", EOF
      .key(0, "k").str("v").key(0, "plain").str("w").end();
    const metas: string[] = [];
    const keys: Array<[string, number[] | undefined]> = [];
    parse(f, {
      onKeyMeta: (spec, raw) => metas.push(`${spec.toString(16)}:${raw.toString("hex")}`),
      onKeyEnd: (h: KeyHeader) => keys.push([h.key.toString(), h.keyMeta]),
    });
    assert.deepEqual(metas.slice(0, 2), ["11223344:020700", "80000001:0503616263" + "00"]);
    assert.deepEqual(keys.slice(0, 2), [["k", [0x11223344, 0x80000001]], ["plain", undefined]]);
  });

  test("Valkey SLOT_IMPORT (243) and HASH_2 (22) in a VALKEY080 file; 22 in a Redis file is another type", () => {
    const job = "j".repeat(40);
    const f = new RdbBuilder(80, true).aux("valkey-ver", "9.1.2")
      .raw([0xf3]).str(job).len(2).len(0).len(99).len(200).len(16383)
      .selectDb(0).key(22, "h").len(2).str("a").str("1").raw(Buffer.from("00e1f50500000000", "hex")).str("b").str("2").raw(Buffer.alloc(8, 0xff))
      .end();
    const imports: string[] = [];
    const fields: string[] = [];
    parse(f, {
      onSlotImport: (s) => imports.push(`${s.jobName.length}:${JSON.stringify(s.ranges)}`),
      onHashField: (k, v, at) => fields.push(`${k}=${v}@${at}`),
    });
    assert.deepEqual(imports.slice(0, 1), ["40:[[0,99],[200,16383]]"]);
    assert.deepEqual(fields.slice(0, 2), ["a=1@100000000", "b=2@-1"]);
    // Valkey's digest leaves field TTLs out, Redis's mixes them in
    assert.notEqual(digestRdb(f).digest, digestRdb(f, { ignoreFieldTtls: false }).digest);
  });
});

test("which RDB versions a target loads by replication", () => {
  assert.equal(rdbRefusal({ version: "8.6.3" }, 13), undefined);
  assert.match(rdbRefusal({ version: "7.2.6" }, 13)!, /loads RDB versions up to 11, the backup is version 13/);
  assert.match(rdbRefusal({ version: "8.6.3" }, 80)!, /Redis 8\.6\.3\) loads RDB versions up to 13, the backup is a Valkey 9 file \(VALKEY80\)/);
  assert.equal(rdbRefusal({ version: "7.2.4", valkeyVersion: "9.1.2" }, 80), undefined);
  assert.equal(rdbRefusal({ version: "7.2.4", valkeyVersion: "9.1.2" }, 11), undefined);
  assert.match(rdbRefusal({ version: "7.2.4", valkeyVersion: "9.1.2" }, 12)!, /Valkey 9\.1\.2\) loads RDB versions up to 11 and 80, the backup is version 12/);
  assert.match(rdbRefusal({ version: "7.2.4", valkeyVersion: "8.1.1" }, 80)!, /up to 11, the backup is a Valkey 9 file/);
});
