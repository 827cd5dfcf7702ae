// Retention of second-level backup streams (issue 17 item 1): every second of the last `retention_days`
// (stream_config, default 7) stays restorable; storage older than that is reclaimed.
//
// - The anchor is the newest base taken at or before the retention horizon (now - retention): a restore to the
//   oldest second kept starts from it. Bases older than the anchor are retired as backups (Status -1 through the
//   ordinary retirement, BackupJobs.retire: a claimed task removes the file) and their stream_bases rows
//   dropped. Kept bases get an ExpireTime no earlier than one day past this pass (the ordinary expiry in
//   jobs/scheduler.ts must not take a base a second in retention still needs; while the stream is on, every pass
//   moves it on; switched off, they expire a day later at the earliest, like backups).
// - Segments before the anchor's segment (in stream order) are unreachable from every kept base: deleted. Row
//   first, blob second: a crash between leaves an unlisted blob (never read) and never a listed segment without
//   its blob. Unlisted blobs under the stream's prefix older than the anchor's segment are swept on each pass.
// - No base at or before the horizon: nothing is reclaimed (the oldest base is still needed).
// Run by the scheduler's pass (every node; each step is idempotent: a second node finds the work done).
import type { Catalog } from "../catalog/catalog";
import type { StreamConfig } from "../catalog/types";
import type { Logger } from "../log";
import type { BlobStore } from "../storage/blob-store";
import { BackupJobs, DAY_MS } from "./backups";
import { baseSegment } from "./point-in-time";

export interface StreamRetentionResult {
  instanceId: string;
  basesRetired: string[];
  segmentsDeleted: number;
  bytesReclaimed: number;
  blobsSwept: number;
}

export interface StreamRetentionOptions {
  catalog: Catalog;
  store: BlobStore;
  backups: Pick<BackupJobs, "retire">;
  logger: Logger;
}

/** The start offset encoded in a segment key (`.../<start, 16 digits>-<end>.seg.gz`), or undefined. */
function keyStart(key: string): number | undefined {
  const m = /\/(\d{16})-(\d+)\.seg\.gz$/.exec(key);
  return m ? Number(m[1]) : undefined;
}

/** One instance's pass, shard by shard (a cluster: each shard's own anchor). `retentionMs` overrides the config's days (tests). */
export async function reclaimStream(o: StreamRetentionOptions, config: StreamConfig, now: number, retentionMs = config.retentionDays * DAY_MS): Promise<StreamRetentionResult> {
  const id = config.instanceId;
  const result: StreamRetentionResult = { instanceId: id, basesRetired: [], segmentsDeleted: 0, bytesReclaimed: 0, blobsSwept: 0 };
  const shards = [...new Set((await o.catalog.streamBases(id)).map((b) => b.shard))].sort((a, b) => a - b);
  for (const shard of shards.length ? shards : [0]) await reclaimShard(o, config, shard, now, retentionMs, result);
  if (result.basesRetired.length || result.segmentsDeleted || result.blobsSwept) o.logger.info({ ...result }, "stream retention");
  return result;
}

async function reclaimShard(o: StreamRetentionOptions, config: StreamConfig, shard: number, now: number, retentionMs: number, result: StreamRetentionResult): Promise<void> {
  const { catalog, store } = o;
  const id = config.instanceId;
  const horizon = now - retentionMs;
  const bases = [];
  for (const b of await catalog.streamBases(id, shard)) {
    const backup = await catalog.backup(b.backupId);
    if (backup && (backup.status === 2 || backup.status === 4)) bases.push({ base: b, backup });
    else if (!backup || backup.status < 0) await catalog.deleteStreamBase(b.backupId); // retired elsewhere: its row goes too
  }
  const all = await catalog.streamSegments(id, shard);
  // The anchor: the newest usable base at or before the horizon (one whose stream is stored).
  let anchorAt = -1;
  for (let i = bases.length - 1; i >= 0; i--) {
    if (bases[i]!.base.takenAt <= horizon && baseSegment(all, bases[i]!.base) >= 0) {
      anchorAt = i;
      break;
    }
  }
  const instance = await catalog.instance(id);
  // Kept bases must outlive the ordinary expiry while a second in retention may need them.
  if (config.mode === "SecondLevelBackup") {
    for (const { backup } of bases.slice(Math.max(0, anchorAt))) {
      if ((backup.expireTime ?? 0) < now + DAY_MS) await catalog.updateBackup(backup.backupId, { expireTime: now + DAY_MS });
    }
  }
  if (anchorAt < 0) return;
  const anchor = bases[anchorAt]!.base;
  for (const { base, backup } of bases.slice(0, anchorAt)) {
    if (backup.locked) continue; // held by an export or a restore: retired on a later pass
    try {
      if (await o.backups.retire(backup, -1, instance?.accountId ?? "")) result.basesRetired.push(base.backupId);
      await catalog.deleteStreamBase(base.backupId);
    } catch (err) {
      o.logger.info({ instanceId: id, backupId: base.backupId, reason: (err as Error).message }, "retention of a stream base deferred");
    }
  }
  const first = baseSegment(all, anchor);
  const keep = all[first]!;
  for (const seg of all.slice(0, first)) {
    await catalog.deleteStreamSegment(seg.segmentId);
    if (seg.key) await store.remove(seg.key).catch(() => undefined);
    result.segmentsDeleted++;
    result.bytesReclaimed += seg.bytes;
  }
  // Sweep: blobs no row lists whose offsets lie before the kept stream (left by a crash between row and blob).
  // A blob being committed right now (its row not written yet) starts at or after its lineage's base, which is
  // kept: below every kept base and segment nothing can be in flight.
  const listed = new Set(all.slice(first).map((s) => s.key).filter(Boolean));
  const floor = Math.min(keep.startOffset, ...bases.slice(anchorAt).map((b) => b.base.offset));
  for await (const blob of store.list(`streams/${id}/shard-${shard}/`)) {
    const start = keyStart(blob.key);
    if (listed.has(blob.key) || start === undefined || start >= floor) continue;
    await store.remove(blob.key).catch(() => undefined);
    result.blobsSwept++;
  }
  o.logger.debug({ instanceId: id, shard, anchor: anchor.backupId }, "stream retention anchor");
}

/** Every stream's pass (the scheduler calls it before the ordinary expiry). */
export async function reclaimStreams(o: StreamRetentionOptions, now: number): Promise<StreamRetentionResult[]> {
  const out: StreamRetentionResult[] = [];
  for (const c of await o.catalog.streamConfigs()) {
    try {
      out.push(await reclaimStream(o, c, now));
    } catch (err) {
      o.logger.warn({ instanceId: c.instanceId, err: (err as Error).message }, "stream retention failed; retried on the next pass");
    }
  }
  return out;
}
