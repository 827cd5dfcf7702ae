// The catalogue's second-level backup tables (migration 6): stream settings and leases, segments, bases. The SQL
// is the same on both engines, written once here with `?` placeholders; each engine runs it through its own
// executor (the shared SqlOps extends StreamTables, so both engines have them), inside or outside a transaction alike.
import type { SqlExecutor } from "./dialect";
import type { Row } from "./rows";
import type { BackupMode, StreamBase, StreamConfig, StreamProof, StreamSegment } from "./types";

/** The stream methods of CatalogTx (catalog.ts documents each). */
export interface StreamCatalog {
  streamConfig(instanceId: string): Promise<StreamConfig | undefined>;
  streamConfigs(mode?: BackupMode): Promise<StreamConfig[]>;
  setBackupMode(instanceId: string, mode: BackupMode, now: number): Promise<StreamConfig>;
  setStreamStatus(instanceId: string, nodeId: string, status: string): Promise<void>;
  /**
   * Starts a cluster's stream afresh (its number of masters changed): `since` and `epoch` become `now`, if this node
   * holds the lease and the mode is still on. False otherwise.
   */
  restartStream(instanceId: string, nodeId: string, now: number): Promise<boolean>;
  claimStream(instanceId: string, nodeId: string, leaseUntil: number, now: number): Promise<boolean>;
  releaseStream(instanceId: string, nodeId: string): Promise<void>;
  insertStreamSegment(s: Omit<StreamSegment, "segmentId">): Promise<number>;
  extendStreamSegment(segmentId: number, fields: Pick<StreamSegment, "endOffset" | "endDb" | "toMs" | "samples">): Promise<void>;
  streamSegments(instanceId: string, shard: number, fromMs?: number, toMs?: number): Promise<StreamSegment[]>;
  lastStreamSegment(instanceId: string, shard: number): Promise<StreamSegment | undefined>;
  /** The end (to_ms) of the newest segment of any shard holding keys moved between masters; undefined: none. */
  lastKeyMove(instanceId: string): Promise<number | undefined>;
  insertStreamBase(b: StreamBase): Promise<void>;
  streamBases(instanceId: string, shard?: number): Promise<StreamBase[]>;
  // --- scheduled bases, retention, the proof (h17b) ---
  setStreamBaseProof(backupId: string, proof: StreamProof): Promise<void>;
  /** Unlists one segment (retention: the row goes first, its blob after; an unlisted blob is never read). */
  deleteStreamSegment(segmentId: number): Promise<void>;
  deleteStreamBase(backupId: string): Promise<void>;
  setStreamRetention(instanceId: string, days: number): Promise<void>;
  /** Segment count, stored bytes and covered time of one shard's stream (one aggregate query). */
  streamStats(instanceId: string, shard: number): Promise<{ segments: number; bytes: number; fromMs?: number; toMs?: number }>;
}

const num = (v: unknown): number => Number(v);
const opt = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

function toConfig(r: Row): StreamConfig {
  const c: StreamConfig = { instanceId: r.instance_id as string, mode: r.mode as BackupMode, retentionDays: num(r.retention_days), status: r.status as string };
  const since = opt(r.since);
  if (since !== undefined) c.since = since;
  const epoch = opt(r.epoch);
  if (epoch !== undefined) c.epoch = epoch;
  if (r.owner !== null && r.owner !== undefined) c.owner = r.owner as string;
  const lease = opt(r.lease_until);
  if (lease !== undefined) c.leaseUntil = lease;
  return c;
}

function toSegment(r: Row): StreamSegment {
  const s: StreamSegment = {
    segmentId: num(r.segment_id), instanceId: r.instance_id as string, shard: num(r.shard), replid: r.replid as string,
    startOffset: num(r.start_offset), endOffset: num(r.end_offset), startDb: num(r.start_db), endDb: num(r.end_db),
    fromMs: num(r.from_ms), toMs: num(r.to_ms), samples: JSON.parse(r.samples as string) as Array<[number, number]>,
    units: num(r.units), bytes: num(r.bytes), createdAt: num(r.created_at),
  };
  if (r.blob_key) s.key = r.blob_key as string;
  if (r.sha256) s.sha256 = r.sha256 as string;
  if (r.key_moves !== null && r.key_moves !== undefined && num(r.key_moves) > 0) s.keyMoves = num(r.key_moves);
  return s;
}

function toBase(r: Row): StreamBase {
  const b: StreamBase = { backupId: r.backup_id as string, instanceId: r.instance_id as string, shard: num(r.shard), replid: r.replid as string, offset: num(r.offset_at), takenAt: num(r.taken_at) };
  if (typeof r.proof === "string" && r.proof) b.proof = JSON.parse(r.proof) as StreamProof;
  return b;
}

const SEGMENT_COLUMNS = "segment_id, instance_id, shard, replid, start_offset, end_offset, start_db, end_db, from_ms, to_ms, samples, blob_key, units, bytes, sha256, created_at, key_moves";

export class StreamTables implements StreamCatalog {
  constructor(private readonly streamSql: SqlExecutor) {}

  async streamConfig(instanceId: string): Promise<StreamConfig | undefined> {
    const r = (await this.streamSql.all("SELECT * FROM stream_config WHERE instance_id = ?", [instanceId]))[0];
    return r ? toConfig(r) : undefined;
  }

  async streamConfigs(mode?: BackupMode): Promise<StreamConfig[]> {
    const rows = mode ? await this.streamSql.all("SELECT * FROM stream_config WHERE mode = ? ORDER BY instance_id", [mode]) : await this.streamSql.all("SELECT * FROM stream_config ORDER BY instance_id", []);
    return rows.map(toConfig);
  }

  /** Switching on sets `since` (kept while it stays on); switching off clears it and the lease. */
  async setBackupMode(instanceId: string, mode: BackupMode, now: number): Promise<StreamConfig> {
    await this.streamSql.run("INSERT INTO stream_config(instance_id, mode) VALUES (?, 'NormalLevelBackup') ON CONFLICT (instance_id) DO NOTHING", [instanceId]);
    if (mode === "SecondLevelBackup") {
      await this.streamSql.run("UPDATE stream_config SET mode = ?, since = coalesce(since, ?) WHERE instance_id = ?", [mode, now, instanceId]);
    } else {
      await this.streamSql.run("UPDATE stream_config SET mode = ?, since = NULL, owner = NULL, lease_until = NULL, status = '' WHERE instance_id = ?", [mode, instanceId]);
    }
    return (await this.streamConfig(instanceId))!;
  }

  async restartStream(instanceId: string, nodeId: string, now: number): Promise<boolean> {
    const rows = await this.streamSql.all("UPDATE stream_config SET since = ?, epoch = ? WHERE instance_id = ? AND owner = ? AND mode = 'SecondLevelBackup' RETURNING instance_id", [now, now, instanceId, nodeId]);
    return rows.length > 0;
  }

  async lastKeyMove(instanceId: string): Promise<number | undefined> {
    return opt((await this.streamSql.all("SELECT max(to_ms) AS at FROM stream_segments WHERE instance_id = ? AND key_moves > 0", [instanceId]))[0]?.at);
  }

  async setStreamStatus(instanceId: string, nodeId: string, status: string): Promise<void> {
    await this.streamSql.run("UPDATE stream_config SET status = ? WHERE instance_id = ? AND owner = ?", [status.slice(0, 1000), instanceId, nodeId]);
  }

  /** Takes or renews the stream's lease: only while second-level backup is on, and only if free, ours or lapsed. */
  async claimStream(instanceId: string, nodeId: string, leaseUntil: number, now: number): Promise<boolean> {
    return (await this.streamSql.run(`UPDATE stream_config SET owner = ?, lease_until = ? WHERE instance_id = ? AND mode = 'SecondLevelBackup'
      AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)`, [nodeId, leaseUntil, instanceId, nodeId, now])) === 1;
  }

  async releaseStream(instanceId: string, nodeId: string): Promise<void> {
    await this.streamSql.run("UPDATE stream_config SET owner = NULL, lease_until = NULL WHERE instance_id = ? AND owner = ?", [instanceId, nodeId]);
  }

  async insertStreamSegment(s: Omit<StreamSegment, "segmentId">): Promise<number> {
    const rows = await this.streamSql.all(`INSERT INTO stream_segments(instance_id, shard, replid, start_offset, end_offset, start_db, end_db, from_ms, to_ms, samples, blob_key, units, bytes, sha256, created_at, key_moves)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING segment_id`,
    [s.instanceId, s.shard, s.replid, s.startOffset, s.endOffset, s.startDb, s.endDb, s.fromMs, s.toMs, JSON.stringify(s.samples), s.key ?? null, s.units, s.bytes, s.sha256 ?? null, s.createdAt, s.keyMoves ?? null]);
    return num(rows[0]!.segment_id);
  }

  /** Moves an idle segment's end (no bytes were added: keep-alives, or nothing at all) and its samples. */
  async extendStreamSegment(segmentId: number, f: Pick<StreamSegment, "endOffset" | "endDb" | "toMs" | "samples">): Promise<void> {
    await this.streamSql.run("UPDATE stream_segments SET end_offset = ?, end_db = ?, to_ms = ?, samples = ? WHERE segment_id = ?", [f.endOffset, f.endDb, f.toMs, JSON.stringify(f.samples), segmentId]);
  }

  /** Segments of one shard in stream order; with a window, those whose time range meets it. */
  async streamSegments(instanceId: string, shard: number, fromMs?: number, toMs?: number): Promise<StreamSegment[]> {
    const rows = await this.streamSql.all(`SELECT ${SEGMENT_COLUMNS} FROM stream_segments WHERE instance_id = ? AND shard = ? AND to_ms >= ? AND from_ms <= ? ORDER BY segment_id`,
      [instanceId, shard, fromMs ?? 0, toMs ?? Number.MAX_SAFE_INTEGER]);
    return rows.map(toSegment);
  }

  async lastStreamSegment(instanceId: string, shard: number): Promise<StreamSegment | undefined> {
    const r = (await this.streamSql.all(`SELECT ${SEGMENT_COLUMNS} FROM stream_segments WHERE instance_id = ? AND shard = ? ORDER BY segment_id DESC LIMIT 1`, [instanceId, shard]))[0];
    return r ? toSegment(r) : undefined;
  }

  async insertStreamBase(b: StreamBase): Promise<void> {
    await this.streamSql.run("INSERT INTO stream_bases(backup_id, instance_id, shard, replid, offset_at, taken_at) VALUES (?, ?, ?, ?, ?, ?)", [b.backupId, b.instanceId, b.shard, b.replid, b.offset, b.takenAt]);
  }

  async streamBases(instanceId: string, shard?: number): Promise<StreamBase[]> {
    const rows = shard === undefined
      ? await this.streamSql.all("SELECT * FROM stream_bases WHERE instance_id = ? ORDER BY taken_at", [instanceId])
      : await this.streamSql.all("SELECT * FROM stream_bases WHERE instance_id = ? AND shard = ? ORDER BY taken_at", [instanceId, shard]);
    return rows.map(toBase);
  }

  async setStreamBaseProof(backupId: string, proof: StreamProof): Promise<void> {
    await this.streamSql.run("UPDATE stream_bases SET proof = ? WHERE backup_id = ?", [JSON.stringify(proof), backupId]);
  }

  async deleteStreamSegment(segmentId: number): Promise<void> {
    await this.streamSql.run("DELETE FROM stream_segments WHERE segment_id = ?", [segmentId]);
  }

  async deleteStreamBase(backupId: string): Promise<void> {
    await this.streamSql.run("DELETE FROM stream_bases WHERE backup_id = ?", [backupId]);
  }

  async setStreamRetention(instanceId: string, days: number): Promise<void> {
    await this.streamSql.run("INSERT INTO stream_config(instance_id, mode) VALUES (?, 'NormalLevelBackup') ON CONFLICT (instance_id) DO NOTHING", [instanceId]);
    await this.streamSql.run("UPDATE stream_config SET retention_days = ? WHERE instance_id = ?", [days, instanceId]);
  }

  async streamStats(instanceId: string, shard: number): Promise<{ segments: number; bytes: number; fromMs?: number; toMs?: number }> {
    const r = (await this.streamSql.all("SELECT count(*) AS n, coalesce(sum(bytes), 0) AS bytes, min(from_ms) AS from_ms, max(to_ms) AS to_ms FROM stream_segments WHERE instance_id = ? AND shard = ?", [instanceId, shard]))[0]!;
    const out: { segments: number; bytes: number; fromMs?: number; toMs?: number } = { segments: num(r.n), bytes: num(r.bytes) };
    const from = opt(r.from_ms);
    const to = opt(r.to_ms);
    if (from !== undefined) out.fromMs = from;
    if (to !== undefined) out.toMs = to;
    return out;
  }
}
