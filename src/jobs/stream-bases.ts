// Scheduled bases of a second-level backup stream (issue 17 item 1). A restore to a second loads the newest base
// before it and replays the stream from that base's offset, so a stream needs fresh bases: without them a restore
// 6 days into a stream would replay 6 days of writes, and retention could never let the first base go.
//
// How: an ordinary full resync through a SECOND replica connection (`PSYNC ? -1` on its own socket), while the
// stream's own link goes on untouched (no gap, no reconnect). The master answers `+FULLRESYNC <replid> <offset>`
// and forks a BGSAVE exactly as for any backup: the cost on the master is one fork and the copy-on-write pages
// of the keys written while the snapshot streams, plus the RDB sent once more over the network — the same as an
// automatic backup, which it also is (listed with BackupType "1", remark "second-level backup base"). The RDB is
// the data set at that offset; when the replid is the stream's, the base is recorded at (replid, offset) and a
// restore starts from it, replaying only the units after the offset (jobs/point-in-time.ts baseSegment). A
// replid that differs (a failover in between) discards the file: the stream will continue on the new replid and
// the next pass tries again.
//
// When: every `--pitr-base-every` seconds if set; otherwise once in each of the instance's automatic-backup
// windows (AutoBackupPeriod on the chosen weekdays, as jobs/scheduler.ts opens them), and in any case once the
// newest base is a day old, so a restore never replays more than a day of writes. Only the node holding the
// stream's lease takes them (its session), one at a time per instance. After each, the proof run
// (jobs/stream-proof.ts) replays the previous base and the stream up to the new base's offset and compares.
import crypto from "node:crypto";
import type { Instance, StoredFile, StreamBase, StreamProof } from "../catalog/types";
import type { LocalTime } from "../protocol/time";
import { ReplicaLink } from "../redis/stream/replica";
import type { BlobStore, BlobWriter } from "../storage/blob-store";
import { blobKey, DAY_MS } from "./backups";
import { openWindow } from "./scheduler";
import type { Catalog } from "../catalog/catalog";
import type { Clock } from "../config";
import type { Logger } from "../log";
import type { RedisEndpoint } from "../redis/client/resp";
import { BackupDigests, digestStoredFile } from "./digests";
import { proveBase } from "./stream-proof";

export interface BaseScheduleOptions {
  /** A base every this many ms (the `--pitr-base-every` flag); absent = per backup window, at least daily. */
  everyMs?: number;
  /** The server's time zone (windows are in it). */
  time?: LocalTime;
  /** A cluster's shards all re-base this long after keys last moved between its masters (default 10 s). */
  afterKeyMovesMs?: number;
}

/** Whether a new base is due now, given the newest one. The first base is the link's own full resync. */
export function baseDue(instance: Pick<Instance, "autoBackupWeekDays" | "autoBackupPeriod">, newest: Pick<StreamBase, "takenAt"> | undefined, now: number, o: BaseScheduleOptions): boolean {
  if (!newest) return false;
  if (o.everyMs !== undefined) return now - newest.takenAt >= o.everyMs;
  if (now - newest.takenAt >= DAY_MS) return true;
  const window = o.time ? openWindow(instance, now, o.time) : undefined;
  return window !== undefined && newest.takenAt < window;
}

export interface ScheduledBase {
  base: StreamBase;
  proof?: StreamProof;
}

/**
 * Takes one base through a second connection and records it when its replid is the stream's; then waits for
 * the stream to be durable past its offset and runs the proof against the previous base. Undefined when the
 * base was discarded (replid changed).
 */
/** What taking a base needs of the stream job's options (streams.ts's StreamJobsOptions has all of it). */
export interface BaseTakerOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  logger: Logger;
  digests?: BackupDigests;
  proofRedisServer?: string;
  scratchDir?: string;
}

/** The shard's stream a base is taken for (streams.ts's StreamSession). */
export interface BaseSession {
  readonly instanceRecord: Instance;
  readonly shard: number;
  readonly endpoint: RedisEndpoint;
  readonly streamReplid: string | undefined;
  readonly durableOffset: number | undefined;
  recordBase(backupId: string, replid: string, offset: number, at: number, bytes: number, committed: { bytes: number; sha256: string; storedBytes: number }): Promise<StoredFile[]>;
}

export async function takeScheduledBase(o: BaseTakerOptions, session: BaseSession): Promise<ScheduledBase | undefined> {
  const { store, clock, catalog } = o;
  const instance = session.instanceRecord;
  const previous = (await catalog.streamBases(instance.instanceId, session.shard)).at(-1);
  let taken: { backupId: string; writer: BlobWriter; replid: string; offset: number; at: number } | undefined;
  let recorded: { files: StoredFile[] } | undefined;
  let failure: Error | undefined;
  const link = await ReplicaLink.open(session.endpoint, undefined, {
    onFullResync: (replid, offset) => {
      const backupId = crypto.randomUUID();
      const writer = store.createWriter(blobKey(backupId, 0), { compress: true });
      taken = { backupId, writer, replid, offset, at: clock.now() };
      return writer;
    },
    baseDone: async (bytes) => {
      const t = taken!;
      const committed = await t.writer.commit();
      if (t.replid !== session.streamReplid) {
        await store.remove(blobKey(t.backupId, 0)).catch(() => undefined);
        failure = new Error(`the master's replication id is now ${t.replid}, the stream's ${session.streamReplid ?? "(none)"}: base discarded`);
        return;
      }
      recorded = { files: await session.recordBase(t.backupId, t.replid, t.offset, t.at, bytes, committed) };
    },
    onContinue: () => undefined,
    onUnits: () => undefined, // the stream's own link stores them
    onEnd: () => undefined,
  }, { now: () => clock.now() });
  link.close(); // resolved once the base was handled: the second connection has served its purpose
  if (failure || !recorded || !taken) {
    o.logger.info({ instanceId: instance.instanceId, reason: failure?.message }, "scheduled stream base not recorded");
    return undefined;
  }
  const base: StreamBase = { backupId: taken.backupId, instanceId: instance.instanceId, shard: session.shard, replid: taken.replid, offset: taken.offset, takenAt: taken.at };
  o.logger.info({ instanceId: instance.instanceId, backupId: base.backupId, offset: base.offset }, "scheduled stream base taken");
  // Its digest as for any backup; the proof needs it, so without --capture-digest it is computed here.
  const files = o.digests ? await o.digests.schedule(base.backupId, recorded.files) : recorded.files;
  let digest = files[0]?.digest;
  if (!digest && !o.digests) digest = (await digestStoredFile(store, files[0]!)).digest;
  if (!previous) return { base };
  const proof = await proveBase({ catalog, store, logger: o.logger, redisServer: o.proofRedisServer ?? "redis-server", scratchDir: o.scratchDir, clock },
    instance.instanceId, previous, base, digest, () => session.durableOffset ?? -1);
  await catalog.setStreamBaseProof(base.backupId, proof);
  o.logger[proof.ok ? "info" : "warn"]({ instanceId: instance.instanceId, backupId: base.backupId, previous: previous.backupId, ok: proof.ok, detail: proof.detail }, "stream proof");
  return { base, proof };
}
