// The PostgreSQL catalogue (pg): what several nodes share. Same tables and records as the SQLite one; the
// differences are PostgreSQL's: a connection pool, row locks for the claims nodes race for (the task queue uses
// FOR UPDATE SKIP LOCKED), named prepared statements on the hot paths, 64-bit integers read as numbers.
//
// Read caches: another node may change a credential or an instance at any time, so cached ones (and cached misses)
// live for at most `cacheTtlMs` (1 s), and this node's own writes drop them at once. That bounds how long a revoked
// key or a removed instance can still be seen by another node. Caches are bounded by bytes as well as entries.
import pg from "pg";
import { BoundedCache, roughSize } from "../bounded-cache";
import { ListingIndex } from "../listing-index";
import { Catalog, CatalogFullError, CatalogStats, CatalogTx, CatalogUnavailableError } from "../catalog";
import { BACKUP_COLUMNS, backupColumns, copyPolicy, likeEscape, Row, taskColumns, taskRow, toBackup, toCredential, toInstance, toTask } from "../rows";
import type { Backup, BackupQuery, BackupStatus, Credential, Instance, InstanceFields, Task, TaskFields, TaskQuery, TaskStatus } from "../types";
import { maskUrl } from "../../log";
import { migrations } from "./migrations";

type Queryable = Pick<pg.Pool, "query"> | pg.PoolClient;

/** 64-bit integers (BIGINT, count(*)) as numbers: every value we store is an epoch-ms time or a size below 2^53. */
const TYPES = {
  getTypeParser(oid: number, format?: string) {
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as "text");
  },
} as pg.CustomTypesConfig;

const ORDER = `ORDER BY start_time DESC, backup_id COLLATE "C" ASC`;

interface Caches {
  credentials: BoundedCache<string, { at: number; value: Credential | null }>;
  instances: BoundedCache<string, { at: number; value: Instance | null }>;
  /** Listing indexes of large instances, least recently used first (see listBackups). */
  indexes: Map<string, ListingIndex>;
  /** Builds in flight, so fifty requests arriving together build one index. */
  building: Map<string, Promise<ListingIndex | undefined>>;
  /** Instances whose index failed at a version: SQL until it changes. */
  failures: BoundedCache<string, number>;
  /** Instances found too small for an index, and when: not asked again for SMALL_TTL_MS (SQL is always right). */
  small: BoundedCache<string, number>;
}

const SMALL_TTL_MS = 10_000;

const PREFIXED_COLUMNS = BACKUP_COLUMNS.split(", ").map((c) => `b.${c}`).join(", ");

/** Maps PostgreSQL's "disk full" and connection failures to the catalogue's error types. */
function mapError(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e?.code === "53100") return new CatalogFullError(`the catalogue's disk is full: ${e.message}`);
  if (e && (/^08/.test(e.code ?? "") || ["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "57P01", "57P03"].includes(e.code ?? "") || /Connection terminated|connect ECONNREFUSED/.test(e.message ?? ""))) {
    return new CatalogUnavailableError(`the catalogue (PostgreSQL) cannot be reached: ${e.message}`);
  }
  return err;
}

/** Every catalogue operation over one queryable (the pool, or a transaction's client). */
class PgOps implements CatalogTx {
  /** Instances with at least indexThreshold backups are listed from an in-memory index; all share the budget. */
  readonly listingOptions = { indexThreshold: 2000, indexBudgetBytes: 64 * 1024 * 1024 };
  constructor(protected readonly q: Queryable, protected readonly caches: Caches | undefined, private readonly cacheTtlMs = 1000) {}

  protected async rows(text: string, values: unknown[] = [], name?: string): Promise<Row[]> {
    try {
      const r = await this.q.query<Row>(name ? { name, text, values } : { text, values });
      return r.rows;
    } catch (err) {
      throw mapError(err);
    }
  }

  protected async run(text: string, values: unknown[] = [], name?: string): Promise<number> {
    try {
      const r = await this.q.query(name ? { name, text, values } : { text, values });
      return r.rowCount ?? 0;
    } catch (err) {
      throw mapError(err);
    }
  }

  private fresh<T>(entry: { at: number; value: T } | undefined): entry is { at: number; value: T } {
    return entry !== undefined && Date.now() - entry.at < this.cacheTtlMs;
  }

  protected forget(): void {
    this.caches?.credentials.clear();
    this.caches?.instances.clear();
  }

  // --- credentials ---

  async credential(secretId: string): Promise<Credential | undefined> {
    const hit = this.caches?.credentials.get(secretId);
    let c: Credential | null;
    if (this.fresh(hit)) c = hit.value;
    else {
      const r = (await this.rows("SELECT secret_id, secret_key, account_id, token, policy FROM credentials WHERE secret_id = $1", [secretId], "credential"))[0];
      c = r ? toCredential(r) : null;
      this.caches?.credentials.set(secretId, { at: Date.now(), value: c });
    }
    return c ? { ...c, ...(c.policy ? { policy: copyPolicy(c.policy) } : {}) } : undefined;
  }

  async credentials(accountId?: string): Promise<Credential[]> {
    const rows = accountId === undefined
      ? await this.rows("SELECT secret_id, secret_key, account_id, token, policy FROM credentials ORDER BY account_id, secret_id")
      : await this.rows("SELECT secret_id, secret_key, account_id, token, policy FROM credentials WHERE account_id = $1 ORDER BY secret_id", [accountId]);
    return rows.map(toCredential);
  }

  async credentialCount(): Promise<number> {
    return Number((await this.rows("SELECT count(*) AS n FROM credentials"))[0]!.n);
  }

  async putCredential(c: Credential): Promise<void> {
    const now = Date.now();
    await this.run("INSERT INTO accounts(account_id, created_at) VALUES ($1, $2) ON CONFLICT (account_id) DO NOTHING", [c.accountId, now]);
    await this.run(`INSERT INTO credentials(secret_id, secret_key, account_id, token, policy, created_at) VALUES ($1, $2, $3, $4, $5, $6)
      ON CONFLICT (secret_id) DO UPDATE SET secret_key = EXCLUDED.secret_key, account_id = EXCLUDED.account_id, token = EXCLUDED.token, policy = EXCLUDED.policy`,
    [c.secretId, c.secretKey, c.accountId, c.token ?? null, c.policy ? JSON.stringify(c.policy) : null, now]);
    this.forget();
  }

  async deleteCredential(secretId: string): Promise<boolean> {
    const n = await this.run("DELETE FROM credentials WHERE secret_id = $1", [secretId]);
    this.forget();
    return n === 1;
  }

  // --- instances ---

  async instance(instanceId: string): Promise<Instance | undefined> {
    const hit = this.caches?.instances.get(instanceId);
    let i: Instance | null;
    if (this.fresh(hit)) i = hit.value;
    else {
      const r = (await this.rows("SELECT * FROM instances WHERE instance_id = $1", [instanceId], "instance"))[0];
      i = r ? toInstance(r) : null;
      this.caches?.instances.set(instanceId, { at: Date.now(), value: i });
    }
    return i ? { ...i, autoBackupWeekDays: [...i.autoBackupWeekDays] } : undefined;
  }

  async instances(accountId?: string): Promise<Instance[]> {
    const rows = accountId === undefined
      ? await this.rows("SELECT * FROM instances ORDER BY instance_id")
      : await this.rows("SELECT * FROM instances WHERE account_id = $1 ORDER BY instance_id", [accountId]);
    return rows.map(toInstance);
  }

  async upsertInstance(i: Instance): Promise<void> {
    await this.run("INSERT INTO accounts(account_id, created_at) VALUES ($1, $2) ON CONFLICT (account_id) DO NOTHING", [i.accountId, Date.now()]);
    await this.run(`INSERT INTO instances(instance_id, account_id, region, name, redis_url, instance_type, shard_num, redis_version, mem_size_mb, created_at,
        auto_backup_weekdays, auto_backup_period, backup_storage_days, last_auto_window, encrypt_backups) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
      ON CONFLICT (instance_id) DO UPDATE SET account_id = EXCLUDED.account_id, region = EXCLUDED.region, name = EXCLUDED.name, redis_url = EXCLUDED.redis_url,
        instance_type = EXCLUDED.instance_type, backup_storage_days = EXCLUDED.backup_storage_days, encrypt_backups = EXCLUDED.encrypt_backups, deleted_at = NULL`,
    [i.instanceId, i.accountId, i.region, i.name, i.redisUrl ?? null, i.instanceType, i.shardNum, i.redisVersion ?? null, i.memSizeMb, i.createdAt,
      i.autoBackupWeekDays.join(","), i.autoBackupPeriod, i.backupStorageDays, i.lastAutoWindow, i.encryptBackups === undefined ? null : i.encryptBackups ? 1 : 0]);
    this.forget();
  }

  async updateInstance(instanceId: string, fields: InstanceFields): Promise<void> {
    const cols: Array<[string, unknown]> = [];
    if (fields.name !== undefined) cols.push(["name", fields.name]);
    if (fields.instanceType !== undefined) cols.push(["instance_type", fields.instanceType]);
    if (fields.shardNum !== undefined) cols.push(["shard_num", fields.shardNum]);
    if (fields.redisVersion !== undefined) cols.push(["redis_version", fields.redisVersion]);
    if (fields.memSizeMb !== undefined) cols.push(["mem_size_mb", fields.memSizeMb]);
    if (fields.deletedAt !== undefined) cols.push(["deleted_at", fields.deletedAt]);
    if (fields.autoBackupWeekDays !== undefined) cols.push(["auto_backup_weekdays", fields.autoBackupWeekDays.join(",")]);
    if (fields.autoBackupPeriod !== undefined) cols.push(["auto_backup_period", fields.autoBackupPeriod]);
    if (fields.backupStorageDays !== undefined) cols.push(["backup_storage_days", fields.backupStorageDays]);
    if (fields.lastAutoWindow !== undefined) cols.push(["last_auto_window", fields.lastAutoWindow]);
    if (fields.redisUrl !== undefined) cols.push(["redis_url", fields.redisUrl]);
    if (fields.encryptBackups !== undefined) cols.push(["encrypt_backups", fields.encryptBackups === null ? null : fields.encryptBackups ? 1 : 0]);
    if (!cols.length) return;
    await this.run(`UPDATE instances SET ${cols.map(([c], i) => `${c} = $${i + 2}`).join(", ")} WHERE instance_id = $1`, [instanceId, ...cols.map(([, v]) => v)]);
    this.forget();
  }

  async lockInstance(instanceId: string): Promise<Instance | undefined> {
    const r = (await this.rows("SELECT * FROM instances WHERE instance_id = $1 FOR UPDATE", [instanceId]))[0];
    return r ? toInstance(r) : undefined;
  }

  // --- backups ---

  async backup(backupId: string): Promise<Backup | undefined> {
    const r = (await this.rows(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE backup_id = $1`, [backupId], "backup"))[0];
    return r ? toBackup(r) : undefined;
  }

  async insertBackup(b: Backup): Promise<void> {
    await this.run(`INSERT INTO backups(${BACKUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`, backupValues(b), "insertBackup");
  }

  async upsertBackup(b: Backup): Promise<void> {
    await this.run("DELETE FROM backups WHERE backup_id = $1", [b.backupId]);
    await this.insertBackup(b);
  }

  async updateBackup(backupId: string, fields: Partial<Omit<Backup, "backupId" | "instanceId">>): Promise<void> {
    const { names, cols } = backupColumns(fields);
    if (!names.length) return;
    await this.run(`UPDATE backups SET ${names.map((n, i) => `${n} = $${i + 2}`).join(", ")} WHERE backup_id = $1`, [backupId, ...names.map((n) => cols[n])]);
  }

  async transitionBackup(backupId: string, from: readonly BackupStatus[], to: BackupStatus, fields: Partial<Omit<Backup, "backupId" | "instanceId" | "status">> = {}, locked = 0): Promise<boolean> {
    const { names, cols } = backupColumns({ ...fields, status: to });
    const values = [backupId, locked, [...from], ...names.map((n) => cols[n])];
    return (await this.run(`UPDATE backups SET ${names.map((n, i) => `${n} = $${i + 4}`).join(", ")} WHERE backup_id = $1 AND locked = $2 AND status = ANY($3::int[])`, values)) === 1;
  }

  async deleteBackupRecord(backupId: string): Promise<void> {
    await this.run("DELETE FROM backups WHERE backup_id = $1", [backupId]);
  }

  /**
   * One page of an instance's backups. An instance with at least this.listingOptions.indexThreshold backups is answered
   * from an in-memory ListingIndex (as in SQLite: any offset, window or status set without an OFFSET scan): one
   * statement reads the page's rows by backup id together with the instance's listing version, so the page and
   * the version come from one snapshot; the answer is served only if the version is the index's and every row
   * still matches its keys — a change on any node bumps the version (triggers), and the index is rebuilt.
   * Smaller instances, and transactions, use SQL: counts from backup_counts, the page off the listing index.
   */
  async listBackups(q: BackupQuery): Promise<{ total: number; rows: Backup[] }> {
    const statuses = q.statuses && q.statuses.length ? [...new Set(q.statuses)].sort((a, b) => a - b) : undefined;
    if (this.caches) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const small = this.caches.small.get(q.instanceId);
        if (small !== undefined && Date.now() - small < SMALL_TTL_MS) break;
        const index = this.caches.indexes.get(q.instanceId) ?? (attempt === 0 ? undefined : await this.buildListingIndex(q.instanceId));
        if (!index) {
          if (attempt === 0) continue;
          break;
        }
        const served = await this.fromIndex(index, q, statuses);
        if (served) return served;
        this.caches.indexes.delete(q.instanceId);
      }
    }
    return this.listSql(q, statuses);
  }

  private async fromIndex(index: ListingIndex, q: BackupQuery, statuses: number[] | undefined): Promise<{ total: number; rows: Backup[] } | undefined> {
    const { total, positions } = index.pick(q.offset, q.limit, q.begin, q.end, statuses);
    const { ids, starts, statuses: st } = index.keys;
    const want = positions.map((p) => ids[p]!);
    const got = await this.rows(`SELECT v.version, ${PREFIXED_COLUMNS} FROM backup_versions v
      LEFT JOIN backups b ON b.instance_id = v.instance_id AND b.backup_id = ANY($2::text[]) WHERE v.instance_id = $1`, [q.instanceId, want], "listingPage");
    if (!got.length || Number(got[0]!.version) !== index.version) return undefined;
    const byId = new Map<unknown, Row>();
    for (const r of got) if (r.backup_id !== null) byId.set(r.backup_id, r);
    const rows: Backup[] = [];
    for (const p of positions) {
      const r = byId.get(ids[p]);
      if (!r || Number(r.start_time) !== starts[p] || Number(r.status) !== st[p]) return undefined;
      rows.push(toBackup(r));
    }
    // Most recently used last, for the budget's eviction.
    this.caches!.indexes.delete(q.instanceId);
    this.caches!.indexes.set(q.instanceId, index);
    return { total, rows };
  }

  /** The instance's listing index, when it is large enough and fits the budget; one build at a time per instance. */
  private buildListingIndex(instanceId: string): Promise<ListingIndex | undefined> {
    const c = this.caches!;
    let p = c.building.get(instanceId);
    if (!p) {
      p = (async () => {
        const counted = await this.rows("SELECT v.version, coalesce((SELECT sum(n) FROM backup_counts c WHERE c.instance_id = v.instance_id), 0) AS n FROM backup_versions v WHERE v.instance_id = $1", [instanceId], "listingSize");
        const size = Number(counted[0]?.n ?? 0);
        const version = counted[0] ? Number(counted[0].version) : undefined;
        if (version === undefined || size < this.listingOptions.indexThreshold || size * 81 > this.listingOptions.indexBudgetBytes) {
          c.small.set(instanceId, Date.now());
          return undefined;
        }
        if (c.failures.get(instanceId) === version) return undefined;
        // The version and the keys from one statement (one snapshot), so the index is labelled with what it reflects.
        const keys = await this.q.query({ text: `SELECT (SELECT version FROM backup_versions WHERE instance_id = $1) AS version, start_time, status, backup_id
          FROM backups WHERE instance_id = $1 ${ORDER}`, values: [instanceId], rowMode: "array" }).catch((err: unknown) => { throw mapError(err); });
        const raw = keys.rows as unknown[][];
        const built = raw.length ? ListingIndex.build(instanceId, Number(raw[0]![0]), raw.map((r, i) => [i, Number(r[1]), Number(r[2]), r[3]])) : undefined;
        if (!built) {
          c.failures.set(instanceId, version);
          return undefined;
        }
        let used = 0;
        for (const index of c.indexes.values()) used += index.bytes();
        for (const [id, index] of c.indexes) {
          if (used + built.bytes() <= this.listingOptions.indexBudgetBytes) break;
          used -= index.bytes();
          c.indexes.delete(id);
        }
        c.indexes.set(instanceId, built);
        return built;
      })().finally(() => c.building.delete(instanceId));
      c.building.set(instanceId, p);
    }
    return p;
  }

  private async listSql(q: BackupQuery, statuses: number[] | undefined): Promise<{ total: number; rows: Backup[] }> {
    const where = ["instance_id = $1"];
    const values: unknown[] = [q.instanceId];
    if (q.begin !== undefined) { values.push(q.begin); where.push(`start_time >= $${values.length}`); }
    if (q.end !== undefined) { values.push(q.end); where.push(`start_time <= $${values.length}`); }
    if (statuses) { values.push(statuses); where.push(`status = ANY($${values.length}::int[])`); }
    const shape = `${q.begin !== undefined ? "b" : ""}${q.end !== undefined ? "e" : ""}${statuses ? "s" : ""}`;
    // Without a time window the total comes from the per-status counts the triggers keep: never a count(*) over
    // a big instance. The total and the page in one statement: one round trip, one snapshot.
    const total = q.begin === undefined && q.end === undefined
      ? `SELECT coalesce(sum(n), 0) AS total FROM backup_counts WHERE instance_id = $1${statuses ? ` AND status = ANY($${values.length}::int[])` : ""}`
      : `SELECT count(*) AS total FROM backups WHERE ${where.join(" AND ")}`;
    const got = await this.rows(`SELECT t.total, p.* FROM (${total}) t LEFT JOIN LATERAL (SELECT ${BACKUP_COLUMNS} FROM backups
      WHERE ${where.join(" AND ")} ${ORDER} LIMIT $${values.length + 1} OFFSET $${values.length + 2}) p ON true`, [...values, q.limit, q.offset], `list_${shape}`);
    return { total: Number(got[0]!.total), rows: got.filter((r) => r.backup_id !== null).map(toBackup) };
  }

  async backupsOfInstance(instanceId: string): Promise<Backup[]> {
    return (await this.rows(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE instance_id = $1`, [instanceId])).map(toBackup);
  }

  async backupsInStatus(status: BackupStatus): Promise<Backup[]> {
    return (await this.rows(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE status = $1`, [status])).map(toBackup);
  }

  async lockedBackups(): Promise<Backup[]> {
    return (await this.rows(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE locked = 1 AND status IN (2, 4) AND fixture = 0`, [])).map(toBackup);
  }

  async expiredBackups(now: number, limit = 500): Promise<Backup[]> {
    return (await this.rows(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE status IN (2, 4) AND locked = 0 AND fixture = 0 AND expire_time IS NOT NULL AND expire_time <= $1 LIMIT $2`, [now, limit])).map(toBackup);
  }

  async purgeRetired(before: number): Promise<number> {
    return this.run("DELETE FROM backups WHERE fixture = 0 AND ((status = -2 AND deleted_at < $1) OR (status = -1 AND expire_time < $1))", [before]);
  }

  async lockBackup(backupId: string): Promise<boolean> {
    return (await this.run("UPDATE backups SET locked = 1 WHERE backup_id = $1 AND locked = 0 AND status IN (2, 4)", [backupId])) === 1;
  }

  // --- tasks ---

  async insertTask(t: Omit<Task, "taskId">): Promise<number> {
    const r = taskRow(t);
    const rows = await this.rows(`INSERT INTO tasks(instance_id, account_id, task_type, status, progress, start_time, end_time, message, backup_id, owner, lease_until, params, state)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING task_id`,
    [r.instanceId, r.accountId, r.taskType, r.status, r.progress, r.startTime, r.endTime, r.message, r.backupId, r.owner, r.leaseUntil, r.params, r.state], "insertTask");
    return Number(rows[0]!.task_id);
  }

  async task(taskId: number): Promise<Task | undefined> {
    const r = (await this.rows("SELECT * FROM tasks WHERE task_id = $1", [taskId], "task"))[0];
    return r ? toTask(r) : undefined;
  }

  async updateTask(taskId: number, fields: TaskFields): Promise<void> {
    const { names, cols } = taskColumns(fields);
    if (!names.length) return;
    await this.run(`UPDATE tasks SET ${names.map((n, i) => `${n} = $${i + 2}`).join(", ")} WHERE task_id = $1`, [taskId, ...names.map((n) => cols[n])]);
  }

  async tasksInStatus(statuses: TaskStatus[]): Promise<Task[]> {
    return (await this.rows("SELECT * FROM tasks WHERE status = ANY($1::text[]) ORDER BY task_id", [statuses])).map(toTask);
  }

  async activeTasks(instanceId: string, taskTypes: readonly string[]): Promise<Task[]> {
    return (await this.rows("SELECT * FROM tasks WHERE status IN ('preparing', 'running') AND instance_id = $1 AND task_type = ANY($2::text[]) ORDER BY task_id", [instanceId, [...taskTypes]])).map(toTask);
  }

  async listTasks(q: TaskQuery): Promise<{ total: number; rows: Array<Task & { instanceName: string }> }> {
    const where = ["t.account_id = $1"];
    const args: unknown[] = [q.accountId];
    const add = (sql: (n: string) => string, v: unknown) => { args.push(v); where.push(sql(`$${args.length}`)); };
    if (q.region !== undefined) add((n) => `i.region = ${n}`, q.region);
    if (q.instanceId !== undefined) add((n) => `t.instance_id = ${n}`, q.instanceId);
    if (q.instanceIds !== undefined) add((n) => `t.instance_id = ANY(${n}::text[])`, q.instanceIds);
    if (q.instanceName !== undefined) add((n) => `lower(i.name) LIKE ${n} ESCAPE '\\'`, `%${likeEscape(q.instanceName.toLowerCase())}%`);
    if (q.taskTypes?.length) add((n) => `t.task_type = ANY(${n}::text[])`, q.taskTypes);
    if (q.statuses?.length) add((n) => `t.status = ANY(${n}::text[])`, q.statuses);
    if (q.begin !== undefined) add((n) => `t.start_time >= ${n}`, q.begin);
    if (q.end !== undefined) add((n) => `t.start_time <= ${n}`, q.end);
    const from = `FROM tasks t JOIN instances i ON i.instance_id = t.instance_id WHERE ${where.join(" AND ")}`;
    const total = Number((await this.rows(`SELECT count(*) AS n ${from}`, args))[0]!.n);
    const rows = await this.rows(`SELECT t.*, i.name AS instance_name ${from} ORDER BY t.start_time DESC, t.task_id DESC LIMIT $${args.length + 1} OFFSET $${args.length + 2}`, [...args, q.limit, q.offset]);
    return { total, rows: rows.map((r) => ({ ...toTask(r), instanceName: r.instance_name as string })) };
  }

  // --- settings ---

  async setting(name: string): Promise<string | undefined> {
    return (await this.rows("SELECT value FROM settings WHERE name = $1", [name], "setting"))[0]?.value as string | undefined;
  }

  async putSetting(name: string, value: string): Promise<void> {
    await this.run("INSERT INTO settings(name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value", [name, value]);
  }

  async settingOnce(name: string, value: string): Promise<string> {
    await this.run("INSERT INTO settings(name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [name, value]);
    return (await this.setting(name))!;
  }
}

function backupValues(b: Backup): unknown[] {
  return [b.backupId, b.instanceId, b.startTime, b.endTime ?? null, b.backupType, b.status, b.remark, b.locked, b.backupSize, b.fullBackup, b.instanceType,
    b.fileType, b.expireTime ?? null, b.encrypted ? 1 : 0, JSON.stringify(b.files), b.deletedAt ?? null, b.fixture ? 1 : 0,
    b.kmsKeyId ?? null, b.wrappedKey ?? null];
}

export class PostgresCatalog extends PgOps implements Catalog {
  readonly kind = "postgres" as const;

  private constructor(private readonly pool: pg.Pool, private readonly url: string) {
    super(pool, {
      credentials: new BoundedCache(10_000, 4 << 20, (v) => roughSize(v.value)),
      instances: new BoundedCache(100_000, 32 << 20, (v) => roughSize(v.value)),
      indexes: new Map(),
      building: new Map(),
      failures: new BoundedCache(10_000, 1 << 20),
      small: new BoundedCache(100_000, 8 << 20),
    });
  }

  /** Connects, checks the server answers, and applies pending migrations. */
  static async open(url: string, opts: { max?: number } = {}): Promise<PostgresCatalog> {
    const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, types: TYPES, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
    // An idle client's error (server restarted) must not crash the process; the next query reconnects.
    pool.on("error", () => undefined);
    const c = new PostgresCatalog(pool, url);
    try {
      await c.migrate();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw mapError(err);
    }
    return c;
  }

  describe(): string {
    return maskUrl(this.url);
  }

  async transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw mapError(err);
    }
    try {
      await client.query("BEGIN");
      const result = await fn(new PgOps(client, undefined));
      await client.query("COMMIT");
      this.forget(); // what the transaction changed may be cached here
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw mapError(err);
    } finally {
      client.release();
    }
  }

  async migrate(): Promise<number[]> {
    const client = await this.pool.connect();
    const applied: number[] = [];
    try {
      // One node migrates at a time; the others wait, then find nothing left to do.
      await client.query("SELECT pg_advisory_lock(727274001)");
      try {
        await client.query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)");
        const done = new Set((await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map((r) => Number(r.version)));
        for (const m of migrations) {
          if (done.has(m.version)) continue;
          await client.query("BEGIN");
          try {
            await client.query(m.sql);
            await client.query("INSERT INTO schema_migrations(version, name, applied_at) VALUES ($1, $2, $3)", [m.version, m.name, Date.now()]);
            await client.query("COMMIT");
          } catch (err) {
            await client.query("ROLLBACK").catch(() => undefined);
            throw err;
          }
          applied.push(m.version);
        }
      } finally {
        await client.query("SELECT pg_advisory_unlock(727274001)");
      }
    } finally {
      client.release();
    }
    return applied;
  }

  async pendingMigrations(): Promise<number[]> {
    const done = new Set((await this.rows("SELECT version FROM schema_migrations")).map((r) => Number(r.version)));
    return migrations.map((m) => m.version).filter((v) => !done.has(v));
  }

  async ping(): Promise<void> {
    await this.rows("SELECT 1");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  // --- the task queue ---

  async claimTask(nodeId: string, taskTypes: readonly string[], leaseUntil: number, _now: number): Promise<Task | undefined> {
    // SKIP LOCKED: nodes polling at once each take a different task instead of queueing on one row.
    const r = (await this.rows(`UPDATE tasks SET owner = $1, lease_until = $2, status = 'running'
      WHERE task_id = (SELECT task_id FROM tasks WHERE status = 'preparing' AND owner IS NULL AND task_type = ANY($3::text[]) ORDER BY task_id FOR UPDATE SKIP LOCKED LIMIT 1)
      RETURNING *`, [nodeId, leaseUntil, [...taskTypes]], "claimTask"))[0];
    return r ? toTask(r) : undefined;
  }

  async claimTaskById(taskId: number, nodeId: string, leaseUntil: number, _now: number): Promise<boolean> {
    return (await this.run("UPDATE tasks SET owner = $1, lease_until = $2, status = 'running' WHERE task_id = $3 AND status = 'preparing' AND owner IS NULL", [nodeId, leaseUntil, taskId])) === 1;
  }

  async renewLease(taskId: number, nodeId: string, leaseUntil: number): Promise<boolean> {
    return (await this.run("UPDATE tasks SET lease_until = $1 WHERE task_id = $2 AND owner = $3 AND status = 'running'", [leaseUntil, taskId, nodeId], "renewLease")) === 1;
  }

  async takeOver(taskId: number, previousOwner: string | undefined, nodeId: string, leaseUntil: number, now: number, deadOwner?: string): Promise<boolean> {
    return (await this.run(`UPDATE tasks SET owner = $1, lease_until = $2 WHERE task_id = $3 AND status = 'running' AND owner IS NOT DISTINCT FROM $4
      AND (lease_until IS NULL OR lease_until < $5 OR owner = $6)`, [nodeId, leaseUntil, taskId, previousOwner ?? null, now, deadOwner ?? null])) === 1;
  }

  async stats(): Promise<CatalogStats> {
    const byStatus: Record<string, number> = {};
    let backups = 0;
    let stored = 0;
    // From the per-status counts and sizes the triggers keep: never a scan of the backups.
    for (const r of await this.rows("SELECT status, sum(n) AS n, sum(bytes) AS bytes FROM backup_counts GROUP BY status")) {
      byStatus[String(r.status)] = Number(r.n);
      backups += Number(r.n);
      if ([1, 2, 3, 4].includes(Number(r.status))) stored += Number(r.bytes);
    }
    const tasks = await this.rows("SELECT status, count(*) AS n FROM tasks WHERE status IN ('preparing', 'running') GROUP BY status");
    return {
      instances: Number((await this.rows("SELECT count(*) AS n FROM instances WHERE deleted_at IS NULL"))[0]!.n),
      backups, backupsByStatus: byStatus,
      tasksRunning: Number(tasks.find((t) => t.status === "running")?.n ?? 0),
      tasksQueued: Number(tasks.find((t) => t.status === "preparing")?.n ?? 0),
      storedBytes: stored,
    };
  }
}
