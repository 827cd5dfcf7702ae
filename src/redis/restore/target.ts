// Talking to the restore target as an ordinary client: connecting with error classification, reading INFO,
// knowing which RDB versions a given Redis can load, and probing what a restore by commands may use.
import { parseInfo, RedisEndpoint, RedisReplyError, RespConnection } from "../client/resp";
import type { TargetCapabilities } from "../rdb/command-summary";
import { RestoreError } from "./errors";
import { RDB_MAX_KNOWN_VERSION, rdbVersionOf, VALKEY_RDB_VERSION } from "../rdb/constants";

export { parseInfo };

/** INFO `section` of the server, parsed. */
export async function info(conn: RespConnection, section: string): Promise<Map<string, string>> {
  return parseInfo(await conn.command("INFO", section));
}

/** Total keys over all databases, from INFO keyspace (`db0:keys=3,expires=1,...`). */
export async function totalKeys(conn: RespConnection): Promise<number> {
  let n = 0;
  for (const [k, v] of await info(conn, "keyspace")) {
    const m = /^db\d+$/.test(k) ? /(?:^|,)keys=(\d+)/.exec(v) : null;
    if (m) n += Number(m[1]);
  }
  return n;
}

/**
 * Highest RDB format version a Redis release loads (RDB_VERSION in src/rdb.h of each release). A server
 * refusing a too-new RDB does so only after flushing its data, so we check before starting. Undefined means
 * "unknown/newer than this table": let the target decide.
 */
export function maxRdbVersion(redisVersion: string): number | undefined {
  // Valkey reports a Redis-compatible redis_version (7.2.x for Valkey 7 and 8), which loads what that Redis loads.
  return rdbVersionOf("redis", redisVersion);
}

/**
 * Why a target would refuse to load an RDB of this version (replication), or undefined when it loads it (or is
 * newer than this table: it decides). Redis loads versions up to its own and never a VALKEY file; Valkey 8
 * loads up to 11; Valkey 9 loads up to 11 and its own 80, and refuses 12..79 ("foreign": Redis 7.4+) in its
 * default strict rdb-version-check.
 */
export function rdbRefusal(state: Pick<TargetState, "version" | "valkeyVersion">, rdbVersion: number): string | undefined {
  const name = state.valkeyVersion ? `Valkey ${state.valkeyVersion}` : `Redis ${state.version}`;
  const own = state.valkeyVersion ? rdbVersionOf("valkey", state.valkeyVersion) : maxRdbVersion(state.version);
  if (own === undefined) return undefined;
  if (rdbVersion >= VALKEY_RDB_VERSION) {
    return own >= VALKEY_RDB_VERSION ? undefined : `the target (${name}) loads RDB versions up to ${own}, the backup is a Valkey 9 file (VALKEY${rdbVersion})`;
  }
  const max = own >= VALKEY_RDB_VERSION ? 11 : own;
  if (rdbVersion <= max) return undefined;
  return `the target (${name}) loads RDB versions up to ${max}${own >= VALKEY_RDB_VERSION ? ` and ${own}` : ""}, the backup is version ${rdbVersion}`;
}

function replyText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Maps an error from the first exchanges with the target to a RestoreError with a precise kind. */
export function classifyTargetError(err: unknown, ep: RedisEndpoint, doing: string): RestoreError {
  if (err instanceof RestoreError) return err;
  const where = `${ep.host}:${ep.port}`;
  if (err instanceof RedisReplyError) {
    const r = err.reply;
    if (/^(WRONGPASS|NOAUTH)\b/.test(r) || /^ERR (invalid password|invalid username-password|AUTH .*without any password configured|Client sent AUTH)/i.test(r)) {
      return new RestoreError("auth", `password rejected by target ${where}: ${r}`, { cause: err });
    }
    if (/^NOPERM\b/.test(r) || /^ERR unknown command/i.test(r)) {
      return new RestoreError("permission", `target ${where} refused ${doing}: ${r}`, { cause: err });
    }
    if (/^LOADING\b/.test(r)) return new RestoreError("unsupported", `target ${where} is loading a dataset; try again later`, { cause: err });
    return new RestoreError("unsupported", `target ${where} refused ${doing}: ${r}`, { cause: err });
  }
  return new RestoreError("connect", `cannot reach target ${where} (${doing}): ${replyText(err)}`, { cause: err });
}

/** Connects and authenticates; a PING makes a missing password show up here (NOAUTH) rather than later. */
export async function openTarget(ep: RedisEndpoint, timeoutMs: number): Promise<RespConnection> {
  let conn: RespConnection | undefined;
  try {
    conn = await RespConnection.connect(ep, timeoutMs);
    await conn.command("PING");
    return conn;
  } catch (err) {
    conn?.close();
    throw classifyTargetError(err, ep, "PING");
  }
}

/**
 * Checks that the target accepts the endpoint's credentials without changing anything on it. Rejects with
 * RestoreError kind 'auth' (wrong/missing password) or 'connect'.
 */
export async function verifyTargetPassword(target: RedisEndpoint, timeoutMs = 10_000): Promise<void> {
  (await openTarget(target, timeoutMs)).close();
}

export interface TargetState {
  /** redis_version (Valkey reports 7.2.4 there). */
  version: string;
  /** valkey_version, for a Valkey. */
  valkeyVersion?: string;
  role: string;
  masterHost?: string;
  masterPort?: number;
  clusterEnabled: boolean;
  loading: boolean;
  /** repl-diskless-load, when CONFIG GET is allowed ('disabled' | 'on-empty-db' | 'swapdb'). */
  disklessLoad?: string;
}

export async function readTargetState(conn: RespConnection, ep: RedisEndpoint): Promise<TargetState> {
  let server: Map<string, string>, repl: Map<string, string>, persistence: Map<string, string>, cluster: Map<string, string>;
  try {
    [server, repl, persistence, cluster] = await Promise.all(["server", "replication", "persistence", "cluster"].map((s) => info(conn, s)));
  } catch (err) {
    throw classifyTargetError(err, ep, "INFO");
  }
  let disklessLoad: string | undefined;
  try {
    const r = await conn.command("CONFIG", "GET", "repl-diskless-load");
    if (Array.isArray(r) && r.length >= 2) disklessLoad = String(r[1]);
  } catch {
    // CONFIG is often renamed or blocked on managed services; the caller assumes the unsafe case.
  }
  return {
    version: server.get("redis_version") ?? "unknown",
    valkeyVersion: server.get("valkey_version"),
    role: repl.get("role") ?? "unknown",
    masterHost: repl.get("master_host"),
    masterPort: repl.has("master_port") ? Number(repl.get("master_port")) : undefined,
    clusterEnabled: cluster.get("cluster_enabled") === "1",
    loading: persistence.get("loading") === "1" || persistence.get("async_loading") === "1",
    disklessLoad,
  };
}

export interface ReleasedTarget {
  /** Whether the target was still replicating from the endpoint and has been made a master again. */
  released: boolean;
  /** What the target reported: its role and, for a replica, its master. */
  role: string;
  /** Keys in the target afterwards (all databases). */
  keys: number;
}

/**
 * After the process that ran a restore died: if `target` still replicates from `endpoint` (our short-lived
 * replication endpoint, gone with that process), make it a master again (REPLICAOF NO ONE). A target that
 * replicates from anything else was changed by someone else since and is left alone.
 */
export async function releaseTarget(target: RedisEndpoint, endpoint: { host: string; port: number }, timeoutMs = 10_000): Promise<ReleasedTarget> {
  const conn = await openTarget(target, timeoutMs);
  try {
    const repl = await info(conn, "replication");
    const role = repl.get("role") ?? "unknown";
    const ours = role === "slave" && repl.get("master_host") === endpoint.host && Number(repl.get("master_port")) === endpoint.port;
    if (ours) {
      // A target still loading answers LOADING until it is done; wait for it rather than leave it a replica.
      const deadline = Date.now() + Math.max(timeoutMs, 60_000);
      for (;;) {
        try {
          await conn.command("REPLICAOF", "NO", "ONE");
          break;
        } catch (err) {
          if (!(err instanceof RedisReplyError && /^LOADING\b/.test(err.reply)) || Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    return { released: ours, role: ours ? "master" : role, keys: await totalKeys(conn) };
  } finally {
    conn.close();
  }
}

function versionNumber(v: string): number {
  const m = /^(\d+)\.(\d+)/.exec(v);
  return m ? Number(m[1]) * 100 + Number(m[2]) : 0;
}

/** Reads what the target can do (INFO server/cluster, a harmless RESTORE probe). */
export async function probeTarget(ep: RedisEndpoint, timeoutMs = 10_000): Promise<TargetCapabilities> {
  const c = await RespConnection.connect(ep, timeoutMs);
  try {
    const server = parseInfo(await c.command("INFO", "server"));
    const clusterInfo = parseInfo(await c.command("INFO", "cluster"));
    const valkey = server.get("valkey_version");
    const kind: "redis" | "valkey" = valkey || server.get("server_name") === "valkey" ? "valkey" : "redis";
    const version = (kind === "valkey" ? valkey : server.get("redis_version")) ?? "0.0.0";
    const redisCompat = versionNumber(server.get("redis_version") ?? version);
    let restore = true;
    try {
      // An invalid payload is rejected after the command and ACL checks and before anything is written.
      await c.command("RESTORE", "crs-backup:restore-probe", "0", "not-a-payload");
    } catch (err) {
      if (err instanceof RedisReplyError && /^(NOPERM|ERR unknown command)/i.test(err.reply)) restore = false;
      else if (!(err instanceof RedisReplyError)) throw err;
    }
    const v = versionNumber(version);
    return {
      server: kind,
      version,
      rdbVersion: rdbVersionOf(kind, version) ?? (kind === "valkey" ? VALKEY_RDB_VERSION : RDB_MAX_KNOWN_VERSION),
      cluster: clusterInfo.get("cluster_enabled") === "1",
      restore,
      restoreAbsTtl: redisCompat >= 500,
      setPxat: redisCompat >= 602,
      hsetMulti: redisCompat >= 400,
      streams: redisCompat >= 500,
      streamMeta: redisCompat >= 700,
      createConsumer: redisCompat >= 602,
      hashFieldTtl: kind === "redis" ? v >= 704 : v >= 900,
      functions: redisCompat >= 700,
    };
  } finally {
    c.close();
  }
}
