// Every catalogue operation whose SQL both engines share, written once over a SqlExecutor (dialect.ts): the
// CRUD of credentials, instances, backups, tasks and settings, the task queue's conditional claims and the
// statistics. An engine adds what is its own: how rows of a listing page are read (listPage), and its
// transactions and migrations (engine.ts). Reads here are never cached; cached.ts caches over them.
import type { CatalogStats, CatalogTx, TaskQueue } from "./catalog";
import type { MaybePromise } from "./engine";
import { ProvisionedTables } from "./provisioned";
import { SqlExecutor, updateStatement } from "./dialect";
import {
  BACKUP_COLUMNS, backupColumns, backupValues, INSTANCE_INSERT_COLUMNS, instanceColumns, instanceValues, likeEscape, Row, TASK_INSERT_COLUMNS, taskColumns,
  taskValues, toBackup, toCredential, toInstance, toTask,
} from "./rows";
import type { Backup, BackupQuery, BackupStatus, Credential, Instance, InstanceFields, Task, TaskFields, TaskQuery, TaskStatus } from "./types";

const CREDENTIAL_COLUMNS = "secret_id, secret_key, account_id, token, policy";
const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");
/** How many columns a column list names (so a column added to a list cannot leave its INSERT short). */
const columnCount = (list: string) => list.split(", ").length;

/** Status sets of a listing, sorted and deduplicated (undefined: every status). */
export function normaliseStatuses(statuses: readonly number[] | undefined): number[] | undefined {
  return statuses && statuses.length ? [...new Set(statuses)].sort((a, b) => a - b) : undefined;
}

/**
 * The second-level backup tables' methods (StreamTables) and the provisioned instances' (ProvisionedTables, which
 * extends it) come with every engine's operations, on the same executor.
 */
export abstract class SqlOps extends ProvisionedTables implements CatalogTx, TaskQueue {
  constructor(protected readonly x: SqlExecutor) {
    super(x);
  }

  /** One page of an instance's backups in listing order, and the filter's total, by SQL alone. */
  protected abstract listPage(q: BackupQuery, statuses: number[] | undefined): MaybePromise<{ total: number; rows: Backup[] }>;

  private async one(text: string, args: readonly unknown[], name?: string): Promise<Row | undefined> {
    return (await this.x.all(text, args, name))[0];
  }

  // --- credentials ---

  async credential(secretId: string): Promise<Credential | undefined> {
    const r = await this.one(`SELECT ${CREDENTIAL_COLUMNS} FROM credentials WHERE secret_id = ?`, [secretId], "credential");
    return r ? toCredential(r) : undefined;
  }

  async credentials(accountId?: string): Promise<Credential[]> {
    const rows = accountId === undefined
      ? await this.x.all(`SELECT ${CREDENTIAL_COLUMNS} FROM credentials ORDER BY account_id, secret_id`, [])
      : await this.x.all(`SELECT ${CREDENTIAL_COLUMNS} FROM credentials WHERE account_id = ? ORDER BY secret_id`, [accountId]);
    return rows.map(toCredential);
  }

  async credentialCount(): Promise<number> {
    return Number((await this.one("SELECT count(*) AS n FROM credentials", []))!.n);
  }

  private async ensureAccount(accountId: string, now: number): Promise<void> {
    await this.x.run("INSERT INTO accounts(account_id, created_at) VALUES (?, ?) ON CONFLICT (account_id) DO NOTHING", [accountId, now], "ensureAccount");
  }

  async putCredential(c: Credential): Promise<void> {
    const now = Date.now();
    await this.ensureAccount(c.accountId, now);
    await this.x.run(`INSERT INTO credentials(${CREDENTIAL_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (secret_id) DO UPDATE SET secret_key = excluded.secret_key, account_id = excluded.account_id, token = excluded.token, policy = excluded.policy`,
    [c.secretId, c.secretKey, c.accountId, c.token ?? null, c.policy ? JSON.stringify(c.policy) : null, now]);
  }

  async deleteCredential(secretId: string): Promise<boolean> {
    return (await this.x.run("DELETE FROM credentials WHERE secret_id = ?", [secretId])) === 1;
  }

  // --- instances ---

  async instance(instanceId: string): Promise<Instance | undefined> {
    const r = await this.one("SELECT * FROM instances WHERE instance_id = ?", [instanceId], "instance");
    return r ? toInstance(r) : undefined;
  }

  async instances(accountId?: string): Promise<Instance[]> {
    const rows = accountId === undefined
      ? await this.x.all("SELECT * FROM instances ORDER BY instance_id", [])
      : await this.x.all("SELECT * FROM instances WHERE account_id = ? ORDER BY instance_id", [accountId]);
    return rows.map(toInstance);
  }

  async upsertInstance(i: Instance): Promise<void> {
    await this.ensureAccount(i.accountId, Date.now());
    // Registration fields only: a re-registration (or a fixture loaded again) keeps the schedule's state.
    await this.x.run(`INSERT INTO instances(${INSTANCE_INSERT_COLUMNS}) VALUES (${placeholders(columnCount(INSTANCE_INSERT_COLUMNS))})
      ON CONFLICT (instance_id) DO UPDATE SET account_id = excluded.account_id, region = excluded.region, name = excluded.name, redis_url = excluded.redis_url, backup_source = excluded.backup_source,
        instance_type = excluded.instance_type, backup_storage_days = excluded.backup_storage_days, encrypt_backups = excluded.encrypt_backups, deleted_at = NULL`, instanceValues(i));
  }

  async updateInstance(instanceId: string, fields: InstanceFields): Promise<void> {
    const u = updateStatement("instances", instanceColumns(fields), "instance_id = ?", [instanceId]);
    if (u) await this.x.run(u.text, u.args);
  }

  async lockInstance(instanceId: string): Promise<Instance | undefined> {
    const r = await this.one(`SELECT * FROM instances WHERE instance_id = ?${this.x.dialect.forUpdate}`, [instanceId]);
    return r ? toInstance(r) : undefined;
  }

  // --- backups ---

  async backup(backupId: string): Promise<Backup | undefined> {
    const r = await this.one(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE backup_id = ?`, [backupId], "backup");
    return r ? toBackup(r) : undefined;
  }

  async insertBackup(b: Backup): Promise<void> {
    await this.x.run(`INSERT INTO backups(${BACKUP_COLUMNS}) VALUES (${placeholders(columnCount(BACKUP_COLUMNS))})`, backupValues(b), "insertBackup");
  }

  async upsertBackup(b: Backup): Promise<void> {
    await this.deleteBackupRecord(b.backupId);
    await this.insertBackup(b);
  }

  async updateBackup(backupId: string, fields: Partial<Omit<Backup, "backupId" | "instanceId">>): Promise<void> {
    const u = updateStatement("backups", backupColumns(fields), "backup_id = ?", [backupId]);
    if (u) await this.x.run(u.text, u.args);
  }

  async transitionBackup(backupId: string, from: readonly BackupStatus[], to: BackupStatus, fields: Partial<Omit<Backup, "backupId" | "instanceId" | "status">> = {}, locked = 0): Promise<boolean> {
    const where: unknown[] = [backupId, locked];
    const inFrom = this.x.dialect.anyOf("status", from, "int", where);
    const u = updateStatement("backups", backupColumns({ ...fields, status: to }), `backup_id = ? AND locked = ? AND ${inFrom}`, where)!;
    return (await this.x.run(u.text, u.args)) === 1;
  }

  async deleteBackupRecord(backupId: string): Promise<void> {
    await this.x.run("DELETE FROM backups WHERE backup_id = ?", [backupId]);
  }

  async listBackups(q: BackupQuery): Promise<{ total: number; rows: Backup[] }> {
    return this.listPage(q, normaliseStatuses(q.statuses));
  }

  private async backupsWhere(where: string, args: readonly unknown[]): Promise<Backup[]> {
    return (await this.x.all(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE ${where}`, args)).map(toBackup);
  }

  backupsOfInstance(instanceId: string): Promise<Backup[]> {
    return this.backupsWhere("instance_id = ?", [instanceId]);
  }

  backupsInStatus(status: BackupStatus): Promise<Backup[]> {
    return this.backupsWhere("status = ?", [status]);
  }

  lockedBackups(): Promise<Backup[]> {
    return this.backupsWhere("locked = 1 AND status IN (2, 4) AND fixture = 0", []);
  }

  /** Stored backups past their expiry; fixture records are static data and never expire. */
  expiredBackups(now: number, limit = 500): Promise<Backup[]> {
    return this.backupsWhere("status IN (2, 4) AND locked = 0 AND fixture = 0 AND expire_time IS NOT NULL AND expire_time <= ? LIMIT ?", [now, limit]);
  }

  purgeRetired(before: number): Promise<number> {
    return this.x.run("DELETE FROM backups WHERE fixture = 0 AND ((status = -2 AND deleted_at < ?) OR (status = -1 AND expire_time < ?))", [before, before]);
  }

  async lockBackup(backupId: string): Promise<boolean> {
    return (await this.x.run("UPDATE backups SET locked = 1 WHERE backup_id = ? AND locked = 0 AND status IN (2, 4)", [backupId])) === 1;
  }

  // --- tasks ---

  async insertTask(t: Omit<Task, "taskId">): Promise<number> {
    const r = await this.one(`INSERT INTO tasks(${TASK_INSERT_COLUMNS}) VALUES (${placeholders(columnCount(TASK_INSERT_COLUMNS))}) RETURNING task_id`, taskValues(t), "insertTask");
    return Number(r!.task_id);
  }

  async task(taskId: number): Promise<Task | undefined> {
    const r = await this.one("SELECT * FROM tasks WHERE task_id = ?", [taskId], "task");
    return r ? toTask(r) : undefined;
  }

  async updateTask(taskId: number, fields: TaskFields): Promise<void> {
    const u = updateStatement("tasks", taskColumns(fields), "task_id = ?", [taskId]);
    if (u) await this.x.run(u.text, u.args);
  }

  async updateOwnTask(taskId: number, nodeId: string, fields: TaskFields): Promise<boolean> {
    const u = updateStatement("tasks", taskColumns(fields), "task_id = ? AND owner = ? AND status = 'running'", [taskId, nodeId]);
    return u ? (await this.x.run(u.text, u.args)) === 1 : false;
  }

  async tasksInStatus(statuses: TaskStatus[]): Promise<Task[]> {
    const args: unknown[] = [];
    return (await this.x.all(`SELECT * FROM tasks WHERE ${this.x.dialect.anyOf("status", statuses, "text", args)} ORDER BY task_id`, args)).map(toTask);
  }

  async activeTasks(instanceId: string, taskTypes: readonly string[]): Promise<Task[]> {
    const args: unknown[] = [instanceId];
    const types = this.x.dialect.anyOf("task_type", taskTypes, "text", args);
    return (await this.x.all(`SELECT * FROM tasks WHERE status IN ('preparing', 'running') AND instance_id = ? AND ${types} ORDER BY task_id`, args)).map(toTask);
  }

  async listTasks(q: TaskQuery): Promise<{ total: number; rows: Array<Task & { instanceName: string }> }> {
    const d = this.x.dialect;
    const where = ["t.account_id = ?"];
    const args: unknown[] = [q.accountId];
    const add = (cond: string, v: unknown) => {
      where.push(cond);
      args.push(v);
    };
    if (q.region !== undefined) add("i.region = ?", q.region);
    if (q.instanceId !== undefined) add("t.instance_id = ?", q.instanceId);
    if (q.instanceIds !== undefined) where.push(d.anyOf("t.instance_id", q.instanceIds, "text", args));
    if (q.instanceName !== undefined) add("lower(i.name) LIKE ? ESCAPE '\\'", `%${likeEscape(q.instanceName.toLowerCase())}%`);
    if (q.taskTypes?.length) where.push(d.anyOf("t.task_type", q.taskTypes, "text", args));
    if (q.statuses?.length) where.push(d.anyOf("t.status", q.statuses, "text", args));
    if (q.begin !== undefined) add("t.start_time >= ?", q.begin);
    if (q.end !== undefined) add("t.start_time <= ?", q.end);
    const from = `FROM tasks t JOIN instances i ON i.instance_id = t.instance_id WHERE ${where.join(" AND ")}`;
    const total = Number((await this.one(`SELECT count(*) AS n ${from}`, args))!.n);
    const rows = await this.x.all(`SELECT t.*, i.name AS instance_name ${from} ORDER BY t.start_time DESC, t.task_id DESC LIMIT ? OFFSET ?`, [...args, q.limit, q.offset]);
    return { total, rows: rows.map((r) => ({ ...toTask(r), instanceName: r.instance_name as string })) };
  }

  // --- the task queue ---

  async claimTask(nodeId: string, taskTypes: readonly string[], leaseUntil: number, _now: number): Promise<Task | undefined> {
    // One statement: the sub-select and the update see one snapshot. SQLite has one writer at a time; on
    // PostgreSQL, SKIP LOCKED lets nodes polling at once each take a different task instead of queueing on one.
    const args: unknown[] = [nodeId, leaseUntil];
    const types = this.x.dialect.anyOf("task_type", taskTypes, "text", args);
    const r = await this.one(`UPDATE tasks SET owner = ?, lease_until = ?, status = 'running'
      WHERE task_id = (SELECT task_id FROM tasks WHERE status = 'preparing' AND owner IS NULL AND ${types} ORDER BY task_id LIMIT 1${this.x.dialect.forUpdateSkipLocked})
      RETURNING *`, args, "claimTask");
    return r ? toTask(r) : undefined;
  }

  async claimTaskById(taskId: number, nodeId: string, leaseUntil: number, _now: number): Promise<boolean> {
    return (await this.x.run("UPDATE tasks SET owner = ?, lease_until = ?, status = 'running' WHERE task_id = ? AND status = 'preparing' AND owner IS NULL", [nodeId, leaseUntil, taskId])) === 1;
  }

  async renewLease(taskId: number, nodeId: string, leaseUntil: number): Promise<boolean> {
    return (await this.x.run("UPDATE tasks SET lease_until = ? WHERE task_id = ? AND owner = ? AND status = 'running'", [leaseUntil, taskId, nodeId], "renewLease")) === 1;
  }

  async takeOver(taskId: number, previousOwner: string | undefined, nodeId: string, leaseUntil: number, now: number, deadOwner?: string): Promise<boolean> {
    return (await this.x.run(`UPDATE tasks SET owner = ?, lease_until = ? WHERE task_id = ? AND status = 'running' AND owner ${this.x.dialect.same} ?
      AND (lease_until IS NULL OR lease_until < ? OR owner = ?)`, [nodeId, leaseUntil, taskId, previousOwner ?? null, now, deadOwner ?? null])) === 1;
  }

  // --- settings ---

  async setting(name: string): Promise<string | undefined> {
    return (await this.one("SELECT value FROM settings WHERE name = ?", [name], "setting"))?.value as string | undefined;
  }

  async putSetting(name: string, value: string): Promise<void> {
    await this.x.run("INSERT INTO settings(name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", [name, value]);
  }

  async settingOnce(name: string, value: string): Promise<string> {
    await this.x.run("INSERT INTO settings(name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [name, value]);
    return (await this.setting(name))!;
  }

  async stats(): Promise<CatalogStats> {
    const byStatus: Record<string, number> = {};
    let backups = 0;
    let stored = 0;
    // From the per-status counts and sizes the triggers keep: never a scan of the backups.
    for (const r of await this.x.all("SELECT status, sum(n) AS n, sum(bytes) AS bytes FROM backup_counts GROUP BY status", [])) {
      byStatus[String(r.status)] = Number(r.n);
      backups += Number(r.n);
      if ([1, 2, 3, 4].includes(Number(r.status))) stored += Number(r.bytes);
    }
    const tasks = await this.x.all("SELECT status, count(*) AS n FROM tasks WHERE status IN ('preparing', 'running') GROUP BY status", []);
    return {
      instances: Number((await this.one("SELECT count(*) AS n FROM instances WHERE deleted_at IS NULL", []))!.n),
      backups, backupsByStatus: byStatus,
      tasksRunning: Number(tasks.find((t) => t.status === "running")?.n ?? 0),
      tasksQueued: Number(tasks.find((t) => t.status === "preparing")?.n ?? 0),
      storedBytes: stored,
    };
  }
}
