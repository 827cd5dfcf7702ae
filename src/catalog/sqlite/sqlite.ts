// The SQLite catalogue (better-sqlite3, WAL): the embedded default. Every statement is prepared once; listing
// statements are cached per filter shape. better-sqlite3 is synchronous, so each method does its work in one
// synchronous run and returns a settled promise; an open transaction holds every other caller back (see
// transaction()), which is what keeps an asynchronous interface over one connection atomic.
import { AsyncLocalStorage } from "node:async_hooks";
import Database from "better-sqlite3";
import fs from "node:fs";
import path from "node:path";
import { BoundedCache, roughSize } from "../bounded-cache";
import { Catalog, CatalogFullError, CatalogStats, CatalogTx } from "../catalog";
import { ListingIndex } from "../listing-index";
import { migrations } from "./migrations";
import { BACKUP_COLUMNS, backupColumns, copyPolicy, likeEscape, Row, taskColumns, taskRow, toBackup, toCredential, toInstance, toTask } from "../rows";
import type { Backup, BackupQuery, BackupStatus, Credential, Instance, InstanceFields, Policy, StoredFile, Task, TaskFields, TaskQuery, TaskStatus } from "../types";

const BACKUP_COLUMN_NAMES = BACKUP_COLUMNS.split(", ");
const COL = Object.fromEntries(BACKUP_COLUMN_NAMES.map((c, i) => [c, i])) as Record<string, number>;

/** toBackup over a raw row (columns in BACKUP_COLUMNS order from `at`), without better-sqlite3's row objects. */
function rawToBackup(r: unknown[], at: number): Backup {
  const o: Row = {};
  for (let i = 0; i < BACKUP_COLUMN_NAMES.length; i++) o[BACKUP_COLUMN_NAMES[i]!] = r[at + i];
  return toBackup(o);
}

/**
 * Rows read as SQLite json_array() text: one string per row (or page) and JSON.parse cost about two thirds of
 * better-sqlite3 handing over every value. Undefined (use the plain statement) if SQLite or the parser refuses,
 * e.g. a BLOB value; the listing index's row check catches any value JSON did not carry exactly.
 */
function parseJsonRows(read: () => string[]): unknown[][] | undefined {
  try {
    return read().map((t) => JSON.parse(t) as unknown[]);
  } catch {
    return undefined;
  }
}

interface ListingStats {
  version: number | null;
  counts: Map<number, number>;
  total: number;
}

/** The Catalog's in-memory read caches and the change markers that keep them honest (see cachesUsable). */
class ReadCaches {
  seenChanges = -1;
  seenDataVersion = -1;
  dataVersionChecked = false;
  readonly resetTick = () => {
    this.dataVersionChecked = false;
  };
  // Keyed by what callers send: bounded by bytes as well as entries (a flood of long unknown ids must not pin
  // memory). Misses are cached too (null), so unknown ids cost no query either.
  readonly credentials = new BoundedCache<string, Credential | null>(10_000, 4 << 20, roughSize);
  readonly instances = new BoundedCache<string, Instance | null>(100_000, 32 << 20, roughSize);
  readonly stats = new BoundedCache<string, ListingStats>(100_000, 16 << 20, (s) => 64 + s.counts.size * 32);
  /** Least recently used first. */
  readonly indexes = new Map<string, ListingIndex>();
  /** Instances whose index failed twice at a version (odd rows, or rows moved under it): SQL until it changes. */
  readonly failures = new BoundedCache<string, { version: number | null; n: number }>(10_000, 1 << 20);
  readonly byRowid: Array<{ raw: Database.Statement; json: Database.Statement }> = [];
  /** Rows are read as JSON text (one string per row or page, parsed by V8) unless that ever fails. */
  jsonRows = true;
}

export class SqliteCatalog implements Catalog {
  readonly kind = "sqlite" as const;
  readonly db: Database.Database;
  /** Migrations applied when this catalogue was opened. */
  readonly appliedAtOpen: number[];
  private txOpen: Promise<void> | undefined;
  private readonly txScope = new AsyncLocalStorage<Promise<void>>();
  private readonly listCache = new Map<string, { page: Database.Statement; pageJson: Database.Statement; count: Database.Statement }>();
  /**
   * DescribeInstanceBackups hot path: instances with at least `indexThreshold` backups get an in-memory listing
   * index (listing-index.ts); all indexes together stay under `indexBudgetBytes` (least recently used go first).
   */
  readonly listingOptions = { indexThreshold: 2000, indexBudgetBytes: 64 * 1024 * 1024 };
  private readonly caches = new ReadCaches();
  private readonly stmt: Record<string, Database.Statement>;

  /** Opens (creating owner-only if needed) the catalogue file and applies pending migrations. */
  constructor(readonly file: string) {
    if (file !== ":memory:") {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, "a", 0o600));
    }
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
    // REPLACE conflict resolution then fires the delete trigger too, keeping backup_counts exact (migration 2).
    this.db.pragma("recursive_triggers = ON");
    // Statement journals (every backups write runs two trigger upserts) in memory, not in temporary files:
    // without this a bulk insert of backups is about five times slower.
    this.db.pragma("temp_store = MEMORY");
    // Reads through a memory map instead of a read() system call per page missing from SQLite's 2 MB cache:
    // listing pages of random instances of a million-backup catalogue cost about 40% less.
    if (file !== ":memory:") this.db.pragma("mmap_size = 1073741824");
    if (file !== ":memory:") for (const suffix of ["-wal", "-shm"]) restrict(file + suffix);
    this.appliedAtOpen = this.runMigrations();
    const p = (sql: string) => this.db.prepare(sql);
    this.stmt = {
      credential: p("SELECT secret_id, secret_key, account_id, token, policy FROM credentials WHERE secret_id = ?"),
      credentialCount: p("SELECT count(*) AS n FROM credentials").pluck(),
      upsertAccount: p("INSERT INTO accounts(account_id, created_at) VALUES (?, ?) ON CONFLICT(account_id) DO NOTHING"),
      upsertCredential: p(`INSERT INTO credentials(secret_id, secret_key, account_id, token, policy, created_at) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(secret_id) DO UPDATE SET secret_key = excluded.secret_key, account_id = excluded.account_id, token = excluded.token, policy = excluded.policy`),
      instance: p("SELECT * FROM instances WHERE instance_id = ?"),
      instancesOf: p("SELECT * FROM instances WHERE account_id = ? ORDER BY instance_id"),
      allInstances: p("SELECT * FROM instances ORDER BY instance_id"),
      backup: p(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE backup_id = ?`),
      insertBackup: p(`INSERT INTO backups(${BACKUP_COLUMNS}) VALUES (@backupId, @instanceId, @startTime, @endTime, @backupType, @status, @remark,
        @locked, @backupSize, @fullBackup, @instanceType, @fileType, @expireTime, @encrypted, @files, @deletedAt, @fixture, @kmsKeyId, @wrappedKey)`),
      insertTask: p(`INSERT INTO tasks(instance_id, account_id, task_type, status, progress, start_time, end_time, message, backup_id, owner, lease_until, params, state)
        VALUES (@instanceId, @accountId, @taskType, @status, @progress, @startTime, @endTime, @message, @backupId, @owner, @leaseUntil, @params, @state)`),
      task: p("SELECT * FROM tasks WHERE task_id = ?"),
      setting: p("SELECT value FROM settings WHERE name = ?").pluck(),
      putSetting: p("INSERT INTO settings(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value"),
      totalChanges: p("SELECT total_changes()").pluck(),
      dataVersion: p("PRAGMA data_version").pluck(),
      listingStats: p("SELECT v.version, c.status, c.n FROM backup_versions v LEFT JOIN backup_counts c ON c.instance_id = v.instance_id WHERE v.instance_id = ?").raw(),
      listingKeys: p("SELECT rowid, start_time, status, backup_id FROM backups WHERE instance_id = ? ORDER BY start_time DESC, backup_id ASC").raw(),
    };
  }

  private runMigrations(): number[] {
    this.db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)");
    const applied = new Set(this.db.prepare("SELECT version FROM schema_migrations").pluck().all() as number[]);
    const now: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.prepare("INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)").run(m.version, m.name, Date.now());
      })();
      now.push(m.version);
    }
    return now;
  }

  describe(): string {
    return `sqlite:${this.file}`;
  }

  async migrate(): Promise<number[]> {
    while (this.blocked()) await this.txOpen;
    return this.runMigrations();
  }

  async pendingMigrations(): Promise<number[]> {
    while (this.blocked()) await this.txOpen;
    const applied = new Set(this.db.prepare("SELECT version FROM schema_migrations").pluck().all() as number[]);
    return migrations.map((m) => m.version).filter((v) => !applied.has(v));
  }

  async ping(): Promise<void> {
    while (this.blocked()) await this.txOpen;
    this.db.prepare("SELECT 1").get();
  }

  async close(): Promise<void> {
    while (this.blocked()) await this.txOpen;
    this.db.close();
  }

  // --- transactions ---

  /**
   * Whether a call must wait: a transaction is open and the caller is not inside it. better-sqlite3 has one
   * connection, so a query from another request while our BEGIN is open would silently join the transaction.
   * AsyncLocalStorage tells the transaction's own continuations apart, so code inside it may use the catalogue
   * or the tx alike. Callers check this in a loop right before their synchronous SQL, so nothing can start a
   * transaction between the check and the query.
   */
  private blocked(): boolean {
    return this.txOpen !== undefined && this.txScope.getStore() !== this.txOpen;
  }

  async transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T> {
    if (this.txOpen !== undefined && this.txScope.getStore() === this.txOpen) return fn(this); // nested: joins
    while (this.blocked()) await this.txOpen;
    let release!: () => void;
    const open = new Promise<void>((resolve) => (release = resolve));
    this.txOpen = open;
    try {
      return await this.txScope.run(open, async () => {
        await this.beginImmediate();
        try {
          const result = await fn(this);
          this.db.exec("COMMIT");
          return result;
        } catch (err) {
          if (this.db.inTransaction) this.db.exec("ROLLBACK");
          throw err;
        }
      });
    } catch (err) {
      throw full(err);
    } finally {
      this.txOpen = undefined;
      // Outside a transaction nothing needs the scope: disable() turns Node's promise hooks off again (run()
      // turns them on). Left on, every promise in the process pays for the hook, about a fifth of the API's
      // throughput on SQLite. Continuations of this transaction that outlive it keep their store and still
      // find themselves blocked() by a later transaction, whose run() re-enables the hooks.
      this.txScope.disable();
      release();
    }
  }

  /**
   * BEGIN IMMEDIATE without blocking the event loop while another connection (a CLI command, another handle)
   * holds the write lock: a busy wait inside SQLite would also stop that holder's own commit when it lives in
   * this process. Retries asynchronously for up to the usual busy timeout.
   */
  private async beginImmediate(): Promise<void> {
    const deadline = Date.now() + 5000;
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      this.db.pragma("busy_timeout = 0");
      try {
        this.db.exec("BEGIN IMMEDIATE");
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== "SQLITE_BUSY" || Date.now() > deadline) throw err;
      } finally {
        this.db.pragma("busy_timeout = 5000");
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** Runs one write, turning SQLite's "database or disk is full" into CatalogFullError. */
  private write<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw full(err);
    }
  }

  // --- accounts and credentials ---

  async credential(secretId: string): Promise<Credential | undefined> {
    while (this.blocked()) await this.txOpen;
    const usable = this.cachesUsable();
    let c = usable ? this.caches.credentials.get(secretId) : undefined;
    if (c === undefined) {
      c = this.readCredential(secretId) ?? null;
      if (usable) this.caches.credentials.set(secretId, c);
    }
    return c ? { ...c, ...(c.policy ? { policy: copyPolicy(c.policy) } : {}) } : undefined;
  }

  private readCredential(secretId: string): Credential | undefined {
    const r = this.stmt.credential!.get(secretId) as Row | undefined;
    return r ? toCredential(r) : undefined;
  }

  async credentials(accountId?: string): Promise<Credential[]> {
    while (this.blocked()) await this.txOpen;
    const rows = (accountId === undefined
      ? this.db.prepare("SELECT secret_id, secret_key, account_id, token, policy FROM credentials ORDER BY account_id, secret_id").all()
      : this.db.prepare("SELECT secret_id, secret_key, account_id, token, policy FROM credentials WHERE account_id = ? ORDER BY secret_id").all(accountId)) as Row[];
    return rows.map(toCredential);
  }

  async credentialCount(): Promise<number> {
    while (this.blocked()) await this.txOpen;
    return this.stmt.credentialCount!.get() as number;
  }

  async putCredential(c: Credential): Promise<void> {
    while (this.blocked()) await this.txOpen;
    const now = Date.now();
    this.write(() => {
      this.stmt.upsertAccount!.run(c.accountId, now);
      this.stmt.upsertCredential!.run(c.secretId, c.secretKey, c.accountId, c.token ?? null, c.policy ? JSON.stringify(c.policy) : null, now);
    });
  }

  async deleteCredential(secretId: string): Promise<boolean> {
    while (this.blocked()) await this.txOpen;
    return this.write(() => this.db.prepare("DELETE FROM credentials WHERE secret_id = ?").run(secretId).changes === 1);
  }

  private ensureAccount(accountId: string): void {
    this.stmt.upsertAccount!.run(accountId, Date.now());
  }

  // --- instances ---

  async instance(instanceId: string): Promise<Instance | undefined> {
    while (this.blocked()) await this.txOpen;
    return this.cachedInstance(instanceId);
  }

  private cachedInstance(instanceId: string): Instance | undefined {
    const usable = this.cachesUsable();
    let i = usable ? this.caches.instances.get(instanceId) : undefined;
    if (i === undefined) {
      const r = this.stmt.instance!.get(instanceId) as Row | undefined;
      i = r ? toInstance(r) : null;
      if (usable) this.caches.instances.set(instanceId, i);
    }
    return i ? { ...i, autoBackupWeekDays: [...i.autoBackupWeekDays] } : undefined;
  }

  async instances(accountId?: string): Promise<Instance[]> {
    while (this.blocked()) await this.txOpen;
    const rows = (accountId === undefined ? this.stmt.allInstances!.all() : this.stmt.instancesOf!.all(accountId)) as Row[];
    return rows.map(toInstance);
  }

  async lockInstance(instanceId: string): Promise<Instance | undefined> {
    // Every write transaction here is BEGIN IMMEDIATE: it already excludes every other writer.
    return this.instance(instanceId);
  }

  async updateInstance(instanceId: string, fields: InstanceFields): Promise<void> {
    while (this.blocked()) await this.txOpen;
    const cols: Record<string, unknown> = {};
    if (fields.name !== undefined) cols.name = fields.name;
    if (fields.instanceType !== undefined) cols.instance_type = fields.instanceType;
    if (fields.shardNum !== undefined) cols.shard_num = fields.shardNum;
    if (fields.redisVersion !== undefined) cols.redis_version = fields.redisVersion;
    if (fields.memSizeMb !== undefined) cols.mem_size_mb = fields.memSizeMb;
    if (fields.deletedAt !== undefined) cols.deleted_at = fields.deletedAt;
    if (fields.autoBackupWeekDays !== undefined) cols.auto_backup_weekdays = fields.autoBackupWeekDays.join(",");
    if (fields.autoBackupPeriod !== undefined) cols.auto_backup_period = fields.autoBackupPeriod;
    if (fields.backupStorageDays !== undefined) cols.backup_storage_days = fields.backupStorageDays;
    if (fields.lastAutoWindow !== undefined) cols.last_auto_window = fields.lastAutoWindow;
    if (fields.redisUrl !== undefined) cols.redis_url = fields.redisUrl;
    if (fields.encryptBackups !== undefined) cols.encrypt_backups = fields.encryptBackups === null ? null : fields.encryptBackups ? 1 : 0;
    const names = Object.keys(cols);
    if (!names.length) return;
    this.write(() => this.db.prepare(`UPDATE instances SET ${names.map((n) => `${n} = @${n}`).join(", ")} WHERE instance_id = @id`).run({ ...cols, id: instanceId }));
  }

  async upsertInstance(i: Instance): Promise<void> {
    while (this.blocked()) await this.txOpen;
    this.write(() => {
      this.ensureAccount(i.accountId);
      // Registration fields only: a re-registration (or a fixture loaded again) keeps the schedule's state.
      this.db.prepare(`INSERT INTO instances(instance_id, account_id, region, name, redis_url, instance_type, shard_num, redis_version, mem_size_mb, created_at,
          auto_backup_weekdays, auto_backup_period, backup_storage_days, last_auto_window, encrypt_backups) VALUES
          (@instanceId, @accountId, @region, @name, @redisUrl, @instanceType, @shardNum, @redisVersion, @memSizeMb, @createdAt, @weekdays, @autoBackupPeriod, @backupStorageDays, @lastAutoWindow, @encryptBackups)
        ON CONFLICT(instance_id) DO UPDATE SET account_id = excluded.account_id, region = excluded.region, name = excluded.name, redis_url = excluded.redis_url,
          instance_type = excluded.instance_type, backup_storage_days = excluded.backup_storage_days, encrypt_backups = excluded.encrypt_backups, deleted_at = NULL`)
        .run({ ...i, redisUrl: i.redisUrl ?? null, redisVersion: i.redisVersion ?? null, weekdays: i.autoBackupWeekDays.join(","), encryptBackups: i.encryptBackups === undefined ? null : i.encryptBackups ? 1 : 0 });
    });
  }

  // --- backups ---

  async backup(backupId: string): Promise<Backup | undefined> {
    while (this.blocked()) await this.txOpen;
    const r = this.stmt.backup!.get(backupId) as Row | undefined;
    return r ? toBackup(r) : undefined;
  }

  async insertBackup(b: Backup): Promise<void> {
    while (this.blocked()) await this.txOpen;
    this.write(() => this.insertBackupRow(b));
  }

  private insertBackupRow(b: Backup): void {
    this.stmt.insertBackup!.run({
      ...b,
      endTime: b.endTime ?? null,
      expireTime: b.expireTime ?? null,
      deletedAt: b.deletedAt ?? null,
      encrypted: b.encrypted ? 1 : 0,
      fixture: b.fixture ? 1 : 0,
      files: JSON.stringify(b.files),
      kmsKeyId: b.kmsKeyId ?? null,
      wrappedKey: b.wrappedKey ?? null,
    });
  }

  async upsertBackup(b: Backup): Promise<void> {
    while (this.blocked()) await this.txOpen;
    this.write(() => {
      this.db.prepare("DELETE FROM backups WHERE backup_id = ?").run(b.backupId);
      this.insertBackupRow(b);
    });
  }

  async updateBackup(backupId: string, fields: Partial<Omit<Backup, "backupId" | "instanceId">>): Promise<void> {
    while (this.blocked()) await this.txOpen;
    const { names, cols } = backupColumns(fields);
    if (!names.length) return;
    this.write(() => this.db.prepare(`UPDATE backups SET ${names.map((n) => `${n} = @${n}`).join(", ")} WHERE backup_id = @id`).run({ ...cols, id: backupId }));
  }

  async transitionBackup(backupId: string, from: readonly BackupStatus[], to: BackupStatus, fields: Partial<Omit<Backup, "backupId" | "instanceId" | "status">> = {}, locked = 0): Promise<boolean> {
    while (this.blocked()) await this.txOpen;
    const { names, cols } = backupColumns({ ...fields, status: to });
    const sql = `UPDATE backups SET ${names.map((n) => `${n} = @${n}`).join(", ")} WHERE backup_id = @id AND locked = @expectLocked AND status IN (${from.map((_, i) => `@from${i}`).join(", ")})`;
    const args: Record<string, unknown> = { ...cols, id: backupId, expectLocked: locked };
    from.forEach((st, i) => (args[`from${i}`] = st));
    return this.write(() => this.db.prepare(sql).run(args).changes === 1);
  }

  async deleteBackupRecord(backupId: string): Promise<void> {
    while (this.blocked()) await this.txOpen;
    this.write(() => this.db.prepare("DELETE FROM backups WHERE backup_id = ?").run(backupId));
  }

  /**
   * One page of an instance's backups, newest first (ties by BackupId ascending), and the total count.
   * Fast paths (outside transactions only): TotalCount without a time window comes from backup_counts; an
   * instance with at least listingOptions.indexThreshold backups is answered from an in-memory ListingIndex
   * (any offset, window or status set in O(log n + page)), validated against backup_versions and re-checked row
   * by row; smaller instances read the page straight off the covering index. Everything else is plain SQL.
   */
  async listBackups(q: BackupQuery): Promise<{ total: number; rows: Backup[] }> {
    while (this.blocked()) await this.txOpen;
    return this.list(q);
  }

  private list(q: BackupQuery): { total: number; rows: Backup[] } {
    const statuses = q.statuses && q.statuses.length ? [...new Set(q.statuses)].sort((a, b) => a - b) : undefined;
    if (this.cachesUsable()) {
      const stats = this.listingStats(q.instanceId);
      if (stats.total >= this.listingOptions.indexThreshold) {
        const index = this.listingIndex(q.instanceId, stats);
        if (index) {
          const { total, positions } = index.pick(q.offset, q.limit, q.begin, q.end, statuses);
          const rows = this.rowsAt(index, positions);
          if (rows) return { total, rows };
          // A row changed under the index (a commit raced this request, or VACUUM renumbered rowids): forget it
          // and answer from SQL.
          this.dropListingIndex(q.instanceId);
          this.indexFailed(q.instanceId, index.version);
        }
      } else if (q.begin === undefined && q.end === undefined) {
        let total = stats.total;
        if (statuses) {
          total = 0;
          for (const st of statuses) total += stats.counts.get(st) ?? 0;
        }
        return { total, rows: total > q.offset ? this.pageSql(q, statuses) : [] };
      }
    }
    const total = q.begin === undefined && q.end === undefined ? this.countSql(q.instanceId, statuses) : this.windowCountSql(q, statuses);
    return { total, rows: total > q.offset ? this.pageSql(q, statuses) : [] };
  }

  /** Statements for one filter shape: the page, read in index order, and the windowed count. */
  private listStatements(q: BackupQuery, statuses: number[] | undefined): { page: Database.Statement; pageJson: Database.Statement; count: Database.Statement } {
    const shape = `${q.begin !== undefined ? "b" : ""}${q.end !== undefined ? "e" : ""}${statuses ? statuses.length : 0}`;
    let s = this.listCache.get(shape);
    if (!s) {
      const where = ["instance_id = ?"];
      if (q.begin !== undefined) where.push("start_time >= ?");
      if (q.end !== undefined) where.push("start_time <= ?");
      if (statuses) where.push(`status IN (${statuses.map(() => "?").join(", ")})`);
      const w = where.join(" AND ");
      // Walks backups_listing in order (no temporary B-tree); a skipped row is never read from the table.
      const order = `FROM backups WHERE ${w} ORDER BY start_time DESC, backup_id ASC LIMIT ? OFFSET ?`;
      s = {
        page: this.db.prepare(`SELECT ${BACKUP_COLUMNS} ${order}`).raw(),
        pageJson: this.db.prepare(`SELECT json_array(${BACKUP_COLUMNS}) ${order}`).pluck(),
        count: this.db.prepare(`SELECT count(*) FROM backups WHERE ${w}`).pluck(),
      };
      this.listCache.set(shape, s);
    }
    return s;
  }

  private listArgs(q: BackupQuery, statuses: number[] | undefined): unknown[] {
    const args: unknown[] = [q.instanceId];
    if (q.begin !== undefined) args.push(q.begin);
    if (q.end !== undefined) args.push(q.end);
    if (statuses) args.push(...statuses);
    return args;
  }

  private pageSql(q: BackupQuery, statuses: number[] | undefined): Backup[] {
    const s = this.listStatements(q, statuses);
    const args = [...this.listArgs(q, statuses), q.limit, q.offset];
    const rows = this.caches.jsonRows ? parseJsonRows(() => s.pageJson.all(...args) as string[]) : undefined;
    return (rows ?? (s.page.all(...args) as unknown[][])).map((r) => rawToBackup(r, 0));
  }

  private windowCountSql(q: BackupQuery, statuses: number[] | undefined): number {
    return this.listStatements(q, statuses).count.get(...this.listArgs(q, statuses)) as number;
  }

  private countSql(instanceId: string, statuses: number[] | undefined): number {
    const key = `counts${statuses ? statuses.length : 0}`;
    let s = this.listCache.get(key);
    if (!s) {
      const w = statuses ? ` AND status IN (${statuses.map(() => "?").join(", ")})` : "";
      const count = this.db.prepare(`SELECT coalesce(sum(n), 0) FROM backup_counts WHERE instance_id = ?${w}`).pluck();
      s = { page: count, pageJson: count, count };
      this.listCache.set(key, s);
    }
    return s.count.get(instanceId, ...(statuses ?? [])) as number;
  }

  /**
   * True when the in-memory read caches may be used, after dropping whatever may be stale: this connection's
   * writes show in total_changes(), other connections' and processes' commits in PRAGMA data_version. The
   * latter is read once per synchronous run of JavaScript (reset by a microtask), so every request sees every
   * commit made before it started. Inside a transaction the caches are bypassed (a rollback would not show).
   */
  private cachesUsable(): boolean {
    if (this.db.inTransaction) return false;
    const c = this.caches;
    const changes = this.stmt.totalChanges!.get() as number;
    let changed = changes !== c.seenChanges;
    if (!c.dataVersionChecked) {
      const dv = this.stmt.dataVersion!.get() as number;
      if (dv !== c.seenDataVersion) {
        c.seenDataVersion = dv;
        changed = true;
      }
      c.dataVersionChecked = true;
      queueMicrotask(c.resetTick);
    }
    if (changed) {
      c.seenChanges = changes;
      this.invalidateCaches();
    }
    return true;
  }

  /** Drops cached credentials and instances and makes listing indexes re-validate before their next use. */
  invalidateCaches(): void {
    const c = this.caches;
    c.credentials.clear();
    c.instances.clear();
    c.stats.clear();
  }

  /** Counts per status and the listing version of an instance, cached until the database changes. */
  private listingStats(instanceId: string): ListingStats {
    const c = this.caches;
    let s = c.stats.get(instanceId);
    if (s) return s;
    const rows = this.stmt.listingStats!.all(instanceId) as unknown[][];
    s = { version: rows.length ? (rows[0]![0] as number) : null, counts: new Map(), total: 0 };
    for (const r of rows) {
      if (r[1] === null) continue;
      s.counts.set(r[1] as number, r[2] as number);
      s.total += r[2] as number;
    }
    c.stats.set(instanceId, s);
    return s;
  }

  /** The instance's listing index at the current version, built (from the covering index) if needed. */
  private listingIndex(instanceId: string, stats: ListingStats): ListingIndex | undefined {
    const c = this.caches;
    const have = c.indexes.get(instanceId);
    if (have && have.version === stats.version && stats.version !== null) {
      c.indexes.delete(instanceId); // most recently used last
      c.indexes.set(instanceId, have);
      return have;
    }
    if (have) this.dropListingIndex(instanceId);
    const budget = this.listingOptions.indexBudgetBytes;
    if (stats.total * 81 > budget) return undefined;
    const failed = c.failures.get(instanceId);
    if (failed && failed.version === stats.version && failed.n >= 2) return undefined;
    // Version and keys from one read snapshot, so the index is labelled with the version it reflects.
    const built = this.db.transaction(() => {
      const version = (this.stmt.listingStats!.all(instanceId) as unknown[][])[0]?.[0] as number | undefined;
      if (version === undefined || version !== stats.version) return undefined;
      return ListingIndex.build(instanceId, version, this.stmt.listingKeys!.all(instanceId) as unknown[][]);
    })();
    if (!built) {
      this.indexFailed(instanceId, stats.version);
      return undefined;
    }
    // Status-set arrays grow after an index is built, so the sum is taken afresh (there are few indexes).
    let used = 0;
    for (const index of c.indexes.values()) used += index.bytes();
    for (const [id, index] of c.indexes) {
      if (used + built.bytes() <= budget) break;
      used -= index.bytes();
      c.indexes.delete(id);
    }
    c.indexes.set(instanceId, built);
    return built;
  }

  private indexFailed(instanceId: string, version: number | null): void {
    const f = this.caches.failures.get(instanceId);
    if (f && f.version === version) f.n++;
    else this.caches.failures.set(instanceId, { version, n: 1 });
  }

  private dropListingIndex(instanceId: string): void {
    this.caches.indexes.delete(instanceId);
  }

  /** The rows at the given index positions, read by rowid; undefined if any no longer matches the index. */
  private rowsAt(index: ListingIndex, positions: number[]): Backup[] | undefined {
    const out: Backup[] = [];
    const { rowids, starts, statuses, ids } = index.keys;
    for (let from = 0; from < positions.length; from += 100) {
      const chunk = positions.slice(from, from + 100);
      const k = chunk.length;
      let stmt = this.caches.byRowid[k];
      if (!stmt) {
        const list = `(${"?, ".repeat(k - 1)}?)`;
        stmt = {
          raw: this.db.prepare(`SELECT rowid, ${BACKUP_COLUMNS} FROM backups WHERE rowid IN ${list}`).raw(),
          json: this.db.prepare(`SELECT json_group_array(json_array(rowid, ${BACKUP_COLUMNS})) FROM backups WHERE rowid IN ${list}`).pluck(),
        };
        this.caches.byRowid[k] = stmt;
      }
      const args = chunk.map((p) => rowids[p]!);
      const s = stmt;
      const raw = (this.caches.jsonRows ? parseJsonRows(() => [s.json.get(...args) as string])?.[0] as unknown[][] | undefined : undefined) ??
        (s.raw.all(...args) as unknown[][]);
      if (raw.length !== k) return undefined;
      const byRowid = new Map<unknown, unknown[]>();
      for (const r of raw) byRowid.set(r[0], r);
      for (const p of chunk) {
        const r = byRowid.get(rowids[p]!);
        if (!r || r[1 + COL.backup_id] !== ids[p] || r[1 + COL.instance_id] !== index.instanceId || r[1 + COL.start_time] !== starts[p] || r[1 + COL.status] !== statuses[p]) {
          return undefined;
        }
        out.push(rawToBackup(r, 1));
      }
    }
    return out;
  }

  /** Stored backups past their expiry; fixture records are static data and never expire. */
  async expiredBackups(now: number, limit = 500): Promise<Backup[]> {
    while (this.blocked()) await this.txOpen;
    return (this.db.prepare(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE status IN (2, 4) AND locked = 0 AND fixture = 0 AND expire_time IS NOT NULL AND expire_time <= ? LIMIT ?`).all(now, limit) as Row[]).map(toBackup);
  }

  async purgeRetired(before: number): Promise<number> {
    while (this.blocked()) await this.txOpen;
    return this.write(() => this.db.prepare("DELETE FROM backups WHERE fixture = 0 AND ((status = -2 AND deleted_at < ?) OR (status = -1 AND expire_time < ?))").run(before, before).changes);
  }

  async backupsInStatus(status: BackupStatus): Promise<Backup[]> {
    while (this.blocked()) await this.txOpen;
    return (this.db.prepare(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE status = ?`).all(status) as Row[]).map(toBackup);
  }

  async lockedBackups(): Promise<Backup[]> {
    while (this.blocked()) await this.txOpen;
    return (this.db.prepare(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE locked = 1 AND status IN (2, 4) AND fixture = 0`).all() as Row[]).map(toBackup);
  }

  async backupsOfInstance(instanceId: string): Promise<Backup[]> {
    while (this.blocked()) await this.txOpen;
    return (this.db.prepare(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE instance_id = ?`).all(instanceId) as Row[]).map(toBackup);
  }

  async lockBackup(backupId: string): Promise<boolean> {
    while (this.blocked()) await this.txOpen;
    return this.write(() => this.db.prepare("UPDATE backups SET locked = 1 WHERE backup_id = ? AND locked = 0 AND status IN (2, 4)").run(backupId).changes === 1);
  }

  // --- tasks ---

  async insertTask(t: Omit<Task, "taskId">): Promise<number> {
    while (this.blocked()) await this.txOpen;
    const info = this.write(() => this.stmt.insertTask!.run(taskRow(t)));
    return Number(info.lastInsertRowid);
  }

  async task(taskId: number): Promise<Task | undefined> {
    while (this.blocked()) await this.txOpen;
    const r = this.stmt.task!.get(taskId) as Row | undefined;
    return r ? toTask(r) : undefined;
  }

  async updateTask(taskId: number, fields: TaskFields): Promise<void> {
    while (this.blocked()) await this.txOpen;
    const { names, cols } = taskColumns(fields);
    if (!names.length) return;
    this.write(() => this.db.prepare(`UPDATE tasks SET ${names.map((n) => `${n} = @${n}`).join(", ")} WHERE task_id = @id`).run({ ...cols, id: taskId }));
  }

  async tasksInStatus(statuses: TaskStatus[]): Promise<Task[]> {
    while (this.blocked()) await this.txOpen;
    return (this.db.prepare(`SELECT * FROM tasks WHERE status IN (${statuses.map(() => "?").join(",")}) ORDER BY task_id`).all(...statuses) as Row[]).map(toTask);
  }

  async activeTasks(instanceId: string, taskTypes: readonly string[]): Promise<Task[]> {
    while (this.blocked()) await this.txOpen;
    const rows = this.db.prepare(`SELECT * FROM tasks WHERE status IN ('preparing', 'running') AND instance_id = ? AND task_type IN (${taskTypes.map(() => "?").join(",")}) ORDER BY task_id`)
      .all(instanceId, ...taskTypes) as Row[];
    return rows.map(toTask);
  }

  async listTasks(q: TaskQuery): Promise<{ total: number; rows: Array<Task & { instanceName: string }> }> {
    while (this.blocked()) await this.txOpen;
    const where = ["t.account_id = ?"];
    const args: unknown[] = [q.accountId];
    if (q.region !== undefined) { where.push("i.region = ?"); args.push(q.region); }
    if (q.instanceId !== undefined) { where.push("t.instance_id = ?"); args.push(q.instanceId); }
    if (q.instanceIds !== undefined) { where.push(`t.instance_id IN (${q.instanceIds.map(() => "?").join(",") || "NULL"})`); args.push(...q.instanceIds); }
    if (q.instanceName !== undefined) { where.push("lower(i.name) LIKE ? ESCAPE '\\'"); args.push(`%${likeEscape(q.instanceName.toLowerCase())}%`); }
    if (q.taskTypes?.length) { where.push(`t.task_type IN (${q.taskTypes.map(() => "?").join(",")})`); args.push(...q.taskTypes); }
    if (q.statuses?.length) { where.push(`t.status IN (${q.statuses.map(() => "?").join(",")})`); args.push(...q.statuses); }
    if (q.begin !== undefined) { where.push("t.start_time >= ?"); args.push(q.begin); }
    if (q.end !== undefined) { where.push("t.start_time <= ?"); args.push(q.end); }
    const from = `FROM tasks t JOIN instances i ON i.instance_id = t.instance_id WHERE ${where.join(" AND ")}`;
    const total = this.db.prepare(`SELECT count(*) ${from}`).pluck().get(...args) as number;
    const rows = this.db.prepare(`SELECT t.*, i.name AS instance_name ${from} ORDER BY t.start_time DESC, t.task_id DESC LIMIT ? OFFSET ?`).all(...args, q.limit, q.offset) as Row[];
    return { total, rows: rows.map((r) => ({ ...toTask(r), instanceName: r.instance_name as string })) };
  }

  // --- the task queue ---

  async claimTask(nodeId: string, taskTypes: readonly string[], leaseUntil: number, _now: number): Promise<Task | undefined> {
    while (this.blocked()) await this.txOpen;
    // One statement: the sub-select and the update see the same snapshot, and SQLite has one writer at a time.
    const r = this.write(() => this.db.prepare(`UPDATE tasks SET owner = ?, lease_until = ?, status = 'running'
      WHERE task_id = (SELECT task_id FROM tasks WHERE status = 'preparing' AND owner IS NULL AND task_type IN (${taskTypes.map(() => "?").join(",")}) ORDER BY task_id LIMIT 1)
      RETURNING *`).get(nodeId, leaseUntil, ...taskTypes)) as Row | undefined;
    return r ? toTask(r) : undefined;
  }

  async claimTaskById(taskId: number, nodeId: string, leaseUntil: number, _now: number): Promise<boolean> {
    while (this.blocked()) await this.txOpen;
    return this.write(() => this.db.prepare("UPDATE tasks SET owner = ?, lease_until = ?, status = 'running' WHERE task_id = ? AND status = 'preparing' AND owner IS NULL")
      .run(nodeId, leaseUntil, taskId).changes === 1);
  }

  async renewLease(taskId: number, nodeId: string, leaseUntil: number): Promise<boolean> {
    while (this.blocked()) await this.txOpen;
    return this.write(() => this.db.prepare("UPDATE tasks SET lease_until = ? WHERE task_id = ? AND owner = ? AND status = 'running'").run(leaseUntil, taskId, nodeId).changes === 1);
  }

  async takeOver(taskId: number, previousOwner: string | undefined, nodeId: string, leaseUntil: number, now: number, deadOwner?: string): Promise<boolean> {
    while (this.blocked()) await this.txOpen;
    return this.write(() => this.db.prepare("UPDATE tasks SET owner = ?, lease_until = ? WHERE task_id = ? AND status = 'running' AND owner IS ? AND (lease_until IS NULL OR lease_until < ? OR owner = ?)")
      .run(nodeId, leaseUntil, taskId, previousOwner ?? null, now, deadOwner ?? null).changes === 1);
  }

  // --- settings ---

  async setting(name: string): Promise<string | undefined> {
    while (this.blocked()) await this.txOpen;
    return this.stmt.setting!.get(name) as string | undefined;
  }

  async putSetting(name: string, value: string): Promise<void> {
    while (this.blocked()) await this.txOpen;
    this.write(() => this.stmt.putSetting!.run(name, value));
  }

  async settingOnce(name: string, value: string): Promise<string> {
    while (this.blocked()) await this.txOpen;
    this.write(() => this.db.prepare("INSERT INTO settings(name, value) VALUES (?, ?) ON CONFLICT(name) DO NOTHING").run(name, value));
    return this.stmt.setting!.get(name) as string;
  }

  async stats(): Promise<CatalogStats> {
    while (this.blocked()) await this.txOpen;
    const byStatus: Record<string, number> = {};
    let backups = 0;
    let stored = 0;
    // From the per-status counts and sizes the triggers keep: never a scan of the backups.
    for (const r of this.db.prepare("SELECT status, sum(n) AS n, sum(bytes) AS bytes FROM backup_counts GROUP BY status").all() as Row[]) {
      byStatus[String(r.status)] = Number(r.n);
      backups += Number(r.n);
      if ([1, 2, 3, 4].includes(Number(r.status))) stored += Number(r.bytes);
    }
    const tasks = this.db.prepare("SELECT status, count(*) AS n FROM tasks WHERE status IN ('preparing', 'running') GROUP BY status").all() as Row[];
    return {
      instances: this.db.prepare("SELECT count(*) FROM instances WHERE deleted_at IS NULL").pluck().get() as number,
      backups, backupsByStatus: byStatus,
      tasksRunning: Number(tasks.find((t) => t.status === "running")?.n ?? 0),
      tasksQueued: Number(tasks.find((t) => t.status === "preparing")?.n ?? 0),
      storedBytes: stored,
    };
  }
}

/** SQLite's SQLITE_FULL (and the OS's ENOSPC under it) as a CatalogFullError; anything else as is. */
function full(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e && (e.code === "SQLITE_FULL" || /database or disk is full/i.test(e.message ?? ""))) return new CatalogFullError(`the catalogue's disk is full: ${e.message}`);
  return err;
}

function restrict(file: string): void {
  try {
    fs.chmodSync(file, 0o600);
  } catch {
    // The WAL files appear on first write; SQLite creates them with the main file's mode.
  }
}
