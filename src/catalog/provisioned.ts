// The catalogue's table of instances this service provisions itself (migration 9, CloneInstances): which node owns
// the process, the provider, its port and data directory, its state. The SQL is the same on both engines, written
// once here with `?` placeholders; every engine gets it through SqlOps (which extends this class).
import type { SqlExecutor } from "./dialect";
import type { Row } from "./rows";
import { StreamTables } from "./streams";
import type { ProvisionedInstance, ProvisionedState } from "./types";

/** The provisioned-instance methods of CatalogTx. */
export interface ProvisionedCatalog {
  /** Inserts a row; false when its port is taken already (the UNIQUE constraint), so the caller picks another. */
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

const COLUMNS = "instance_id, owner, provider, port, data_dir, state, task_id, created_at";

export class ProvisionedTables extends StreamTables implements ProvisionedCatalog {
  constructor(private readonly provisionSql: SqlExecutor) {
    super(provisionSql);
  }

  async insertProvisioned(p: ProvisionedInstance): Promise<boolean> {
    const n = await this.provisionSql.run(`INSERT INTO provisioned_instances(${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [p.instanceId, p.owner, p.provider, p.port, p.dataDir, p.state, p.taskId ?? null, p.createdAt], "insertProvisioned");
    return n === 1;
  }

  async provisioned(instanceId: string): Promise<ProvisionedInstance | undefined> {
    const r = (await this.provisionSql.all(`SELECT ${COLUMNS} FROM provisioned_instances WHERE instance_id = ?`, [instanceId], "provisioned"))[0];
    return r ? toProvisioned(r) : undefined;
  }

  async provisionedInstances(owner?: string): Promise<ProvisionedInstance[]> {
    const rows = owner === undefined
      ? await this.provisionSql.all(`SELECT ${COLUMNS} FROM provisioned_instances ORDER BY instance_id`, [], "provisionedInstances")
      : await this.provisionSql.all(`SELECT ${COLUMNS} FROM provisioned_instances WHERE owner = ? ORDER BY instance_id`, [owner], "provisionedOfOwner");
    return rows.map(toProvisioned);
  }

  async setProvisionedState(instanceId: string, from: readonly ProvisionedState[], state: ProvisionedState, owner?: string): Promise<boolean> {
    const args: unknown[] = [state, owner ?? null, instanceId];
    const cond = this.provisionSql.dialect.anyOf("state", from, "text", args);
    return (await this.provisionSql.run(`UPDATE provisioned_instances SET state = ?, owner = coalesce(?, owner) WHERE instance_id = ? AND ${cond}`, args)) === 1;
  }

  async deleteProvisioned(instanceId: string): Promise<void> {
    await this.provisionSql.run("DELETE FROM provisioned_instances WHERE instance_id = ?", [instanceId], "deleteProvisioned");
  }
}
