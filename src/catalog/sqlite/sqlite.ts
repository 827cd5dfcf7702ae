// The SQLite engine (better-sqlite3, WAL): the embedded default. The operations both engines share are
// sql-ops.ts over an executor that prepares each statement once; here are SQLite's own: the connection and its
// pragmas, transactions, the listing's SQL (statements per filter shape, rows read as JSON text) and the
// listing index's primitives (rows read back by rowid). better-sqlite3 is synchronous, so each call does its
// work in one synchronous run; an open transaction holds every other caller back (the gate), which is what
// keeps an asynchronous interface over one connection atomic. SqliteCatalog is the cache (cached.ts) over it.
import Database from "better-sqlite3";
import fs from "node:fs";
import path from "node:path";
import { LRUCache } from "lru-cache";
import { CatalogFullError, CatalogMisuseError, CatalogTx } from "../catalog";
import { CachedCatalog } from "../cached";
import { sqliteDialect, SqlExecutor } from "../dialect";
import type { CatalogEngine, ListingSize, MaybePromise } from "../engine";
import { ListingIndex } from "../listing-index";
import { HISTORY_TABLE, pendingVersions, RECORD_MIGRATION, runMigrations } from "../migrator";
import { BACKUP_COLUMNS, Row, toBackup } from "../rows";
import { SqlOps } from "../sql-ops";
import type { Backup, BackupQuery } from "../types";
import { migrations } from "./migrations";

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

/** SQLite's SQLITE_FULL (and the OS's ENOSPC under it) as a CatalogFullError; anything else as is. */
function full(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e && (e.code === "SQLITE_FULL" || /database or disk is full/i.test(e.message ?? ""))) return new CatalogFullError(`the catalogue's disk is full: ${e.message}`);
  return err;
}

/** While a transaction is open, `open` is the promise that settles when it ends. */
interface Gate {
  open: Promise<void> | undefined;
}

/** What the connection's operations share: the connection and its prepared statements. */
class Connection {
  readonly statements = new LRUCache<string, Database.Statement>({ max: 1000 });
  readonly listCache = new Map<string, { page: Database.Statement; pageJson: Database.Statement; count: Database.Statement }>();
  readonly byRowid: Array<{ raw: Database.Statement; json: Database.Statement }> = [];
  /** Rows are read as JSON text (one string per row or page, parsed by V8) unless that ever fails. */
  jsonRows = true;
  readonly gate: Gate = { open: undefined };

  constructor(readonly db: Database.Database) {}

  prepare(text: string): Database.Statement {
    let s = this.statements.get(text);
    if (!s) {
      s = this.db.prepare(text);
      this.statements.set(text, s);
    }
    return s;
  }
}

/**
 * Runs statements on the connection. The outer executor waits while a transaction is open (a query from another
 * request would otherwise silently join it); a transaction's own executor runs at once, and refuses once its
 * transaction has ended.
 */
class SqliteExecutor implements SqlExecutor {
  readonly dialect = sqliteDialect;

  constructor(readonly c: Connection, private readonly tx?: { active: boolean }) {}

  /** Waits for an open transaction (outer executor), or checks the transaction is still open (its own). */
  async ready(): Promise<void> {
    if (this.tx) {
      if (!this.tx.active) throw new CatalogMisuseError("a transaction's tx was used after its transaction ended");
      return;
    }
    while (this.c.gate.open) await this.c.gate.open;
  }

  /** Whether a call must wait first (checked right before synchronous SQL, so nothing starts in between). */
  blocked(): boolean {
    return this.tx ? !this.tx.active : this.c.gate.open !== undefined;
  }

  async all(text: string, args: readonly unknown[]): Promise<Row[]> {
    while (this.blocked()) await this.ready();
    try {
      const s = this.c.prepare(text);
      if (s.reader) return s.all(...args) as Row[];
      s.run(...args);
      return [];
    } catch (err) {
      throw full(err);
    }
  }

  async run(text: string, args: readonly unknown[]): Promise<number> {
    while (this.blocked()) await this.ready();
    try {
      return this.c.prepare(text).run(...args).changes;
    } catch (err) {
      throw full(err);
    }
  }
}

/** The shared operations plus SQLite's listing SQL, over one executor (the outer one or a transaction's). */
class SqliteOps extends SqlOps {
  constructor(protected readonly exec: SqliteExecutor) {
    super(exec);
  }

  protected get c(): Connection {
    return this.exec.c;
  }

  /**
   * A page by SQL, read off the covering index backups_listing in order. TotalCount without a time window comes
   * from backup_counts, or from `size` when it is still exact (no write on this connection since it was read).
   */
  listPage(q: BackupQuery, statuses: number[] | undefined, size?: ListingSize): MaybePromise<{ total: number; rows: Backup[] }> {
    if (this.exec.blocked()) return this.exec.ready().then(() => this.listPage(q, statuses, size));
    const noWindow = q.begin === undefined && q.end === undefined;
    let total: number;
    if (noWindow && size && size.mark === this.totalChanges()) {
      total = 0;
      if (!statuses) total = size.total;
      else for (const st of statuses) total += size.counts.get(st) ?? 0;
    } else total = noWindow ? this.countSql(q.instanceId, statuses) : this.windowCountSql(q, statuses);
    return { total, rows: total > q.offset ? this.pageSql(q, statuses) : [] };
  }

  protected totalChanges(): number {
    return this.c.prepare("SELECT total_changes()").pluck().get() as number;
  }

  /** Statements for one filter shape: the page, read in index order, and the windowed count. */
  private listStatements(q: BackupQuery, statuses: number[] | undefined): { page: Database.Statement; pageJson: Database.Statement; count: Database.Statement } {
    const shape = `${q.begin !== undefined ? "b" : ""}${q.end !== undefined ? "e" : ""}${statuses ? statuses.length : 0}`;
    let s = this.c.listCache.get(shape);
    if (!s) {
      const where = ["instance_id = ?"];
      if (q.begin !== undefined) where.push("start_time >= ?");
      if (q.end !== undefined) where.push("start_time <= ?");
      if (statuses) where.push(`status IN (${statuses.map(() => "?").join(", ")})`);
      const w = where.join(" AND ");
      // Walks backups_listing in order (no temporary B-tree); a skipped row is never read from the table.
      const order = `FROM backups WHERE ${w} ORDER BY start_time DESC, backup_id ASC LIMIT ? OFFSET ?`;
      const db = this.c.db;
      s = {
        page: db.prepare(`SELECT ${BACKUP_COLUMNS} ${order}`).raw(),
        pageJson: db.prepare(`SELECT json_array(${BACKUP_COLUMNS}) ${order}`).pluck(),
        count: db.prepare(`SELECT count(*) FROM backups WHERE ${w}`).pluck(),
      };
      this.c.listCache.set(shape, s);
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
    const rows = this.c.jsonRows ? parseJsonRows(() => s.pageJson.all(...args) as string[]) : undefined;
    return (rows ?? (s.page.all(...args) as unknown[][])).map((r) => rawToBackup(r, 0));
  }

  private windowCountSql(q: BackupQuery, statuses: number[] | undefined): number {
    return this.listStatements(q, statuses).count.get(...this.listArgs(q, statuses)) as number;
  }

  private countSql(instanceId: string, statuses: number[] | undefined): number {
    const w = statuses ? ` AND status IN (${statuses.map(() => "?").join(", ")})` : "";
    return this.c.prepare(`SELECT coalesce(sum(n), 0) FROM backup_counts WHERE instance_id = ?${w}`).pluck().get(instanceId, ...(statuses ?? [])) as number;
  }
}

/**
 * Every engine open in this process: changed() sums their total_changes(), so a commit through another connection
 * in this process (a test's second catalogue, a tool run in-process) shows at once, PRAGMA or not.
 */
const openEngines = new Set<SqliteEngine>();
/** total_changes() of engines closed in this process, so the sum changed() compares never goes down (no ABA). */
let closedChanges = 0;

export class SqliteEngine extends SqliteOps implements CatalogEngine {
  readonly kind = "sqlite" as const;
  readonly db: Database.Database;
  /** Migrations applied when this catalogue was opened. */
  readonly appliedAtOpen: number[];
  /** Every commit shows in changed(): cached values live until one does. */
  readonly cacheTtlMs = Infinity;
  readonly sizeTtlMs = Infinity;
  private seenChanges = -1;
  private seenDataVersion = -1;
  private dataVersionChecked = false;
  private readonly resetTick = () => {
    this.dataVersionChecked = false;
  };
  /**
   * A nextTick queued from a microtask runs once the whole microtask queue has drained. (Queued directly it could
   * run first: the request's handler itself runs inside a nextTick, the stream's end event, and Node runs every
   * queued tick before the microtasks.)
   */
  private readonly resetAfterDrain = () => process.nextTick(this.resetTick);
  private readonly stmt: Record<"totalChanges" | "dataVersion" | "listingStats" | "listingKeys", Database.Statement>;

  /** Opens (creating owner-only if needed) the catalogue file and applies pending migrations. */
  constructor(readonly file: string) {
    if (file !== ":memory:") {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, "a", 0o600));
    }
    const db = new Database(file);
    super(new SqliteExecutor(new Connection(db)));
    this.db = db;
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    db.pragma("busy_timeout = 5000");
    // REPLACE conflict resolution then fires the delete trigger too, keeping backup_counts exact (migration 2).
    db.pragma("recursive_triggers = ON");
    // Statement journals (every backups write runs two trigger upserts) in memory, not in temporary files:
    // without this a bulk insert of backups is about five times slower.
    db.pragma("temp_store = MEMORY");
    // Reads through a memory map instead of a read() system call per page missing from SQLite's 2 MB cache:
    // listing pages of random instances of a million-backup catalogue cost about 40% less.
    if (file !== ":memory:") db.pragma("mmap_size = 1073741824");
    if (file !== ":memory:") for (const suffix of ["-wal", "-shm"]) restrict(file + suffix);
    this.appliedAtOpen = this.runMigrations();
    this.stmt = {
      totalChanges: db.prepare("SELECT total_changes()").pluck(),
      dataVersion: db.prepare("PRAGMA data_version").pluck(),
      listingStats: db.prepare("SELECT v.version, c.status, c.n FROM backup_versions v LEFT JOIN backup_counts c ON c.instance_id = v.instance_id WHERE v.instance_id = ?").raw(),
      listingKeys: db.prepare("SELECT rowid, start_time, status, backup_id FROM backups WHERE instance_id = ? ORDER BY start_time DESC, backup_id ASC").raw(),
    };
    openEngines.add(this);
  }

  private appliedVersions(): number[] {
    this.db.exec(HISTORY_TABLE);
    return this.db.prepare("SELECT version FROM schema_migrations").pluck().all() as number[];
  }

  private runMigrations(): number[] {
    return runMigrations(migrations, {
      applied: () => this.appliedVersions(),
      apply: (m, at) => this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.prepare(RECORD_MIGRATION).run(m.version, m.name, at);
      })(),
    });
  }

  describe(): string {
    return `sqlite:${this.file}`;
  }

  async migrate(): Promise<number[]> {
    await this.exec.ready();
    return this.runMigrations();
  }

  async pendingMigrations(): Promise<number[]> {
    await this.exec.ready();
    return pendingVersions(migrations, this.appliedVersions());
  }

  async ping(): Promise<void> {
    await this.exec.ready();
    this.db.prepare("SELECT 1").get();
  }

  async close(): Promise<void> {
    await this.exec.ready();
    if (openEngines.delete(this)) closedChanges += this.stmt.totalChanges.get() as number;
    this.db.close();
  }

  protected override totalChanges(): number {
    return this.stmt.totalChanges.get() as number;
  }

  // --- transactions ---

  async transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T> {
    const gate = this.c.gate;
    while (gate.open) await gate.open;
    let release!: () => void;
    gate.open = new Promise<void>((resolve) => (release = resolve));
    const live = { active: true };
    try {
      await this.beginImmediate();
      try {
        const result = await fn(new SqliteOps(new SqliteExecutor(this.c, live)));
        this.db.exec("COMMIT");
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
        throw err;
      }
    } catch (err) {
      throw full(err);
    } finally {
      live.active = false;
      gate.open = undefined;
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

  // --- the cache's primitives ---

  /**
   * Writes through this process's connections show in their summed total_changes() (read on every call, ~0.1 µs
   * each), other processes' commits in PRAGMA data_version (~5-17 µs: a read lock on the WAL index). The PRAGMA is
   * read once per macrotask: the first call in an event-loop callback reads it, and a reset queued then
   * (resetAfterDrain) runs once that callback's promise chain has drained. Every request still sees every commit
   * made before it arrived: its bytes are read in the callback that handles them, before the check. (Reset after
   * every microtask, it ran ~3 times per request.)
   * While a transaction is open the cache is not used (a rollback would not show).
   */
  changed(): boolean | undefined {
    if (this.db.inTransaction) return undefined;
    let changes = closedChanges;
    for (const e of openEngines) changes += e.stmt.totalChanges.get() as number;
    let changed = changes !== this.seenChanges;
    if (!this.dataVersionChecked) {
      const dv = this.stmt.dataVersion.get() as number;
      if (dv !== this.seenDataVersion) {
        this.seenDataVersion = dv;
        changed = true;
      }
      this.dataVersionChecked = true;
      queueMicrotask(this.resetAfterDrain);
    }
    this.seenChanges = changes;
    return changed;
  }

  listingSize(instanceId: string): MaybePromise<ListingSize> {
    if (this.exec.blocked()) return this.exec.ready().then(() => this.listingSize(instanceId));
    const rows = this.stmt.listingStats.all(instanceId) as unknown[][];
    const counts = new Map<number, number>();
    let total = 0;
    for (const r of rows) {
      if (r[1] === null) continue;
      counts.set(r[1] as number, r[2] as number);
      total += r[2] as number;
    }
    return { version: rows.length ? (rows[0]![0] as number) : null, total, counts, mark: this.totalChanges() };
  }

  async buildListingIndex(instanceId: string, version: number | null): Promise<ListingIndex | undefined> {
    while (this.exec.blocked()) await this.exec.ready();
    // Version and keys from one read snapshot, so the index is labelled with the version it reflects.
    return this.db.transaction(() => {
      const now = (this.stmt.listingStats.all(instanceId) as unknown[][])[0]?.[0] as number | undefined;
      if (now === undefined || now !== version) return undefined;
      return ListingIndex.build(instanceId, now, this.stmt.listingKeys.all(instanceId) as unknown[][]);
    })();
  }

  /** The rows at the given index positions, read by rowid; undefined if any no longer matches the index. */
  listingRows(index: ListingIndex, positions: number[]): MaybePromise<Backup[] | undefined> {
    if (this.exec.blocked()) return this.exec.ready().then(() => this.listingRows(index, positions));
    const c = this.c;
    const out: Backup[] = [];
    const { rowids, starts, statuses, ids } = index.keys;
    for (let from = 0; from < positions.length; from += 100) {
      const chunk = positions.slice(from, from + 100);
      const k = chunk.length;
      let stmt = c.byRowid[k];
      if (!stmt) {
        const list = `(${"?, ".repeat(k - 1)}?)`;
        stmt = {
          raw: this.db.prepare(`SELECT rowid, ${BACKUP_COLUMNS} FROM backups WHERE rowid IN ${list}`).raw(),
          json: this.db.prepare(`SELECT json_group_array(json_array(rowid, ${BACKUP_COLUMNS})) FROM backups WHERE rowid IN ${list}`).pluck(),
        };
        c.byRowid[k] = stmt;
      }
      const args = chunk.map((p) => rowids[p]!);
      const s = stmt;
      const raw = (c.jsonRows ? parseJsonRows(() => [s.json.get(...args) as string])?.[0] as unknown[][] | undefined : undefined) ??
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
}

/** The embedded catalogue: the one cache over a SQLite engine (`db` is the connection, for tests and benchmarks). */
export class SqliteCatalog extends CachedCatalog<SqliteEngine> {
  constructor(file: string) {
    super(new SqliteEngine(file));
  }

  get db(): Database.Database {
    return this.engine.db;
  }

  get file(): string {
    return this.engine.file;
  }

  get appliedAtOpen(): number[] {
    return this.engine.appliedAtOpen;
  }
}

function restrict(file: string): void {
  try {
    fs.chmodSync(file, 0o600);
  } catch {
    // The WAL files appear on first write; SQLite creates them with the main file's mode.
  }
}
