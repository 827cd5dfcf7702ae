// What a Redis deployment is made of, read once: a standalone server (and the replicas its INFO replication
// lists) or a Redis Cluster (CLUSTER NODES: every slot-owning master and its replicas). The host allow-list is
// applied here and only here: the instance's credentials go to the hosts the operator registered (or allowed
// with --cluster-hosts), never to an address a node merely announces.
import net from "node:net";
import { CodedError } from "./errors";
import { parseInfo, RedisEndpoint, RespConnection } from "./resp";

export type TopologyErrorCode = "PROTOCOL" | "NODE_NOT_ALLOWED" | "NODE_FAILED";

export class TopologyError extends CodedError<TopologyErrorCode> {
  override name = "TopologyError";
}

export interface ReplicaNode {
  /** Cluster node id; undefined for a standalone server's replica. */
  id?: string;
  endpoint: RedisEndpoint;
  /** Why this replica cannot be used at all, as its master or the cluster sees it (a failed node, a host not allowed). */
  unusable?: string;
}

export interface ShardInfo {
  /** Cluster node id (40 hex chars); undefined for a standalone server. */
  id?: string;
  /** The shard's master. */
  endpoint: RedisEndpoint;
  /** Inclusive slot ranges served by this master; empty for a standalone server. */
  slots: Array<[number, number]>;
  /** The master's replicas as the master (INFO replication) or the cluster (CLUSTER NODES) knows them. */
  replicas: ReplicaNode[];
}

export interface Topology {
  cluster: boolean;
  /** Slot-owning masters ordered by first slot; one for a standalone server. */
  shards: ShardInfo[];
}

export interface TopologyOptions {
  /**
   * Hosts besides the registered one(s) that nodes may be announced on, and so receive the instance's
   * credentials: host names or IP addresses, CIDR ranges (`10.0.0.0/24`, `fd00::/8`), or `*` for any.
   */
  allowedHosts?: readonly string[];
  /** The hosts the operator registered (default: the endpoint's own host). For Sentinel: the Sentinels' and the master's. */
  registeredHosts?: readonly string[];
}

/**
 * Whether credentials may be sent to `host`. The cluster's own answer decides which addresses we connect to
 * with the instance's password, so a node that can change what CLUSTER NODES says (a compromised node, or
 * anyone able to run CLUSTER MEET or set cluster-announce-ip) could otherwise collect the password on an
 * address of its choosing. The registered host is trusted because the operator chose it.
 */
export function hostAllowed(host: string, registered: string | readonly string[], allowed: readonly string[] = []): boolean {
  const h = host.toLowerCase();
  for (const r of typeof registered === "string" ? [registered] : registered) if (h === r.toLowerCase()) return true;
  for (const rule of allowed) {
    const r = rule.trim().toLowerCase();
    if (r === "*" || r === h) return true;
    const slash = r.indexOf("/");
    const family = net.isIP(h);
    if (slash > 0 && family !== 0) {
      const base = r.slice(0, slash);
      const bits = Number(r.slice(slash + 1));
      if (net.isIP(base) !== family || !Number.isInteger(bits)) continue;
      const list = new net.BlockList();
      try {
        list.addSubnet(base, bits, family === 4 ? "ipv4" : "ipv6");
      } catch {
        continue;
      }
      if (list.check(h, family === 4 ? "ipv4" : "ipv6")) return true;
    }
  }
  return false;
}

/** `ip:port@cport[,hostname]` (the ip may be IPv6: split at the last ':' before '@'). */
function clusterAddress(id: string, addr: string, via: RedisEndpoint): RedisEndpoint {
  const hostPort = addr.split("@")[0]!;
  const colon = hostPort.lastIndexOf(":");
  const host = hostPort.slice(0, colon).replace(/^\[(.*)\]$/, "$1") || via.host;
  const port = Number(hostPort.slice(colon + 1));
  if (!Number.isInteger(port) || port <= 0) throw new TopologyError("PROTOCOL", `cannot read the address of cluster node ${id}: ${addr}`);
  return { ...via, host, port };
}

/** Parses CLUSTER NODES output into slot-owning masters sorted by first slot, each with its replicas. */
export function parseClusterNodes(text: string, via: RedisEndpoint): ShardInfo[] {
  const shards: ShardInfo[] = [];
  const replicaLines: string[][] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const f = line.split(" ");
    if (f.length < 8) throw new TopologyError("PROTOCOL", `unexpected CLUSTER NODES line: ${JSON.stringify(line.slice(0, 120))}`);
    const [id, addr, flagText] = f as [string, string, string];
    const flags = flagText.split(",");
    if (flags.includes("handshake") || flags.includes("noaddr")) continue;
    if (flags.includes("slave") || flags.includes("replica")) {
      replicaLines.push(f);
      continue;
    }
    if (!flags.includes("master")) continue;
    const slots: Array<[number, number]> = [];
    for (const s of f.slice(8)) {
      if (s.startsWith("[")) continue; // migrating/importing markers
      const m = /^(\d+)(?:-(\d+))?$/.exec(s);
      if (m) slots.push([Number(m[1]), Number(m[2] ?? m[1])]);
    }
    if (slots.length === 0) continue; // a master without slots holds no keys
    if (flags.includes("fail")) {
      throw new TopologyError("NODE_FAILED", `cluster master ${id} (${addr}) is marked as failed; a complete backup is not possible until it recovers`);
    }
    // the address we were given works; the announced one may not (NAT, containers)
    const endpoint = flags.includes("myself") ? via : clusterAddress(id, addr, via);
    slots.sort((a, b) => a[0] - b[0]);
    shards.push({ id, endpoint, slots, replicas: [] });
  }
  for (const f of replicaLines) {
    const [id, addr, flagText, masterId] = f as [string, string, string, string];
    const shard = shards.find((s) => s.id === masterId);
    if (!shard) continue;
    const flags = flagText.split(",");
    const replica: ReplicaNode = { id, endpoint: flags.includes("myself") ? via : clusterAddress(id, addr, via) };
    if (flags.includes("fail") || flags.includes("fail?")) replica.unusable = `the cluster marks it ${flags.includes("fail") ? "failed" : "possibly failed"}`;
    else if (f[7] === "disconnected") replica.unusable = "its cluster bus link is disconnected";
    shard.replicas.push(replica);
  }
  shards.sort((a, b) => a.slots[0]![0] - b.slots[0]![0]);
  return shards;
}

/** The replicas a standalone master lists in INFO replication (`slave0:ip=…,port=…,state=online,…`). */
export function replicasOfInfo(info: Map<string, string>, via: RedisEndpoint): ReplicaNode[] {
  const out: ReplicaNode[] = [];
  for (const [k, v] of info) {
    if (!/^slave\d+$/.test(k)) continue;
    const f = new Map(v.split(",").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)] as [string, string]));
    const port = Number(f.get("port"));
    const host = f.get("ip");
    if (!host || !Number.isInteger(port) || port <= 0) continue;
    const replica: ReplicaNode = { endpoint: { ...via, host, port } };
    if (f.get("state") !== "online") replica.unusable = `its master reports it ${f.get("state") ?? "in an unknown state"}`;
    out.push(replica);
  }
  return out;
}

/**
 * Applies the allow-list: a master on a host not allowed is refused (the credentials would go to every master);
 * a replica on one is kept in the list but marked unusable, so a backup from a replica can say why it did not use it.
 */
export function applyAllowList(shards: ShardInfo[], registered: readonly string[], allowed: readonly string[] = []): ShardInfo[] {
  for (const s of shards) {
    if (!hostAllowed(s.endpoint.host, registered, allowed)) {
      throw new TopologyError("NODE_NOT_ALLOWED", `${s.id ? `cluster master ${s.id}` : "the master"} is announced at ${s.endpoint.host}:${s.endpoint.port}, not on the registered host ${registered.join(", ")}; `
        + `the instance's credentials are sent only to the registered host unless other hosts are allowed (cluster hosts setting)`);
    }
    for (const r of s.replicas) {
      if (!r.unusable && !hostAllowed(r.endpoint.host, registered, allowed)) {
        r.unusable = `it is announced on ${r.endpoint.host}, a host not allowed (--cluster-hosts), so it is never sent the credentials`;
      }
    }
  }
  return shards;
}

/** Runs one command on the node the topology is read from and answers its text (the caller owns timeouts and errors). */
export type NodeQuery = (...args: string[]) => Promise<string>;

/**
 * Reads the topology through the node `via` (which already accepted the credentials), applying the allow-list.
 * A standalone server is one shard whose replicas are those its INFO replication lists.
 */
export async function readTopology(query: NodeQuery, via: RedisEndpoint, opts: TopologyOptions = {}): Promise<Topology> {
  const registered = opts.registeredHosts ?? [via.host];
  const info = parseInfo(await query("INFO", "cluster"));
  if (info.get("cluster_enabled") !== "1") {
    const replication = parseInfo(await query("INFO", "replication"));
    return { cluster: false, shards: applyAllowList([{ endpoint: via, slots: [], replicas: replicasOfInfo(replication, via) }], registered, opts.allowedHosts) };
  }
  const shards = parseClusterNodes(await query("CLUSTER", "NODES"), via);
  if (shards.length === 0) throw new TopologyError("PROTOCOL", `${via.host}:${via.port} is in cluster mode but no master serves any slot`);
  return { cluster: true, shards: applyAllowList(shards, registered, opts.allowedHosts) };
}

export interface SlotRange {
  start: number;
  end: number;
  master: RedisEndpoint;
}

/** The slot map of a topology: one range per contiguous run of a master's slots, ordered. */
export function slotMapOf(t: Topology): SlotRange[] {
  const ranges: SlotRange[] = [];
  for (const s of t.shards) for (const [start, end] of s.slots) ranges.push({ start, end, master: s.endpoint });
  return ranges.sort((a, b) => a.start - b.start);
}

/**
 * Reads a cluster's slot map through `seed` (CLUSTER NODES); node addresses inherit the seed's credentials and
 * TLS settings. With `allowedHosts`, a master on a host not allowed is refused (TopologyError NODE_NOT_ALLOWED).
 */
export async function readSlotMap(seed: RedisEndpoint, conn?: RespConnection, allowedHosts?: readonly string[], registeredHosts: readonly string[] = [seed.host]): Promise<SlotRange[]> {
  const c = conn ?? (await RespConnection.connect(seed));
  try {
    const text = await c.command("CLUSTER", "NODES");
    const shards = parseClusterNodes(Buffer.isBuffer(text) ? text.toString("utf8") : String(text), seed);
    if (allowedHosts) applyAllowList(shards, registeredHosts, allowedHosts);
    return slotMapOf({ cluster: true, shards });
  } finally {
    if (!conn) c.close();
  }
}
