// Planning a restore: which path (replication or commands) a request takes into a given target, and the facts
// each path checks on the way — the target's role and INFO, the backup's RDB header, whether the target is
// empty, a cluster target's hosts, the digest the target should report afterwards. Reads the Redis side and
// the backup's bytes (given as streams); knows nothing of tasks or the catalogue (run.ts runs the plan).
import { readSlotMap } from "../client/cluster";
import { RedisEndpoint, RedisReplyError, RespConnection } from "../client/resp";
import { hostAllowed } from "../client/topology";
import { scoreFormatForAux } from "../rdb/digest";
import { RdbReader } from "../rdb/reader";
import { RestoreError } from "./errors";
import { RestoreRequest, selective } from "./request";
import type { TargetCapabilities } from "../rdb/command-summary";
import { openTarget, rdbRefusal, readTargetState, TargetState, totalKeys } from "./target";
import { SelectedDigest, targetScoreFormat } from "./verify";

/** An RDB's bytes, opened when needed (a stored file read through its integrity check). */
export type OpenRdb = () => Promise<AsyncIterable<Buffer>>;

export interface RdbHead {
  version: number;
  aux: Record<string, string>;
}

export interface RestorePlan {
  path: "replication" | "commands";
  reason: string;
  /** Replication only: the backup's RDB header facts. */
  head?: RdbHead;
}

/**
 * Chooses the path: commands when asked, for a cluster backup (`shards` > 1), a selective request, a target
 * refusing INFO (auto), a cluster target or one too old for the RDB; replication otherwise. Rejects only for a
 * target no path can restore into (a replica, loading) or a replication the target cannot take.
 */
export async function planRestore(r: RestoreRequest, shards: number, ep: RedisEndpoint, openFirst: OpenRdb, what = "the backup file"): Promise<RestorePlan> {
  if (r.mode === "commands") return { path: "commands", reason: "asked for" };
  if (shards > 1) return { path: "commands", reason: `a cluster backup (${shards} shards)` };
  const why = selective(r);
  if (why) return { path: "commands", reason: why };
  const conn = await openTarget(ep, 10_000);
  let state: TargetState;
  try {
    state = await readTargetState(conn, ep);
  } catch (err) {
    conn.close();
    // INFO refused: replication cannot be checked, commands may still be allowed
    if (r.mode === "auto" && err instanceof RestoreError && err.kind === "permission") return { path: "commands", reason: `the target refuses INFO (${err.message})` };
    throw err;
  }
  conn.close();
  const where = `${ep.host}:${ep.port}`;
  if (state.role !== "master") throw new RestoreError("unsupported", `target ${where} is a replica of ${state.masterHost}:${state.masterPort}; restore into its master`);
  if (state.loading) throw new RestoreError("unsupported", `target ${where} is loading a data set; try again later`);
  if (state.clusterEnabled) {
    if (r.mode === "replication") throw new RestoreError("unsupported", `target ${where} runs in cluster mode, where REPLICAOF to an outside master is not allowed: use --mode auto or commands`);
    return { path: "commands", reason: "the target is a cluster" };
  }
  const head = await readRdbHead(await openFirst(), what);
  const refused = rdbRefusal(state, head.version);
  if (refused) {
    if (r.mode === "replication") throw new RestoreError("load", `${refused}: use --mode auto or commands`);
    return { path: "commands", reason: refused };
  }
  return { path: "replication", reason: `the target (${state.valkeyVersion ? `Valkey ${state.valkeyVersion}` : `Redis ${state.version}`}) loads RDB version ${head.version}`, head };
}

const STOP = new Error("header read");

/** The RDB version and AUX fields at the start of an RDB stream (reads only its first chunks, then closes it). */
export async function readRdbHead(stream: AsyncIterable<Buffer>, what: string): Promise<RdbHead> {
  const aux: Record<string, string> = {};
  let version = 0;
  const stop = (): never => {
    throw STOP;
  };
  const reader = new RdbReader({ onHeader: (v) => (version = v), onAux: (k, v) => (aux[k] = v.toString("latin1")), onDb: stop, onKeyStart: stop, onFunction: stop });
  try {
    for await (const chunk of stream) reader.feed(chunk);
    reader.end();
  } catch (err) {
    if (err !== STOP) throw new Error(`${what} is not a readable RDB: ${(err as Error).message}`, { cause: err });
  } finally {
    (stream as { destroy?: () => void }).destroy?.();
  }
  return { version, aux };
}

/** Replication refused before the target's data or role changed: the command path may still work. */
export function refusedBeforeChange(err: unknown): boolean {
  return err instanceof RestoreError && (err.kind === "permission" || err.kind === "unsupported") && (err.phase === "prepare" || err.phase === "connect-back");
}

/** Whether the target holds no key (false when INFO is refused: then the comparison goes key by key). */
export async function isEmptyTarget(ep: RedisEndpoint): Promise<boolean> {
  const conn = await RespConnection.connect(ep, 10_000);
  try {
    return (await totalKeys(conn)) === 0;
  } catch (err) {
    if (err instanceof RedisReplyError) return false;
    throw err;
  } finally {
    conn.close();
  }
}

/** A cluster target's nodes get the instance's password: only on hosts allowed as for backups. */
export async function checkClusterHosts(ep: RedisEndpoint, allowed: readonly string[]): Promise<void> {
  for (const range of await readSlotMap(ep)) {
    if (!hostAllowed(range.master.host, ep.host, allowed)) {
      throw new Error(`the cluster at ${ep.host}:${ep.port} announces a master on ${range.master.host}:${range.master.port}, a host not allowed (cluster-hosts); nothing was written`);
    }
  }
}

/** How the target formats sorted-set scores in DEBUG DIGEST, from its capabilities. */
export function scoreFormatOf(caps: TargetCapabilities) {
  return caps.server === "valkey" ? scoreFormatForAux({ "valkey-ver": caps.version }) : scoreFormatForAux({ "redis-ver": caps.version });
}

/**
 * The DEBUG DIGEST the target should report after loading an RDB by replication: the digest recorded for the
 * backup (`recorded()`, asked only when the target formats scores as the source did; it may wait for a digest
 * still being computed) or else computed from a second read in the target's format. `sourceFormat` says whether
 * a computed digest is also the backup's own. Undefined when it cannot be known (INFO refused, module keys).
 */
export async function expectedDigestAfterLoad(recorded: () => Promise<string | undefined>, head: RdbHead, ep: RedisEndpoint, open: OpenRdb): Promise<{ digest: string; keys?: number; sourceFormat: boolean; computed: boolean } | undefined> {
  let format;
  try {
    format = await targetScoreFormat(ep);
  } catch {
    return undefined; // INFO refused now: compare key by key (which reports what it can)
  }
  const sourceFormat = scoreFormatForAux(head.aux) === format;
  const known = sourceFormat ? await recorded() : undefined;
  if (known) return { digest: known, sourceFormat, computed: false };
  const digest = new SelectedDigest({ scoreFormat: format }, () => true);
  const reader = new RdbReader(digest);
  for await (const chunk of await open()) reader.feed(chunk);
  reader.end();
  const r = digest.result();
  return r.moduleKeys ? undefined : { digest: r.digest, keys: r.keys, sourceFormat, computed: true };
}

/** The target's DEBUG DIGEST (40 hex digits); rejects where DEBUG is not allowed. */
export async function targetDigest(ep: RedisEndpoint): Promise<string> {
  const conn = await RespConnection.connect(ep, 10_000);
  try {
    const reply = await conn.command("DEBUG", "DIGEST");
    if (reply instanceof RedisReplyError) throw reply;
    return Buffer.isBuffer(reply) ? reply.toString("latin1") : String(reply);
  } finally {
    conn.close();
  }
}
