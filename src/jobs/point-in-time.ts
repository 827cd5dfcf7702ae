// Point-in-time recovery from the catalogue's stream records: which base and which stored units a restore to a
// second needs (planPointInTime), the seconds with no backup data (missingTimestamps), and the restore itself
// into a registered instance (restoreAt: the base through the existing restore job, then the units replayed up
// to the cut).
//
// A cluster (one stream per shard, shards numbered as cluster backups number them): a second is one cut time,
// (S+1)*1000 ms, applied to each shard's stream with that shard's own samples; it is restorable only when every
// shard covers it (MissingTimestamps is the union of the shards' gaps). The *Shard/*Instance variants plan per
// shard; planPointInTime/unitsOfPlan/restoreAt keep their standalone signatures (shard 0).
import type { Catalog } from "../catalog/catalog";
import type { Backup, Instance, StreamBase, StreamConfig, StreamSegment } from "../catalog/types";
import { isClusterType } from "../protocol/instance-types";
import { parseEndpointUrl } from "../redis/client/url";
import { replayUnits, ReplayResult } from "../redis/stream/replay";
import { readSegment, StoredUnit } from "../redis/stream/segments";
import { Coverage, missingRanges, sampleBounds, unitsBefore } from "../redis/stream/timeline";
import type { BlobStore } from "../storage/blob-store";
import { verifiedRead } from "../storage/integrity";

/** A second that cannot be restored (not covered, no base, a gap); the message says why. */
export class PointInTimeError extends Error {
  override name = "PointInTimeError";
}

export interface PointInTimePlan {
  base: StreamBase;
  backup: Backup;
  /** The lineage from the base through the segment holding the cut, in stream order. */
  segments: StreamSegment[];
  cutoffMs: number;
}

const WINDOW_MS = 7 * 86_400_000;

/**
 * The shards of an instance's stream: 0..n-1 with n the larger of `shardNum` (the instance's ShardNum, which the
 * stream sets from the topology it reads) and the shards that have a base. A standalone instance: [0].
 */
export async function streamShards(catalog: Catalog, instanceId: string, shardNum = 1, epoch = 0): Promise<number[]> {
  // Bases from before the epoch (another number of masters) do not count: their shards were another shape.
  const top = (await catalog.streamBases(instanceId)).reduce((m, b) => (b.takenAt >= epoch ? Math.max(m, b.shard) : m), 0);
  return Array.from({ length: Math.max(shardNum, top + 1, 1) }, (_, i) => i);
}

/** Joins overlapping or adjacent inclusive ranges of seconds. */
function mergeRanges(ranges: Array<{ start: number; end: number }>): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  for (const r of [...ranges].sort((a, b) => a.start - b.start)) {
    const last = out.at(-1);
    if (last && r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/**
 * The seconds without backup data between `since` and `now`: for a cluster, the union of every shard's (a second
 * is restorable only if every shard covers it). `shardNum`: the instance's ShardNum (default: from the bases).
 */
export async function missingTimestamps(catalog: Catalog, config: StreamConfig, now: number, shardNum?: number): Promise<Array<{ start: number; end: number }>> {
  if (config.since === undefined) return [];
  const shards = await streamShards(catalog, config.instanceId, shardNum, config.epoch);
  if (shards.length === 1) return shardMissingTimestamps(catalog, config, 0, now);
  const all = [];
  const moved: StreamSegment[] = [];
  for (const shard of shards) {
    const segments = await catalog.streamSegments(config.instanceId, shard, windowStart(config, now), now);
    all.push(...await shardMissingTimestamps(catalog, config, shard, now, segments));
    moved.push(...segments.filter((s) => s.keyMoves));
  }
  if (moved.length) all.push(...await keyMoveGaps(catalog, config, shards, moved, now));
  return mergeRanges(all);
}

/** Where the seconds a restore may ask for begin: second-level backup's start, at most 7 days ago. */
function windowStart(config: StreamConfig, now: number): number {
  return Math.max(config.since ?? 0, now - WINDOW_MS);
}

/**
 * A cluster's seconds that keys moving between masters (a slot migration: RESTORE-ASKING on the importing master,
 * a plain DEL on the other) make unrestorable: from the first second of a segment holding a moved key until
 * every shard has a base taken after that segment (the stream takes them once the moves stop: streams.ts).
 * Replay runs shard by shard, which is exact only while each key lives in one shard's stream since the bases.
 */
async function keyMoveGaps(catalog: Catalog, config: StreamConfig, shards: number[], moved: readonly StreamSegment[], now: number): Promise<Array<{ start: number; end: number }>> {
  const from = windowStart(config, now);
  const bases = await Promise.all(shards.map((shard) => catalog.streamBases(config.instanceId, shard)));
  return moved.map((seg) => {
    const after = bases.map((b) => b.find((x) => x.takenAt > seg.toMs)?.takenAt);
    const until = after.some((t) => t === undefined) ? now : Math.max(...(after as number[]));
    return { start: Math.floor(Math.max(seg.fromMs, from) / 1000), end: Math.floor(until / 1000) };
  });
}

/** Refuses a cluster plan whose shards' bases are older than a key move before the cut (the plan's own check). */
async function checkNoKeyMoves(catalog: Catalog, config: StreamConfig, plans: PointInTimePlan[], atSec: number): Promise<void> {
  if (plans.length < 2) return;
  const oldest = Math.min(...plans.map((p) => p.base.takenAt));
  const cutoffMs = (atSec + 1) * 1000;
  for (const p of plans) {
    const moved = (await catalog.streamSegments(config.instanceId, p.base.shard, oldest, cutoffMs)).find((s) => s.keyMoves && s.toMs > oldest && s.fromMs < cutoffMs);
    if (moved) {
      throw new PointInTimeError(`keys moved between the cluster's masters (a slot migration) at ${Math.floor(moved.fromMs / 1000)}, after a shard's base and before ${atSec}: a second after every shard's next base is restorable`);
    }
  }
}

/** One shard's seconds without data between `since` and `now`. */
export async function shardMissingTimestamps(catalog: Catalog, config: StreamConfig, shard: number, now: number, read?: StreamSegment[]): Promise<Array<{ start: number; end: number }>> {
  if (config.since === undefined) return [];
  const from = windowStart(config, now);
  // `read`: the shard's segments from `from` to `now`, when the caller has them already.
  const segments = read ?? await catalog.streamSegments(config.instanceId, shard, from, now);
  // Seconds before the oldest kept base have no backup data (retention reclaimed it: jobs/stream-retention.ts).
  const oldest = (await catalog.streamBases(config.instanceId, shard))[0]?.takenAt ?? 0;
  const ranges: Coverage[] = segments.filter((s) => s.toMs > oldest).map((s) => ({ fromMs: Math.max(s.fromMs, oldest), toMs: s.toMs }));
  return missingRanges(ranges, from, now);
}

/** The base and segments a restore to the end of second `atSec` (Unix seconds) reads (a standalone instance: shard 0). */
export async function planPointInTime(catalog: Catalog, config: StreamConfig, atSec: number, now: number): Promise<PointInTimePlan> {
  return planShardPointInTime(catalog, config, 0, atSec, now);
}

/** One plan per shard, in shard order, for the same cut; refused unless every shard covers the second. */
export async function planInstancePointInTime(catalog: Catalog, config: StreamConfig, atSec: number, now: number, shardNum?: number): Promise<PointInTimePlan[]> {
  const shards = await streamShards(catalog, config.instanceId, shardNum, config.epoch);
  const gaps = await missingTimestamps(catalog, config, now, shards.length);
  const plans: PointInTimePlan[] = [];
  for (const shard of shards) {
    try {
      plans.push(await planShardPointInTime(catalog, config, shard, atSec, now, gaps));
    } catch (err) {
      if (err instanceof PointInTimeError && shards.length > 1) throw new PointInTimeError(`shard ${shard}: ${err.message}`);
      throw err;
    }
  }
  await checkNoKeyMoves(catalog, config, plans, atSec);
  return plans;
}

/** One shard's base and segments for a restore to the end of second `atSec`. */
export async function planShardPointInTime(catalog: Catalog, config: StreamConfig, shard: number, atSec: number, now: number, knownGaps?: Array<{ start: number; end: number }>): Promise<PointInTimePlan> {
  const cutoffMs = (atSec + 1) * 1000;
  if (config.mode !== "SecondLevelBackup" || config.since === undefined) throw new PointInTimeError(`second-level backup is not on for ${config.instanceId}`);
  if (cutoffMs <= config.since) throw new PointInTimeError(`second-level backup of ${config.instanceId} started at ${Math.floor(config.since / 1000)}; ${atSec} is before it`);
  if (atSec * 1000 < now - WINDOW_MS) throw new PointInTimeError(`${atSec} is more than 7 days ago`);
  const gaps = knownGaps ?? await missingTimestamps(catalog, config, now);
  const gap = gaps.find((g) => atSec >= g.start && atSec <= g.end);
  if (gap) throw new PointInTimeError(`there is no backup data for ${atSec}: the stream has a gap from ${gap.start} to ${gap.end}`);
  const bases = (await catalog.streamBases(config.instanceId, shard)).filter((b) => b.takenAt < cutoffMs && b.takenAt >= (config.epoch ?? 0)).reverse();
  const all = await catalog.streamSegments(config.instanceId, shard);
  for (const base of bases) {
    const backup = await catalog.backup(base.backupId);
    if (!backup || (backup.status !== 2 && backup.status !== 4)) continue;
    const first = baseSegment(all, base);
    if (first < 0) continue;
    // A scheduled base (taken through a second connection, jobs/stream-bases.ts) lies inside the stream: it
    // serves this cut only when the master had reached its offset before the cut (a sample says so).
    if (all[first]!.startOffset !== base.offset && !reachedBefore(all.slice(first), base.offset, cutoffMs)) continue;
    const chain: StreamSegment[] = [all[first]!];
    for (let i = first + 1; i < all.length; i++) {
      const s = all[i]!;
      if (chain[chain.length - 1]!.toMs >= cutoffMs) break;
      if (s.startOffset !== chain[chain.length - 1]!.endOffset) break; // a new base started another lineage
      chain.push(s);
    }
    const reach = chain[chain.length - 1]!.toMs;
    if (reach < cutoffMs) throw new PointInTimeError(`the stream of ${config.instanceId} is stored up to ${Math.floor(reach / 1000) - 1}; ${atSec} is not covered yet`);
    return { base, backup, segments: chain, cutoffMs };
  }
  throw new PointInTimeError(`no base of ${config.instanceId}'s stream was taken before ${atSec}`);
}

/**
 * The index of the segment a base's stream continues in: the one starting at its offset (a base from the link's
 * own full resync), else the one of its lineage holding the offset (a scheduled base), else the one ending at it
 * (a base of an idle master); -1 when none is stored.
 */
export function baseSegment(all: readonly StreamSegment[], base: StreamBase): number {
  const at = all.findIndex((s) => s.replid === base.replid && s.startOffset === base.offset);
  if (at >= 0) return at;
  const inside = all.findIndex((s) => s.replid === base.replid && s.startOffset < base.offset && base.offset < s.endOffset);
  if (inside >= 0) return inside;
  // A base taken while the master was idle, at the very end of what is stored: its stream continues after it.
  return all.findIndex((s) => s.replid === base.replid && s.endOffset === base.offset);
}

/** Whether a sample taken before `cutoffMs` shows the master at or past `offset`. */
function reachedBefore(segments: readonly StreamSegment[], offset: number, cutoffMs: number): boolean {
  for (const s of segments) {
    if (s.fromMs >= cutoffMs) return false;
    if (s.samples.some(([o, ms]) => o >= offset && ms < cutoffMs)) return true;
  }
  return false;
}

/** Reads the plan's units up to the cut (never past it, never inside a MULTI/EXEC: units are whole). */
/** A stored segment's units, its size and SHA-256 checked against its row (a segment without a file holds none). */
export async function readStoredSegment(store: BlobStore, seg: StreamSegment): Promise<StoredUnit[]> {
  if (!seg.key) return [];
  return readSegment(await verifiedRead(store, { key: seg.key, bytes: seg.bytes, sha256: seg.sha256 ?? "" }, { decompress: true }));
}

export async function unitsOfPlan(store: BlobStore, plan: PointInTimePlan): Promise<StoredUnit[]> {
  const samples = plan.segments.flatMap((s) => s.samples);
  const bounds = sampleBounds(samples, plan.cutoffMs);
  const out: StoredUnit[] = [];
  for (const seg of plan.segments) {
    let units = await readStoredSegment(store, seg);
    if (seg.startOffset < plan.base.offset) units = units.filter((u) => u.end > plan.base.offset); // in the base already
    const n = unitsBefore(units, bounds, plan.cutoffMs);
    out.push(...units.slice(0, n));
    if (n < units.length) break;
  }
  return out;
}

export interface RestoreAtHooks {
  /**
   * Loads the base into the target (the existing restore task); resolves when it succeeded. `merge`: a cluster's
   * second and later shard bases, whose keys are added by commands to what the first one loaded (never flushed).
   */
  loadBase(backup: Backup, target: Instance, opts?: { merge: boolean }): Promise<void>;
}

export interface RestoreAtResult extends ReplayResult {
  /** The base (a cluster: shard 0's; every shard's in `shards`). */
  backupId: string;
  /** The offset of the last unit replayed (the base's offset when none); a cluster: shard 0's. */
  offset: number;
  /** A cluster: each shard's base, units replayed and offset reached. */
  shards?: Array<{ shard: number; backupId: string; units: number; offset: number }>;
}

/** Restores `target` to the end of second `atSec` of `source`'s stream. */
export async function restoreAt(catalog: Catalog, store: BlobStore, source: Instance, target: Instance, atSec: number, now: number, hooks: RestoreAtHooks): Promise<RestoreAtResult> {
  const config = await catalog.streamConfig(source.instanceId);
  if (!config) throw new PointInTimeError(`second-level backup was never switched on for ${source.instanceId}`);
  if (!target.redisUrl) throw new PointInTimeError(`${target.instanceId} has no Redis server registered`);
  const plans = await planInstancePointInTime(catalog, config, atSec, now, source.shardNum);
  if (plans.length === 1) {
    const plan = plans[0]!;
    const units = await unitsOfPlan(store, plan);
    await hooks.loadBase(plan.backup, target);
    const r = await replayUnits(parseEndpointUrl(target.redisUrl), units);
    return { ...r, backupId: plan.backup.backupId, offset: units.length ? units[units.length - 1]!.end : plan.base.offset };
  }
  // A cluster's second into one standalone server: shard 0's base replaces its data set (or is merged by
  // commands when it cannot be loaded as it is), every other shard's base is merged by commands; then each
  // shard's units up to the cut are replayed (shards own disjoint slots, so their order between shards is free).
  if (target.shardNum > 1 || isClusterType(target.instanceType)) {
    throw new PointInTimeError(`${source.instanceId} is a cluster: a second of it restores into a standalone target (all shards' keys in one server); ${target.instanceId} is a cluster`);
  }
  const unitsOf = await Promise.all(plans.map((p) => unitsOfPlan(store, p)));
  for (const [i, p] of plans.entries()) await hooks.loadBase(p.backup, target, { merge: i > 0 });
  const ep = parseEndpointUrl(target.redisUrl);
  const total: ReplayResult = { units: 0, commands: 0, errors: 0, ms: 0 };
  const shards: NonNullable<RestoreAtResult["shards"]> = [];
  for (const [i, p] of plans.entries()) {
    const units = unitsOf[i]!;
    const r = await replayUnits(ep, units);
    total.units += r.units;
    total.commands += r.commands;
    total.errors += r.errors;
    total.ms += r.ms;
    if (r.firstError && !total.firstError) total.firstError = `shard ${i}: ${r.firstError}`;
    shards.push({ shard: p.base.shard, backupId: p.backup.backupId, units: r.units, offset: units.length ? units.at(-1)!.end : p.base.offset });
  }
  return { ...total, backupId: shards[0]!.backupId, offset: shards[0]!.offset, shards };
}
