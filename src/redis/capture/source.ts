// Which node of a shard a backup's snapshot is taken from (the instance's BackupSource):
//  - master: the shard's master (it forks for the snapshot);
//  - replica: a healthy replica, never the master — the backup fails if the shard has none;
//  - prefer-replica: a healthy replica if there is one, else the master, and the task says why.
// A replica is healthy when it says role:slave with master_link_status:up, no sync in progress, the same
// replication id as the master (it follows this master) and an offset at most `maxLagBytes` behind the master's.
// Among healthy replicas the least behind is taken. The snapshot is recorded with the node's address and its
// replication offset read just before the snapshot was asked for.
import { parseInfo, RedisEndpoint, RespConnection } from "../client/resp";
import type { ShardInfo } from "../client/topology";
import type { BackupSource, SnapshotSource } from "../../records";
import { CaptureError, commandWithin, connectForCapture } from "./capture";

/** How far (bytes of replication stream) a replica may be behind its master and still be backed up from. */
export const DEFAULT_MAX_REPLICA_LAG_BYTES = 1 << 20;

export interface ChosenSource {
  endpoint: RedisEndpoint;
  source: SnapshotSource;
  /** Why a prefer-replica backup was taken from the master (for the task's message). */
  fallback?: string;
}

const where = (ep: RedisEndpoint): string => `${ep.host}:${ep.port}`;

async function replication(ep: RedisEndpoint, timeoutMs: number, open?: RespConnection): Promise<Map<string, string>> {
  const conn = open ?? (await connectForCapture(ep, timeoutMs));
  try {
    return parseInfo(await commandWithin(conn, ep, timeoutMs, "INFO", "replication"));
  } finally {
    if (!open) conn.close();
  }
}

const num = (v: string | undefined): number | undefined => (v === undefined || v === "" || !Number.isFinite(Number(v)) ? undefined : Number(v));

/** Why `info` (a replica's INFO replication) is not fit to be backed up from, or undefined when it is. */
export function replicaProblem(info: Map<string, string>, master: { replid?: string; offset?: number }, maxLagBytes: number): string | undefined {
  const role = info.get("role");
  if (role !== "slave") return `it reports role:${role ?? "?"}`;
  const link = info.get("master_link_status");
  if (link !== "up") return `its link to the master is ${link ?? "unknown"} (master_link_status)`;
  if (info.get("master_sync_in_progress") === "1") return "it is still syncing with the master";
  if (master.replid && info.get("master_replid") && info.get("master_replid") !== master.replid) return `it follows another replication history (master_replid ${info.get("master_replid")}, the master's ${master.replid})`;
  const offset = num(info.get("slave_repl_offset")) ?? num(info.get("master_repl_offset"));
  if (master.offset !== undefined && offset !== undefined && master.offset - offset > maxLagBytes) {
    return `it lags ${master.offset - offset} bytes behind the master (offset ${offset}, the master's ${master.offset}; at most ${maxLagBytes} allowed)`;
  }
  return undefined;
}

/** Chooses the node to snapshot for shard `index` (see the header). */
export async function chooseSource(shard: ShardInfo, index: number, mode: BackupSource, o: { timeoutMs: number; maxLagBytes?: number; masterConnection?: RespConnection }): Promise<ChosenSource> {
  const maxLag = o.maxLagBytes ?? DEFAULT_MAX_REPLICA_LAG_BYTES;
  // Only for the record and the lag bound: a master refusing INFO (an ACL user without +info) is still backed up.
  // `masterConnection`: an open connection to the shard's master to ask on (left open) instead of a new one.
  const masterInfo = await replication(shard.endpoint, o.timeoutMs, o.masterConnection).catch(() => new Map<string, string>());
  const master = { replid: masterInfo.get("master_replid"), offset: num(masterInfo.get("master_repl_offset")) };
  const fromMaster = (fallback?: string): ChosenSource => ({
    endpoint: shard.endpoint, source: { shard: index, role: "master", node: where(shard.endpoint), ...(master.offset !== undefined ? { offset: master.offset } : {}) }, ...(fallback ? { fallback } : {}),
  });
  if (mode === "master") return fromMaster();
  const problems: string[] = [];
  let best: { ep: RedisEndpoint; offset?: number; lag: number } | undefined;
  for (const r of shard.replicas) {
    if (r.unusable) {
      problems.push(`${where(r.endpoint)}: ${r.unusable}`);
      continue;
    }
    let info: Map<string, string>;
    try {
      info = await replication(r.endpoint, o.timeoutMs);
    } catch (err) {
      problems.push(`${where(r.endpoint)}: ${(err as Error).message}`);
      continue;
    }
    const problem = replicaProblem(info, master, maxLag);
    if (problem) {
      problems.push(`${where(r.endpoint)}: ${problem}`);
      continue;
    }
    const offset = num(info.get("slave_repl_offset")) ?? num(info.get("master_repl_offset"));
    const lag = master.offset !== undefined && offset !== undefined ? Math.max(0, master.offset - offset) : 0;
    if (!best || lag < best.lag) best = { ep: r.endpoint, offset, lag };
  }
  if (best) return { endpoint: best.ep, source: { shard: index, role: "replica", node: where(best.ep), ...(best.offset !== undefined ? { offset: best.offset } : {}) } };
  const why = shard.replicas.length === 0
    ? `the master ${where(shard.endpoint)} has no replica`
    : `no replica of ${where(shard.endpoint)} is healthy (${problems.join("; ")})`;
  if (mode === "replica") throw new CaptureError("NO_REPLICA", `shard ${index + 1}: ${why}; the backup source is replica, so the master is not forked (set it to prefer-replica to fall back to the master)`);
  return fromMaster(`shard ${index + 1} taken from the master: ${why}`);
}
