// What a restore is asked to do (task.params): the path (auto, replication, commands) and the key selection,
// read back from a task and checked against the backup before anything is queued.
import type { ValueKind } from "../rdb/constants";

/** The restore asked for cannot be done that way (e.g. replication of a cluster backup): nothing was queued. */
export class RestoreRequestError extends Error {
  override name = "RestoreRequestError";
}

export type RestoreMode = "auto" | "replication" | "commands";
export const RESTORE_MODES: readonly RestoreMode[] = ["auto", "replication", "commands"];
export const VALUE_KINDS: readonly ValueKind[] = ["string", "list", "set", "zset", "hash", "stream", "module"];

/** How to restore (task.params). RestoreInstance has none of these: auto, every key, existing keys replaced. */
export interface RestoreRequest {
  mode: RestoreMode;
  /** Only keys of these databases. */
  dbs?: number[];
  /** Only keys matching this glob (Redis MATCH syntax). */
  match?: string;
  /** Only keys of these types. */
  types?: ValueKind[];
  /** Existing keys are replaced (default); false keeps them and counts them as skipped. */
  replace: boolean;
  /**
   * Hash field TTLs a target cannot hold (before Redis 7.4 / Valkey 9) are dropped and counted, instead of
   * refusing those keys (`crs-backup restore --drop-field-ttls`; RestoreInstance has no such parameter).
   */
  dropFieldTtls?: boolean;
  /** Redis 8.6 XADD IDMP state a target cannot hold is dropped and counted (`--drop-stream-idmp`). */
  dropStreamIdmp?: boolean;
}

export const DEFAULT_RESTORE: RestoreRequest = { mode: "auto", replace: true };

/** Why the request takes only some keys, or keeps existing ones (what only the command path does); undefined if neither. */
export function selective(r: RestoreRequest): string | undefined {
  if (r.dbs || r.match !== undefined || r.types) return "keys are selected (--db/--match/--type)";
  if (!r.replace) return "existing keys are kept (--no-replace)";
  return undefined;
}

/** Reads a request back from task.params, tolerating older tasks without one. */
export function restoreRequestOf(params: Record<string, unknown> | undefined): RestoreRequest {
  const p = params ?? {};
  const mode = RESTORE_MODES.includes(p.mode as RestoreMode) ? (p.mode as RestoreMode) : "auto";
  const dbs = Array.isArray(p.dbs) ? p.dbs.map(Number) : undefined;
  const types = Array.isArray(p.types) ? (p.types as ValueKind[]) : undefined;
  return {
    mode, dbs, match: typeof p.match === "string" ? p.match : undefined, types, replace: p.replace !== false,
    ...(p.dropFieldTtls === true ? { dropFieldTtls: true } : {}), ...(p.dropStreamIdmp === true ? { dropStreamIdmp: true } : {}),
  };
}

/** The request as task.params store it. */
export function restoreRequestParams(r: RestoreRequest): Record<string, unknown> {
  return { mode: r.mode, replace: r.replace, ...(r.dbs ? { dbs: r.dbs } : {}), ...(r.match !== undefined ? { match: r.match } : {}), ...(r.types ? { types: r.types } : {}),
    ...(r.dropFieldTtls ? { dropFieldTtls: true } : {}), ...(r.dropStreamIdmp ? { dropStreamIdmp: true } : {}) };
}

/** Checks a request against the backup (its id and shard count) before anything is queued. */
export function checkRestoreRequest(r: RestoreRequest, backup: { backupId: string; shards: number }): void {
  if (!RESTORE_MODES.includes(r.mode)) throw new RestoreRequestError(`mode must be one of ${RESTORE_MODES.join(", ")}, got ${JSON.stringify(r.mode)}`);
  if (r.dbs && (r.dbs.length === 0 || r.dbs.some((d) => !Number.isInteger(d) || d < 0 || d > 65535))) throw new RestoreRequestError(`databases must be integers 0..65535, got ${JSON.stringify(r.dbs)}`);
  if (r.types && (r.types.length === 0 || r.types.some((t) => !VALUE_KINDS.includes(t)))) throw new RestoreRequestError(`types must be among ${VALUE_KINDS.join(", ")}, got ${JSON.stringify(r.types)}`);
  if (r.match !== undefined && (r.match.length === 0 || r.match.length > 1024)) throw new RestoreRequestError("the match pattern must be 1..1024 characters");
  if (r.mode === "replication") {
    if (backup.shards > 1) throw new RestoreRequestError(`backup ${backup.backupId} is a cluster backup (${backup.shards} shards): it can only be restored by commands (--mode auto or commands)`);
    const why = selective(r);
    if (why) throw new RestoreRequestError(`replication replaces the whole data set, but ${why}: use --mode auto or commands`);
  }
}
