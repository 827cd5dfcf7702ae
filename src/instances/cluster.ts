// A cluster-shaped clone's nodes made into one Redis Cluster: each node has loaded its shard's RDB (and took the
// slots it holds keys for as it loaded, as a cluster-enabled redis-server does with data and no cluster
// configuration), then is given the rest of its slots, its own config epoch, and met by the first node, as
// `redis-cli --cluster create` does. It resolves once every node sees the whole cluster serving all 16384 slots.
//
// Which node serves which empty slot: the source's slot ranges recorded with each shard's file (StoredFile.slots)
// when every shard has them; for a backup made before they were recorded, each empty slot goes to the shard of the
// nearest slot before it that holds keys (so contiguous ranges come back as they were wherever keys are dense).
import dns from "node:dns/promises";
import net from "node:net";
import { parseInfo, RedisEndpoint, RespConnection } from "../redis/client/resp";
import { parseClusterNodes } from "../redis/client/topology";

export const CLUSTER_SLOTS = 16384;
/** How long the nodes may take to see each other and agree that the cluster is up. */
const FORM_TIMEOUT_MS = 60_000;

/** The slots a node serves itself, from its CLUSTER NODES as read through `via` (the `myself` master's). */
export function ownSlotsOf(clusterNodes: string, via: RedisEndpoint): number[] {
  const mine = parseClusterNodes(clusterNodes, via).find((shard) => shard.endpoint === via);
  return (mine?.slots ?? []).flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));
}

/**
 * The shard that serves each slot: the slots each node holds keys for (`held`, from its own load), then the
 * recorded ranges for the empty ones (all shards' or none), else the nearest slot before with keys. Throws when
 * two shards hold keys of one slot (a backup taken while a slot migrated).
 */
export function planSlots(held: readonly number[][], recorded: ReadonlyArray<ReadonlyArray<readonly [number, number]> | undefined>): Int16Array {
  const owner = new Int16Array(CLUSTER_SLOTS).fill(-1);
  for (const [shard, slots] of held.entries()) {
    for (const s of slots) {
      if (owner[s] !== -1 && owner[s] !== shard) throw new Error(`slot ${s} holds keys in shard ${owner[s]} and in shard ${shard} (the backup was taken while the slot migrated between masters); clone a backup or a second from before or after the migration`);
      owner[s] = shard;
    }
  }
  if (recorded.length === held.length && recorded.every((r) => r !== undefined)) {
    for (const [shard, ranges] of recorded.entries()) {
      for (const [a, b] of ranges!) {
        for (let s = a; s <= b; s++) {
          // The keys are the truth: a slot map read a moment before the base was cut may predate a migration.
          if (owner[s] === -1) owner[s] = shard;
        }
      }
    }
  }
  const first = owner.findIndex((o) => o !== -1);
  if (first === -1) {
    // Nothing to go by: even ranges in shard order, as redis-cli --cluster create makes them.
    for (let s = 0; s < CLUSTER_SLOTS; s++) owner[s] = Math.floor((s * held.length) / CLUSTER_SLOTS);
    return owner;
  }
  let last = owner[first]!;
  for (let s = 0; s < CLUSTER_SLOTS; s++) {
    if (owner[s] === -1) owner[s] = last;
    else last = owner[s]!;
  }
  return owner;
}

/** Inclusive ranges of the slots `shard` serves in `owner`. */
export function rangesOf(owner: Int16Array, shard: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < CLUSTER_SLOTS; s++) {
    if (owner[s] !== shard) continue;
    const prev = out.at(-1);
    if (prev && prev[1] === s - 1) prev[1] = s;
    else out.push([s, s]);
  }
  return out;
}

/** Makes the loaded nodes one cluster (see the top of this file); `recorded`: each shard's slot ranges, if known. */
export async function formCluster(nodes: readonly RedisEndpoint[], recorded: ReadonlyArray<ReadonlyArray<readonly [number, number]> | undefined>, signal?: AbortSignal): Promise<void> {
  const conns = await Promise.all(nodes.map((ep) => RespConnection.connect(ep, 10_000)));
  try {
    const held = await Promise.all(conns.map(async (c, i) => ownSlotsOf(String(await c.command("CLUSTER", "NODES")), nodes[i]!)));
    const owner = planSlots(held, recorded);
    for (const [shard, c] of conns.entries()) {
      const have = new Set(held[shard]);
      const add: string[] = [];
      for (let s = 0; s < CLUSTER_SLOTS; s++) if (owner[s] === shard && !have.has(s)) add.push(String(s));
      for (let i = 0; i < add.length; i += 4096) await c.command("CLUSTER", "ADDSLOTS", ...add.slice(i, i + 4096));
      // Distinct epochs before the nodes meet, so no slot's owner is settled by an epoch collision.
      await c.command("CLUSTER", "SET-CONFIG-EPOCH", String(shard + 1)).catch(() => undefined);
    }
    for (const ep of nodes.slice(1)) {
      const ip = net.isIP(ep.host) ? ep.host : (await dns.lookup(ep.host)).address;
      await conns[0]!.command("CLUSTER", "MEET", ip, String(ep.port));
    }
    const deadline = Date.now() + FORM_TIMEOUT_MS;
    for (;;) {
      signal?.throwIfAborted();
      const infos = await Promise.all(conns.map(async (c) => parseInfo(String(await c.command("CLUSTER", "INFO")))));
      const ok = infos.every((i) => i.get("cluster_state") === "ok" && Number(i.get("cluster_known_nodes")) === nodes.length && Number(i.get("cluster_slots_assigned")) === CLUSTER_SLOTS);
      if (ok) return;
      if (Date.now() > deadline) {
        const seen = infos.map((i, n) => `node ${n}: ${i.get("cluster_state")}, ${i.get("cluster_known_nodes")} known, ${i.get("cluster_slots_assigned")} slots`).join("; ");
        throw new Error(`the clone's ${nodes.length} nodes did not form a cluster within ${FORM_TIMEOUT_MS / 1000} s (${seen})`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    for (const c of conns) c.close();
  }
}
