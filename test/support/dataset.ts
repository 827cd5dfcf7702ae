// Test data for real Redis servers: a data set with every value type, and a key-by-key comparison of two
// servers (type, value, TTL) used to prove that a backup or a restore holds exactly the source's data.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { RedisEndpoint, RespConnection, RespValue } from "../../src/redis/client/resp";

export async function send(ep: RedisEndpoint, commands: Array<Array<string | number>>): Promise<RespValue[]> {
  const c = await RespConnection.connect(ep);
  try {
    return await Promise.all(commands.map((args) => c.command(...args))); // pipelined
  } finally {
    c.close();
  }
}

const LONG_TTL_MS = 3_600_000;

/** Writes keys of every type and common encoding (in db 0 and db 3); returns the number of keys. */
export async function writeMixedDataset(ep: RedisEndpoint, prefix = "m:"): Promise<number> {
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
export async function snapshotKey(c: RespConnection, key: string): Promise<unknown> {
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

export async function allKeys(c: RespConnection): Promise<string[]> {
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
export async function assertSameData(source: RedisEndpoint, copy: RedisEndpoint): Promise<number> {
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

export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? e.path, e.name));
}

export async function dbsize(ep: RedisEndpoint): Promise<number> {
  const [n] = await send(ep, [["DBSIZE"]]);
  return Number(n);
}

