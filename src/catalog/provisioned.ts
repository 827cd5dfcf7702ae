// The catalogue's table of instances this service provisions itself (migration 9, CloneInstances): which node owns
// the process, the provider, its port and data directory, its state. The SQL is the same on both engines, written
// once here with `?` placeholders; every engine gets it through SqlOps (which extends this class).
import type { SqlExecutor } from "./dialect";
import type { Row } from "./rows";
import { StreamTables } from "./streams";
import type { ProvisionedInstance, ProvisionedState } from "./types";

/** The provisioned-instance methods of CatalogTx. */
export interface ProvisionedCatalog {
  /**
   * Inserts a row and its nodes' ports; false when a port is taken already (a primary key or UNIQUE constraint),
   * so the caller picks others (inside a transaction, which the caller then rolls back).
   */
  insertProvisioned(p: ProvisionedInstance): Promise<boolean>;
  provisioned(instanceId: string): Promise<ProvisionedInstance | undefined>;
  /** Every row, or those one node owns, by instance id. */
  provisionedInstances(owner?: string): Promise<ProvisionedInstance[]>;
  /** Moves a row to `state` (and owner) only from one of `from`; true when this caller made the change. */
  setProvisionedState(instanceId: string, from: readonly ProvisionedState[], state: ProvisionedState, owner?: string): Promise<boolean>;
  deleteProvisioned(instanceId: string): Promise<void>;
}

function toProvisioned(r: Row): ProvisionedInstance {
  const p: ProvisionedInstance = {
    instanceId: r.instance_id as string, owner: r.owner as string, provider: r.provider as string, port: Number(r.port),
    dataDir: r.data_dir as string, state: r.state as ProvisionedState, createdAt: Number(r.created_at),
  };
  if (r.task_id !== null && r.task_id !== undefined) p.taskId = Number(r.task_id);
  return p;
}

/** A cluster-shaped instance's node ports, in shard order. */
function withNodes(p: ProvisionedInstance, shape: unknown, nodes: Row[]): ProvisionedInstance {
  if (shape === "cluster") p.clusterPorts = nodes.length ? nodes.map((n) => Number(n.port)) : [p.port];
  return p;
}

const COLUMNS = "instance_id, owner, provider, port, data_dir, state, task_id, created_at, shape";

export class ProvisionedTables extends StreamTables implements ProvisionedCatalog {
  constructor(private readonly provisionSql: SqlExecutor) {
    super(provisionSql);
  }

  async insertProvisioned(p: ProvisionedInstance): Promise<boolean> {
    const ports = p.clusterPorts ?? [p.port];
    if (ports[0] !== p.port) throw new Error(`a cluster-shaped instance's first node port (${ports[0]}) is its port (${p.port})`);
    const n = await this.provisionSql.run(`INSERT INTO provisioned_instances(${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [p.instanceId, p.owner, p.provider, p.port, p.dataDir, p.state, p.taskId ?? null, p.createdAt, p.clusterPorts ? "cluster" : null], "insertProvisioned");
    if (n !== 1) return false;
    // Each node's port once across every instance; a taken one leaves the caller's transaction to roll back.
    for (const [shard, port] of ports.entries()) {
      const m = await this.provisionSql.run("INSERT INTO provisioned_nodes(port, instance_id, shard) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [port, p.instanceId, shard], "insertProvisionedNode");
      if (m !== 1) {
        await this.deleteProvisioned(p.instanceId);
        return false;
      }
    }
    return true;
  }

  async provisioned(instanceId: string): Promise<ProvisionedInstance | undefined> {
    const r = (await this.provisionSql.all(`SELECT ${COLUMNS} FROM provisioned_instances WHERE instance_id = ?`, [instanceId], "provisioned"))[0];
    if (!r) return undefined;
    const nodes = await this.provisionSql.all("SELECT instance_id, port FROM provisioned_nodes WHERE instance_id = ? ORDER BY shard", [instanceId], "provisionedNodes");
    return withNodes(toProvisioned(r), r.shape, nodes);
  }

  async provisionedInstances(owner?: string): Promise<ProvisionedInstance[]> {
    const rows = owner === undefined
      ? await this.provisionSql.all(`SELECT ${COLUMNS} FROM provisioned_instances ORDER BY instance_id`, [], "provisionedInstances")
      : await this.provisionSql.all(`SELECT ${COLUMNS} FROM provisioned_instances WHERE owner = ? ORDER BY instance_id`, [owner], "provisionedOfOwner");
    const nodes = await this.provisionSql.all("SELECT instance_id, port FROM provisioned_nodes ORDER BY instance_id, shard", [], "allProvisionedNodes");
    const byInstance = new Map<string, Row[]>();
    for (const n of nodes) {
      const list = byInstance.get(n.instance_id as string);
      if (list) list.push(n);
      else byInstance.set(n.instance_id as string, [n]);
    }
    return rows.map((r) => withNodes(toProvisioned(r), r.shape, byInstance.get(r.instance_id as string) ?? []));
  }

  async setProvisionedState(instanceId: string, from: readonly ProvisionedState[], state: ProvisionedState, owner?: string): Promise<boolean> {
    const args: unknown[] = [state, owner ?? null, instanceId];
    const cond = this.provisionSql.dialect.anyOf("state", from, "text", args);
    return (await this.provisionSql.run(`UPDATE provisioned_instances SET state = ?, owner = coalesce(?, owner) WHERE instance_id = ? AND ${cond}`, args)) === 1;
  }

  async deleteProvisioned(instanceId: string): Promise<void> {
    await this.provisionSql.run("DELETE FROM provisioned_nodes WHERE instance_id = ?", [instanceId], "deleteProvisionedNodes");
    await this.provisionSql.run("DELETE FROM provisioned_instances WHERE instance_id = ?", [instanceId], "deleteProvisioned");
  }
}
