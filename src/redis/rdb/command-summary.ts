// What a restore by commands is asked (CommandRestoreOptions), what the target can do (TargetCapabilities, read by
// restore/target.ts) and what it reports (RestoreSummary): shared by the RDB-to-commands visitor and the reply
// book-keeping (here, in rdb/), the restore driver (restore/commands.ts) and the RESP export (export.ts).
import type { SlotRange } from "../client/cluster";
import type { RedisEndpoint } from "../client/resp";
import type { ValueKind } from "./constants";

/** What the target can do, so the visitor writes each key the way it accepts (restore/target.ts probeTarget). */
export interface TargetCapabilities {
  server: "redis" | "valkey";
  version: string;
  /** Highest RDB version the target loads (DUMP payload version). */
  rdbVersion: number;
  cluster: boolean;
  /** The RESTORE command is allowed (not renamed, not denied by ACL). */
  restore: boolean;
  /** RESTORE ... ABSTTL / IDLETIME / FREQ (5.0+). */
  restoreAbsTtl: boolean;
  /** SET ... PXAT (6.2+). */
  setPxat: boolean;
  /** Multi-field HSET (4.0+). */
  hsetMulti: boolean;
  streams: boolean;
  /** XSETID ENTRIESADDED/MAXDELETEDID and XGROUP CREATE ENTRIESREAD (7.0+). */
  streamMeta: boolean;
  /** XGROUP CREATECONSUMER (6.2+). */
  createConsumer: boolean;
  /** HPEXPIREAT (hash field TTLs, Redis 7.4+). */
  hashFieldTtl: boolean;
  /** FUNCTION LOAD (7.0+). */
  functions: boolean;
}

export class CommandRestoreError extends Error {
  override name = "CommandRestoreError";
  constructor(message: string, readonly summary?: RestoreSummary, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface CommandRestoreOptions {
  /** Target: a standalone server or any node of a cluster (detected by INFO cluster). */
  target: RedisEndpoint;
  /** "auto" (default): RESTORE when possible, else commands. "commands": never RESTORE. */
  mode?: "auto" | "commands";
  /** Replace existing keys (default true); false keeps them and counts them as skipped. */
  replace?: boolean;
  /** Only keys of these databases. */
  dbs?: number[];
  /** Only keys matching this glob (Redis MATCH syntax: * ? [abc] [^a] [a-z] \x), matched on the raw bytes. */
  match?: string;
  /** Only keys of these types. */
  types?: ValueKind[];
  /** Write every key into this db instead of its own (a cluster has db 0 only). */
  targetDb?: number;
  /** Load the RDB's function libraries (default true). */
  functions?: boolean;
  /** Restore hashes with field TTLs into targets without HFE by dropping the field TTLs (reported). */
  dropFieldTtls?: boolean;
  /**
   * Restore Redis 8.6 streams with XADD IDMP state where it cannot be kept (a target before 8.6, Valkey, or
   * by commands) without that state (reported); by default such a stream fails with the reason.
   */
  dropStreamIdmp?: boolean;
  /** Bytes of commands sent without replies before the reader pauses. Default 16 MiB. */
  maxInFlightBytes?: number;
  /** Values whose DUMP payload would exceed this go by commands. Default 32 MiB. */
  maxPayloadBytes?: number;
  /** Elements per RPUSH/SADD/ZADD/HSET command at most (and about 64 KiB). Default 512. */
  batchElements?: number;
  /** No reply for this long while replies are outstanding fails the restore. Default 60000. */
  timeoutMs?: number;
  /** For a cluster target: use this slot map instead of asking (tests: a stale map exercises MOVED). */
  slotMap?: SlotRange[];
  /**
   * A cluster target's nodes (the slot map, a refreshed one, every MOVED/ASK address) must be on the target's
   * own host or one of these (--cluster-hosts: names, addresses, CIDR ranges, `*`); default none besides it.
   */
  allowedHosts?: readonly string[];
  onProgress?(summary: RestoreSummary): void;
  signal?: AbortSignal;
}

export interface KeyFailure {
  db: number;
  key: string;
  error: string;
}

export interface RestoreSummary {
  /** Keys written. */
  keys: number;
  /** Existing keys kept (replace: false). */
  skipped: number;
  /** Keys not selected by the db/match/type filters. */
  filtered: number;
  /** Keys whose TTL had passed: not written. */
  expired: number;
  failed: number;
  /** The first 100 failures. */
  failures: KeyFailure[];
  byRestore: number;
  byCommands: number;
  /** Hash field TTLs dropped (dropFieldTtls). */
  droppedFieldTtls: number;
  /** Keys whose field TTLs were dropped (dropFieldTtls). */
  droppedFieldTtlKeys: number;
  /** Keys failed for what the target cannot hold and an option would have dropped (counted in `failed` too). */
  refusedDroppable: { fieldTtls: number; streamIdmp: number };
  /** Streams whose IDMP state was dropped (dropStreamIdmp). */
  droppedStreamIdmp: number;
  /** Function libraries (Redis 7.0+): loaded, kept because a library of that name exists (replace: false), failed. */
  functions: { loaded: number; kept: number; failed: number };
  /** RDB bytes read. */
  bytesRead: number;
  /** Command bytes sent. */
  bytesSent: number;
  ms: number;
  target: TargetCapabilities;
  /** Cluster only: redirections followed. */
  redirections?: { moved: number; ask: number; mapRefreshes: number };
}

export function emptySummary(target: TargetCapabilities): RestoreSummary {
  return { keys: 0, skipped: 0, filtered: 0, expired: 0, failed: 0, failures: [], byRestore: 0, byCommands: 0, droppedFieldTtls: 0, droppedFieldTtlKeys: 0, droppedStreamIdmp: 0, refusedDroppable: { fieldTtls: 0, streamIdmp: 0 }, functions: { loaded: 0, kept: 0, failed: 0 }, bytesRead: 0, bytesSent: 0, ms: 0, target };
}

/** What a restore dropped because it was asked to (the task message and the CLI report it), or undefined. */
export function describeDrops(s: Pick<RestoreSummary, "droppedFieldTtls" | "droppedFieldTtlKeys" | "droppedStreamIdmp">): string | undefined {
  const parts: string[] = [];
  if (s.droppedFieldTtls > 0) parts.push(`${s.droppedFieldTtls} hash field TTL(s) on ${s.droppedFieldTtlKeys} key(s) (--drop-field-ttls: those fields never expire now)`);
  if (s.droppedStreamIdmp > 0) parts.push(`the XADD IDMP state of ${s.droppedStreamIdmp} stream(s) (--drop-stream-idmp: their deduplication starts afresh)`);
  return parts.length ? `dropped as asked: ${parts.join(", ")}` : undefined;
}

/** For keys refused for what only a drop option would let through: which option restores them, or undefined. */
export function dropAdvice(s: Pick<RestoreSummary, "refusedDroppable">): string | undefined {
  const parts: string[] = [];
  const r = s.refusedDroppable;
  if (r.fieldTtls > 0) parts.push(`${r.fieldTtls} key(s) have hash field TTLs the target cannot hold (--drop-field-ttls restores their fields without expiry)`);
  if (r.streamIdmp > 0) parts.push(`${r.streamIdmp} stream(s) have XADD IDMP state the target cannot hold (--drop-stream-idmp restores them without it)`);
  if (!parts.length) return undefined;
  const flags = [r.fieldTtls > 0 ? "--drop-field-ttls" : "", r.streamIdmp > 0 ? "--drop-stream-idmp" : ""].filter(Boolean).join(" ");
  return `${parts.join("; ")}: run \`crs-backup restore ${flags}\` to restore them anyway (RestoreInstance has no such parameter)`;
}

/** The summary's notes for a task message: what was dropped as asked, and which option restores refused keys. */
export function summaryNotes(s: RestoreSummary): string {
  return [describeDrops(s), dropAdvice(s)].filter((x) => x !== undefined).map((x) => `; ${x}`).join("");
}
