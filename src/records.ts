// Records the Redis layer produces and the catalogue keeps, defined here so that neither imports the other:
// which node of a shard a backup snapshots (the instance's BackupSource, chosen by src/redis/capture/source.ts)
// and where each shard's snapshot came from; a committed segment of a second-level backup's stream
// (written by src/redis/stream/segments.ts, a row of the catalogue's stream_segments).

/** Which node of a shard a backup's snapshot is taken from (src/redis/capture/source.ts says how it is chosen). */
export type BackupSource = "master" | "replica" | "prefer-replica";
export const BACKUP_SOURCES: readonly BackupSource[] = ["master", "replica", "prefer-replica"];

/** Where one shard's snapshot came from (recorded with the backup). */
export interface SnapshotSource {
  shard: number;
  role: "master" | "replica";
  /** host:port of the node the snapshot was taken from. */
  node: string;
  /** The node's replication offset when the snapshot was asked for (master_repl_offset / slave_repl_offset). */
  offset?: number;
}

/** A committed segment of a stream: the offsets and times it accounts for, and its blob (if it holds units). */
export interface SegmentMeta {
  replid: string;
  /** Offset before the first unit (the previous segment's end). */
  startOffset: number;
  /** Offset after the last unit: the durable offset once committed. */
  endOffset: number;
  startDb: number;
  endDb: number;
  /** The time range this segment accounts for: from the previous commit (or the session's start) to this one. */
  fromMs: number;
  toMs: number;
  /** (offset, master time) pairs taken during that range. */
  samples: Array<[number, number]>;
  /** The blob; absent when only the offset or time moved (keep-alives, an idle master). */
  key?: string;
  units: number;
  /** Plain bytes and their SHA-256. */
  bytes: number;
  sha256?: string;
  /** Units that moved a key into this master from another (RESTORE-ASKING: a cluster's slot migration). */
  keyMoves?: number;
}
