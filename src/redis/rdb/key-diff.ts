// After a restore: which keys differ? Streams the backup, computes each key's DEBUG DIGEST-VALUE (value, type,
// "has a TTL") and asks the target for the same, in batches (routed by slot on a cluster). The first
// `maxDifferences` differing keys are reported, with the digest the backup says and the one the target has
// (40 zeros: the key is missing). The target needs DEBUG enabled (Redis 7+: enable-debug-command).
import { keySlot, readSlotMap, SlotRange } from "../client/cluster";
import { parseInfo, RedisEndpoint, RespConnection, RespValue } from "../client/resp";
import { DigestVisitor, scoreFormatForServer } from "./digest";
import { ScoreFormat } from "./double-format";
import { KeyHeader, RdbReader } from "./reader";

export interface KeyDifference {
  db: number;
  key: string;
  /** DEBUG DIGEST-VALUE computed from the backup. */
  expected: string;
  /** What the target reports; "0000...0000" when the key does not exist there. */
  actual: string;
}

export interface VerifyResult {
  /** Keys of the backup compared. */
  keys: number;
  /** Keys the backup has and the target lacks. */
  missing: number;
  /** Keys present on both with different values (or TTL presence). */
  different: number;
  /** The first differences, in backup order. */
  differences: KeyDifference[];
  /** Keys on the target beyond those of the backup (DBSIZE totals minus backup keys; 0 if not more). */
  extraOnTarget: number;
  scoreFormat: ScoreFormat;
}

export interface VerifyOptions {
  /** Stop collecting after this many differences (counting continues). Default 10. */
  maxDifferences?: number;
  /** Keys per DEBUG DIGEST-VALUE call. Default 500. */
  batch?: number;
  /** Compare as if hash field TTLs had been dropped (a restore with dropFieldTtls). */
  ignoreFieldTtls?: boolean;
  /** Only these databases (the filters the restore used). */
  dbs?: number[];
  /** Only the keys this accepts (e.g. the restore's match/type filters, keys not expired): the others are not compared. */
  keyFilter?(header: KeyHeader): boolean;
  timeoutMs?: number;
  /**
   * A cluster target's masters must be on its own host or one of these (--cluster-hosts) to be connected to
   * (they get its credentials); undefined: not checked (a target the caller trusts as a whole).
   */
  allowedHosts?: readonly string[];
}

const ZERO = "0".repeat(40);

interface Pending {
  db: number;
  key: Buffer;
  digest: string;
}

/** Compares a backup (one or more RDB streams, e.g. one per shard) with a live target. */
export async function verifyAgainstServer(sources: Array<AsyncIterable<Buffer>> | AsyncIterable<Buffer>, target: RedisEndpoint, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const first = await RespConnection.connect(target, opts.timeoutMs);
  const conns = new Map<string, RespConnection>([[`${target.host}:${target.port}`, first]]);
  try {
    const server = parseInfo(await first.command("INFO", "server"));
    const cluster = parseInfo(await first.command("INFO", "cluster")).get("cluster_enabled") === "1";
    const scoreFormat = scoreFormatForServer(server.get("redis_version") ?? "", server.get("valkey_version"));
    const map: SlotRange[] | undefined = cluster ? await readSlotMap(target, first, opts.allowedHosts) : undefined;
    const maxDiff = opts.maxDifferences ?? 10;
    const batchSize = opts.batch ?? 500;
    const result: VerifyResult = { keys: 0, missing: 0, different: 0, differences: [], extraOnTarget: 0, scoreFormat };
    const selected = new Map<RespConnection, number>();

    const nodeConn = async (ep: RedisEndpoint): Promise<RespConnection> => {
      const addr = `${ep.host}:${ep.port}`;
      let c = conns.get(addr);
      if (!c) {
        c = await RespConnection.connect(ep, opts.timeoutMs);
        conns.set(addr, c);
      }
      return c;
    };
    const connFor = async (key: Buffer): Promise<RespConnection> => {
      if (!map) return first;
      const slot = keySlot(key);
      const r = map.find((x) => slot >= x.start && slot <= x.end);
      if (!r) throw new Error(`no cluster node serves slot ${slot}`);
      return nodeConn(r.master);
    };

    const check = async (batch: Pending[]): Promise<void> => {
      // group by connection and db, keep backup order in the report
      const groups = new Map<RespConnection, Map<number, Pending[]>>();
      for (const p of batch) {
        const c = await connFor(p.key);
        let byDb = groups.get(c);
        if (!byDb) groups.set(c, (byDb = new Map()));
        let list = byDb.get(p.db);
        if (!list) byDb.set(p.db, (list = []));
        list.push(p);
      }
      const actual = new Map<Pending, string>();
      for (const [c, byDb] of groups) {
        for (const [db, list] of byDb) {
          if (!map && selected.get(c) !== db) {
            await c.command("SELECT", db);
            selected.set(c, db);
          }
          const reply = (await c.command("DEBUG", "DIGEST-VALUE", ...list.map((p) => p.key))) as RespValue[];
          list.forEach((p, i) => actual.set(p, String(reply[i])));
        }
      }
      for (const p of batch) {
        const got = actual.get(p)!;
        if (got === p.digest) continue;
        if (got === ZERO) result.missing++;
        else result.different++;
        if (result.differences.length < maxDiff) result.differences.push({ db: p.db, key: p.key.toString("latin1"), expected: p.digest, actual: got });
      }
    };

    let pending: Pending[] = [];
    const dbs = opts.dbs;
    for (const source of Array.isArray(sources) ? sources : [sources]) {
      const visitor = new DigestVisitor({
        scoreFormat,
        ignoreFieldTtls: opts.ignoreFieldTtls,
        onKeyDigest: (db, key, digest, header) => {
          if (dbs && !dbs.includes(db)) return;
          if (opts.keyFilter && !opts.keyFilter(header)) return;
          pending.push({ db, key: Buffer.from(key), digest });
        },
      });
      const reader = new RdbReader(visitor);
      for await (const chunk of source) {
        reader.feed(chunk);
        if (pending.length >= batchSize) {
          result.keys += pending.length;
          await check(pending);
          pending = [];
        }
      }
      reader.end();
    }
    if (pending.length) {
      result.keys += pending.length;
      await check(pending);
    }
    // keys on the target beyond the backup's
    let total = 0;
    const masters = map ? [...new Map(map.map((r) => [`${r.master.host}:${r.master.port}`, r.master])).values()] : [target];
    for (const ep of masters) {
      const c = await nodeConn(ep);
      for (const [k, v] of parseInfo(await c.command("INFO", "keyspace"))) {
        if (!/^db\d+$/.test(k) || (dbs && !dbs.includes(Number(k.slice(2))))) continue;
        total += Number(/keys=(\d+)/.exec(v)?.[1] ?? 0);
      }
    }
    result.extraOnTarget = Math.max(0, total - (result.keys - result.missing));
    return result;
  } finally {
    for (const c of conns.values()) c.close();
  }
}
