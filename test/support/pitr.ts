// Point-in-time recovery tests' shared parts: a writer that records when each write was sent and acknowledged
// (standalone or, through a key -> connection function, a cluster), the check of a restored data set against
// those records at a cut (`crs-backup restore --at` runs through cli-process.ts's runCli).
import { RespConnection } from "../../src/redis/client/resp";
import type { RedisEndpoint } from "../../src/redis/client/resp";
import { send } from "./dataset";
import { readSlotMap } from "../../src/redis/client/cluster";
import assert from "node:assert/strict";
import type { Catalog } from "../../src/catalog/catalog";
import fs from "node:fs";
import path from "node:path";
import { processesIn } from "../../src/instances/local";
import { keySlot, waitFor } from "./redis";

/** Writes acknowledged this close before the end of the second may have arrived after it: either outcome. */
export const ARRIVAL_MARGIN_MS = 200;

export interface AckedWrite {
  key: string;
  value: string;
  sent: number;
  /** When the master acknowledged it; undefined when no reply came (the master died). */
  acked?: number;
}

/**
 * Writes `SET <prefix><i> v<i>` one after the other until `more()` is false or the master stops answering,
 * recording each write's times. `connOf` gives the connection a key goes to (a cluster: its slot's master).
 */
export async function writeUntil(connOf: (key: string) => Promise<RespConnection>, prefix: string, more: () => boolean, pauseMs = 2): Promise<AckedWrite[]> {
  const ops: AckedWrite[] = [];
  for (let i = 0; more(); i++) {
    const key = `${prefix}${i}`;
    const op: AckedWrite = { key, value: `v${i}`, sent: Date.now() };
    ops.push(op);
    try {
      await (await connOf(key)).command("SET", key, op.value);
    } catch {
      break; // the master is gone: this write has no acknowledgement
    }
    op.acked = Date.now();
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
  }
  return ops;
}

/** A writer on one standalone master. */
export async function writeStandalone(ep: RedisEndpoint, prefix: string, more: () => boolean): Promise<AckedWrite[]> {
  const conn = await RespConnection.connect(ep);
  try {
    return await writeUntil(async () => conn, prefix, more);
  } finally {
    conn.close();
  }
}

export interface CutTally {
  inside: number;
  outside: number;
  either: number;
}

/**
 * Checks a restored data set against the writes at `cutoffMs`: a write acknowledged more than the margin before
 * it must be there, one sent at or after it must not.
 */
export async function checkAtCut(target: RedisEndpoint, ops: readonly AckedWrite[], cutoffMs: number): Promise<CutTally> {
  const replies = await send(target, ops.map((o) => ["GET", o.key]));
  const tally: CutTally = { inside: 0, outside: 0, either: 0 };
  for (const [n, op] of ops.entries()) {
    const v = replies[n];
    const got = v === null ? null : Buffer.isBuffer(v) ? v.toString() : String(v);
    if (got !== null && got !== op.value) throw new Error(`${op.key}: unexpected value ${got}`);
    if (op.acked !== undefined && op.acked < cutoffMs - ARRIVAL_MARGIN_MS) {
      if (got === null) throw new Error(`${op.key} acknowledged at ${op.acked}, before the cut ${cutoffMs}, is missing`);
      tally.inside++;
    } else if (op.sent >= cutoffMs) {
      if (got !== null) throw new Error(`${op.key} sent at ${op.sent}, after the cut ${cutoffMs}, is in the restore`);
      tally.outside++;
    } else tally.either++;
  }
  return tally;
}

// Clusters: a restored or cloned cluster read master by master.

/** The slot ranges of a cluster, master by master in slot order: [[start, end], ...] per master. */
export async function shapeOf(seed: RedisEndpoint): Promise<Array<Array<[number, number]>>> {
  const byMaster = new Map<string, Array<[number, number]>>();
  for (const r of (await readSlotMap(seed)).sort((a, b) => a.start - b.start)) {
    const k = `${r.master.host}:${r.master.port}`;
    byMaster.set(k, [...(byMaster.get(k) ?? []), [r.start, r.end]]);
  }
  return [...byMaster.values()];
}

/** GET of each key from the master of the cluster at `seed` that serves it, in the order given. */
export async function getAll(seed: RedisEndpoint, keys: string[]): Promise<unknown[]> {
  const map = await readSlotMap(seed);
  const out: unknown[] = new Array(keys.length);
  for (const r of map) {
    const mine = keys.map((k, i) => [k, i] as const).filter(([k]) => keySlot(k) >= r.start && keySlot(k) <= r.end);
    if (!mine.length) continue;
    const got = await send(r.master, mine.map(([k]) => ["GET", k]));
    for (const [n, [, i]] of mine.entries()) out[i] = got[n];
  }
  return out;
}

/** The keys of a cluster: DBSIZE summed over its masters. */
export async function dbsizeOf(seed: RedisEndpoint, password?: string): Promise<number> {
  let total = 0;
  for (const m of new Map((await readSlotMap(seed)).map((r) => [r.master.port, r.master])).values()) total += Number((await send({ ...m, ...(password ? { password } : {}) }, [["DBSIZE"]]))[0]);
  return total;
}

/** checkAtCut over a cluster: each write read from the master serving its key. */
export async function checkClusterAtCut(seed: RedisEndpoint, ops: AckedWrite[], cutMs: number): Promise<{ inside: number; outside: number; either: number }> {
  const map = await readSlotMap(seed);
  const total = { inside: 0, outside: 0, either: 0 };
  for (const r of map) {
    const mine = ops.filter((o) => keySlot(o.key) >= r.start && keySlot(o.key) <= r.end);
    if (!mine.length) continue;
    const t = await checkAtCut(r.master, mine, cutMs);
    total.inside += t.inside;
    total.outside += t.outside;
    total.either += t.either;
  }
  return total;
}

type SecondInfo = (sec: number) => Promise<{ BackupId?: string; MissingTimestamps?: Array<{ StartTimeStamp?: number; EndTimeStamp?: number }> }>;

/**
 * After keys moved between a cluster's masters at `movedAt` (second `moveSec`): waits for a new base on every
 * shard, then for the next second to be covered; checks that the move's second is missing and has no base.
 */
export async function rebasedAfterMove(catalog: Catalog, instanceId: string, shards: number, movedAt: number, moveSec: number, info: SecondInfo): Promise<{ sec: number; base: string }> {
  await waitFor("a new base on every shard after the move", async () => {
    for (let shard = 0; shard < shards; shard++) if (!(await catalog.streamBases(instanceId, shard)).some((b) => b.takenAt > movedAt)) return undefined;
    return true;
  }, 60_000, 250);
  const sec = Math.floor(Date.now() / 1000) + 1;
  const base = await waitFor(`second ${sec} covered`, async () => (await info(sec)).BackupId || undefined, 30_000, 200);
  const gaps = (await info(sec)).MissingTimestamps ?? [];
  assert.ok(gaps.some((g) => g.StartTimeStamp! <= moveSec && g.EndTimeStamp! >= moveSec), `the move's second ${moveSec} is missing: ${JSON.stringify(gaps)}`);
  assert.ok(!(await info(moveSec)).BackupId, "a second of the move has no backup to restore from");
  return { sec, base };
}

/** SIGKILLs every clone's redis-server under a data directory (DATA/instances/<id> and its shard-<n> nodes). */
export function killClones(data: string): void {
  const instances = path.join(data, "instances");
  for (const id of fs.existsSync(instances) ? fs.readdirSync(instances) : []) {
    const dir = path.join(instances, id);
    const nodes = fs.readdirSync(dir).filter((e) => /^shard-\d+$/.test(e)).map((e) => path.join(dir, e));
    for (const d of [dir, ...nodes]) for (const pid of processesIn(d)) process.kill(pid, "SIGKILL");
  }
}
