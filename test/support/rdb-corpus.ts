// A small data set that makes a given server version write every encoding it has: thresholds are lowered
// with CONFIG SET so that "small" and "big" collections stay tiny, on both sides of each *-max-* limit.
import crypto from "node:crypto";
import { Writable } from "node:stream";
import { captureRdb } from "../../src/redis/capture/capture";
import { RedisEndpoint, RespConnection, RespValue } from "../../src/redis/client/resp";
import { ServerVersion } from "./versions";

export const LONG_TTL = 3_600_000;

type Cmd = Array<string | number | Buffer>;

async function run(c: RespConnection, cmds: Cmd[]): Promise<RespValue[]> {
  return Promise.all(cmds.map((a) => c.command(...a)));
}

/** Deterministic pseudo-random bytes (the corpus is the same on every run). */
function bytes(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  let h = crypto.createHash("sha256").update(seed).digest();
  for (let i = 0; i < n; i += 32) {
    h.copy(out, i, 0, Math.min(32, n - i));
    h = crypto.createHash("sha256").update(h).digest();
  }
  return out;
}

export interface CorpusInfo {
  keys: number;
  /** Keys with hash field TTLs (7.4). */
  fieldTtlKeys: string[];
  streams: number;
}

/**
 * Writes the corpus. `p` prefixes every key; `dbs` are used besides 0. Returns what was written.
 */
export async function writeCorpus(ep: RedisEndpoint, v: ServerVersion, p = "", opts: { lfu?: boolean; lru?: boolean } = {}): Promise<CorpusInfo> {
  const c = await RespConnection.connect(ep);
  try {
    const cfg: Cmd[] = [
      ["CONFIG", "SET", "hash-max-ziplist-entries", 8],
      ["CONFIG", "SET", "hash-max-ziplist-value", 32],
      ["CONFIG", "SET", "zset-max-ziplist-entries", 8],
      ["CONFIG", "SET", "zset-max-ziplist-value", 32],
      ["CONFIG", "SET", "set-max-intset-entries", 8],
      ["CONFIG", "SET", "list-max-ziplist-size", 4],
      ["CONFIG", "SET", "list-compress-depth", 1],
    ];
    if (v.streams) cfg.push(["CONFIG", "SET", "stream-node-max-entries", 5]);
    if (v.setListpack) cfg.push(["CONFIG", "SET", "set-max-listpack-entries", 8], ["CONFIG", "SET", "set-max-listpack-value", 32]);
    if (opts.lfu) cfg.push(["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
    if (opts.lru) cfg.push(["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    await run(c, cfg);
    if (v.listpack) await c.command("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "100"); // 7.0+: big elements get PLAIN nodes

    const cmds: Cmd[] = [];
    // strings: raw, integer encodings (int8/16/32), a 64-bit integer (kept as text), LZF, binary, empty, large
    cmds.push(["SET", `${p}s:short`, "hello"]);
    for (const n of ["0", "-7", "300", "-40000", "2147483647", "9223372036854775807", "12345678901"]) cmds.push(["SET", `${p}s:int:${n}`, n]);
    cmds.push(["SET", `${p}s:lzf`, "abcdefgh".repeat(200)]);
    cmds.push(["SET", `${p}s:bin`, bytes("bin", 300)]);
    cmds.push(["SET", `${p}s:empty`, ""]);
    cmds.push(["SET", `${p}s:large`, bytes("large", 70_000)]);
    cmds.push(["SET", `${p}s:ttl`, "expiring", "PX", LONG_TTL]);
    // lists: compact (one node), several nodes (some LZF-compressed by list-compress-depth), integers, a big element
    cmds.push(["RPUSH", `${p}l:small`, "a", "b", 1, -2, 70000]);
    cmds.push(["RPUSH", `${p}l:nodes`, ...Array.from({ length: 40 }, (_, i) => `item-${i}-${"z".repeat(i % 30)}`)]);
    cmds.push(["RPUSH", `${p}l:ints`, ...Array.from({ length: 30 }, (_, i) => i * 1000 - 5000)]);
    cmds.push(["RPUSH", `${p}l:bigel`, "x", "y".repeat(200), "z"]);
    cmds.push(["RPUSH", `${p}l:ttl`, "a", "b"], ["PEXPIRE", `${p}l:ttl`, LONG_TTL]);
    // sets: intset (16/32/64-bit), listpack (7.2+), hashtable
    cmds.push(["SADD", `${p}set:i16`, 1, 2, 3, -100]);
    cmds.push(["SADD", `${p}set:i32`, 1, 100000, -70000]);
    cmds.push(["SADD", `${p}set:i64`, 1, "5000000000", "-9223372036854775808"]);
    cmds.push(["SADD", `${p}set:small`, "a", "b", "c", 5]);
    cmds.push(["SADD", `${p}set:big`, ...Array.from({ length: 20 }, (_, i) => `m${i}`)]);
    cmds.push(["SADD", `${p}set:bigint`, ...Array.from({ length: 20 }, (_, i) => i)]);
    // sorted sets: compact and skiplist, with scores that print differently under %.17g and fpconv
    cmds.push(["ZADD", `${p}z:small`, 1, "a", 2.5, "b", 0.1, "c", -3, "d", 1e300, "e", "inf", "f", "-inf", "g", 7, 42]);
    cmds.push(["ZADD", `${p}z:big`, ...Array.from({ length: 20 }, (_, i) => [i / 3, `member-${i}`]).flat()]);
    cmds.push(["ZADD", `${p}z:ttl`, 1, "x"], ["PEXPIRE", `${p}z:ttl`, LONG_TTL]);
    // hashes: compact and hashtable, integer values
    cmds.push(["HSET", `${p}h:small`, "f1", "v1", "f2", 2, "3", "x"]);
    cmds.push(["HSET", `${p}h:big`, ...Array.from({ length: 20 }, (_, i) => [`field-${i}`, `value-${i}`]).flat()]);
    cmds.push(["HSET", `${p}h:longval`, "f", "v".repeat(100)]);
    cmds.push(["HSET", `${p}h:ttl`, "a", 1], ["PEXPIRE", `${p}h:ttl`, LONG_TTL]);
    if (v.version.startsWith("4.")) {
      // 4.0 has HMSET semantics for HSET with one pair only
      for (let i = 0; i < cmds.length; i++) {
        if (cmds[i][0] === "HSET" && cmds[i].length > 4) cmds[i] = ["HMSET", ...cmds[i].slice(1)];
      }
    }
    const info: CorpusInfo = { keys: 0, fieldTtlKeys: [], streams: 0 };
    if (v.streams) {
      const st = `${p}st:full`;
      for (let i = 1; i <= 12; i++) cmds.push(["XADD", st, `${1000 + i}-${i % 3}`, "f", i, "g", `v${i}`]);
      cmds.push(["XADD", st, "2000-0", "other", "fields", "third", 3]); // not the master fields
      cmds.push(["XDEL", st, "1003-0"]); // a tombstone
      cmds.push(["XGROUP", "CREATE", st, "g1", "0"], ["XGROUP", "CREATE", st, "g2", "1005-0"]);
      cmds.push(["XREADGROUP", "GROUP", "g1", "alice", "COUNT", 3, "STREAMS", st, ">"]);
      cmds.push(["XREADGROUP", "GROUP", "g1", "bob", "COUNT", 2, "STREAMS", st, ">"]);
      cmds.push(["XACK", st, "g1", "1001-1"]);
      cmds.push(["XADD", `${p}st:empty`, "5-5", "a", "b"], ["XDEL", `${p}st:empty`, "5-5"]);
      cmds.push(["XGROUP", "CREATE", `${p}st:mk`, "g", "$", "MKSTREAM"]);
      cmds.push(["XADD", `${p}st:ttl`, "*", "a", "b"], ["PEXPIRE", `${p}st:ttl`, LONG_TTL]);
      info.streams = 4;
    }
    if (v.hfe) {
      cmds.push(["HSET", `${p}hx:small`, "a", 1, "b", 2, "c", 3], ["HPEXPIRE", `${p}hx:small`, LONG_TTL, "FIELDS", 2, "a", "b"]);
      cmds.push(["HSET", `${p}hx:big`, ...Array.from({ length: 20 }, (_, i) => [`f${i}`, `v${i}`]).flat()]);
      cmds.push(["HPEXPIRE", `${p}hx:big`, LONG_TTL, "FIELDS", 3, "f1", "f2", "f3"]);
      cmds.push(["HPEXPIRE", `${p}hx:big`, LONG_TTL * 2, "FIELDS", 1, "f10"]);
      info.fieldTtlKeys.push(`${p}hx:small`, `${p}hx:big`);
    }
    // other databases
    cmds.push(["SELECT", 3], ["SET", `${p}db3:s`, "three"], ["RPUSH", `${p}db3:l`, 1, 2, 3], ["SET", `${p}db3:ttl`, "x", "PX", LONG_TTL]);
    cmds.push(["SELECT", 15], ["SADD", `${p}db15:set`, "x"]);
    cmds.push(["SELECT", 0]);
    await run(c, cmds);
    if (v.functions) {
      await c.command("FUNCTION", "LOAD", "REPLACE", "#!lua name=corpuslib\nredis.register_function('corpusfn', function(keys, args) return 1 end)");
    }
    let keys = 0;
    for (const db of [0, 3, 15]) {
      await c.command("SELECT", db);
      keys += Number(await c.command("DBSIZE"));
    }
    await c.command("SELECT", 0);
    info.keys = keys;
    return info;
  } finally {
    c.close();
  }
}

/** DEBUG DIGEST of a server. */
export async function debugDigest(ep: RedisEndpoint): Promise<string> {
  const c = await RespConnection.connect(ep);
  try {
    return String(await c.command("DEBUG", "DIGEST"));
  } finally {
    c.close();
  }
}

/** Captures an RDB through our capture path (replication) into memory. */
export async function captureToBuffer(ep: RedisEndpoint): Promise<Buffer> {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  await captureRdb(ep, sink, { timeoutMs: 20_000 });
  return Buffer.concat(parts);
}

/** An async iterable over a buffer in chunks of `size` bytes (to exercise resumption). */
export async function* chunks(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, Math.min(buf.length, i + size));
}
