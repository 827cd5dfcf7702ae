// Point-in-time recovery from the catalogue's stream records: which base and which stored units a restore to a
// second needs (planPointInTime), the seconds with no backup data (missingTimestamps), and the restore itself
// into a registered instance (restoreAt: the base through the existing restore job, then the units replayed up
// to the cut).
import type { Catalog } from "../catalog/catalog";
import type { Backup, Instance, StreamBase, StreamConfig, StreamSegment } from "../catalog/types";
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

/** The covered time ranges and the seconds without data between `since` and `now`. */
export async function missingTimestamps(catalog: Catalog, config: StreamConfig, now: number): Promise<Array<{ start: number; end: number }>> {
  if (config.since === undefined) return [];
  const from = Math.max(config.since, now - WINDOW_MS);
  const segments = await catalog.streamSegments(config.instanceId, 0, from, now);
  // Seconds before the oldest kept base have no backup data (retention reclaimed it: jobs/stream-retention.ts).
  const oldest = (await catalog.streamBases(config.instanceId, 0))[0]?.takenAt ?? 0;
  const ranges: Coverage[] = segments.filter((s) => s.toMs > oldest).map((s) => ({ fromMs: Math.max(s.fromMs, oldest), toMs: s.toMs }));
  return missingRanges(ranges, from, now);
}

/** The base and segments a restore to the end of second `atSec` (Unix seconds) reads. */
export async function planPointInTime(catalog: Catalog, config: StreamConfig, atSec: number, now: number): Promise<PointInTimePlan> {
  const cutoffMs = (atSec + 1) * 1000;
  if (config.mode !== "SecondLevelBackup" || config.since === undefined) throw new PointInTimeError(`second-level backup is not on for ${config.instanceId}`);
  if (cutoffMs <= config.since) throw new PointInTimeError(`second-level backup of ${config.instanceId} started at ${Math.floor(config.since / 1000)}; ${atSec} is before it`);
  if (atSec * 1000 < now - WINDOW_MS) throw new PointInTimeError(`${atSec} is more than 7 days ago`);
  const gaps = await missingTimestamps(catalog, config, now);
  const gap = gaps.find((g) => atSec >= g.start && atSec <= g.end);
  if (gap) throw new PointInTimeError(`there is no backup data for ${atSec}: the stream has a gap from ${gap.start} to ${gap.end}`);
  const bases = (await catalog.streamBases(config.instanceId, 0)).filter((b) => b.takenAt < cutoffMs).reverse();
  const all = await catalog.streamSegments(config.instanceId, 0);
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
  /** Loads the base into the target (the existing restore task); resolves when it succeeded. */
  loadBase(backup: Backup, target: Instance): Promise<void>;
}

export interface RestoreAtResult extends ReplayResult {
  backupId: string;
  /** The offset of the last unit replayed (the base's offset when none). */
  offset: number;
}

/** Restores `target` to the end of second `atSec` of `source`'s stream. */
export async function restoreAt(catalog: Catalog, store: BlobStore, source: Instance, target: Instance, atSec: number, now: number, hooks: RestoreAtHooks): Promise<RestoreAtResult> {
  const config = await catalog.streamConfig(source.instanceId);
  if (!config) throw new PointInTimeError(`second-level backup was never switched on for ${source.instanceId}`);
  if (!target.redisUrl) throw new PointInTimeError(`${target.instanceId} has no Redis server registered`);
  const plan = await planPointInTime(catalog, config, atSec, now);
  const units = await unitsOfPlan(store, plan);
  await hooks.loadBase(plan.backup, target);
  const r = await replayUnits(parseEndpointUrl(target.redisUrl), units);
  return { ...r, backupId: plan.backup.backupId, offset: units.length ? units[units.length - 1]!.end : plan.base.offset };
}
