// The PostgreSQL engine (pg): what several nodes share. The operations both engines share are sql-ops.ts over
// an executor on the pool (or a transaction's client); here are PostgreSQL's own: the pool (64-bit integers read
// as numbers), named prepared statements on the hot paths, transactions on one client, migrations under an
// advisory lock, the listing's SQL (total and page in one statement) and the listing index's primitives (rows read
// by backup id with the listing version, so page and version come from one snapshot).
//
// Cached values: another node may change a credential or an instance at any time, so the cache (cached.ts) keeps
// them for at most `cacheTtlMs` (1 s), and this node's own writes drop them at once. That bounds how long a revoked
// key or a removed instance can still be seen by another node.
import pg from "pg";
import { LRUCache } from "lru-cache";
import { CatalogFullError, CatalogMisuseError, CatalogTx, CatalogUnavailableError, QueueWatch } from "../catalog";
import { CachedCatalog } from "../cached";
import { postgresDialect, SqlExecutor } from "../dialect";
import type { CatalogEngine, ListingSize } from "../engine";
import { ListingIndex } from "../listing-index";
import { HISTORY_TABLE, pendingVersions, RECORD_MIGRATION, runMigrations } from "../migrator";
import { BACKUP_COLUMNS, Row, toBackup } from "../rows";
import { SqlOps } from "../sql-ops";
import type { Backup, BackupQuery } from "../types";
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
const PREFIXED_COLUMNS = BACKUP_COLUMNS.split(", ").map((c) => `b.${c}`).join(", ");
/** How long an instance found too small for an index is listed by SQL without asking again (SQL is always right). */
const SMALL_TTL_MS = 10_000;

/** Maps PostgreSQL's "disk full" and connection failures to the catalogue's error types. */
function mapError(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e?.code === "53100") return new CatalogFullError(`the catalogue's disk is full: ${e.message}`);
  if (e && (/^08/.test(e.code ?? "") || ["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "57P01", "57P03"].includes(e.code ?? "") || /Connection terminated|connect ECONNREFUSED/.test(e.message ?? ""))) {
    return new CatalogUnavailableError(`the catalogue (PostgreSQL) cannot be reached: ${e.message}`);
  }
  return err;
}

/** Statements as written (`?`) to PostgreSQL's text ($1, $2, …), converted once. */
const texts = new LRUCache<string, string>({ max: 2000 });

/** Runs statements on the pool, or on a transaction's client (refused once that transaction has ended). */
class PgExecutor implements SqlExecutor {
  readonly dialect = postgresDialect;

  constructor(private readonly q: Queryable, private readonly tx?: { active: boolean }) {}

  async query(text: string, args: readonly unknown[], name?: string, rowMode?: "array"): Promise<pg.QueryResult<Row>> {
    if (this.tx && !this.tx.active) throw new CatalogMisuseError("a transaction's tx was used after its transaction ended");
    let t = texts.get(text);
    if (t === undefined) {
      t = postgresDialect.sql(text);
      texts.set(text, t);
    }
    try {
      return await this.q.query<Row>({ text: t, values: args as unknown[], ...(name ? { name } : {}), ...(rowMode ? { rowMode } : {}) });
    } catch (err) {
      throw mapError(err);
    }
  }

  async all(text: string, args: readonly unknown[], name?: string): Promise<Row[]> {
    return (await this.query(text, args, name)).rows;
  }

  async run(text: string, args: readonly unknown[], name?: string): Promise<number> {
    return (await this.query(text, args, name)).rowCount ?? 0;
  }
}

/** How this service's connections show in pg_stat_activity (an application_name in the URL wins). */
const APPLICATION_NAME = "crs-backup";

/** The channel a queued task is announced on (in its own transaction: delivered when it commits). */
const QUEUE_CHANNEL = "crs_task_queued";
/** How long a lost LISTEN connection waits before it is opened again (the runner's poll covers the gap). */
const LISTEN_RETRY_MS = 1_000;

/** The shared operations plus PostgreSQL's listing SQL, over one executor. */
class PgOps extends SqlOps {
  constructor(protected readonly exec: PgExecutor) {
    super(exec);
  }

  /** A queued task also wakes the other nodes' runners (watchQueue), at its transaction's commit. */
  override async insertTask(t: Parameters<SqlOps["insertTask"]>[0]): Promise<number> {
    const id = await super.insertTask(t);
    if (t.status === "preparing") await this.exec.run(`SELECT pg_notify('${QUEUE_CHANNEL}', '')`, [], "notifyQueued");
    return id;
  }

  /**
   * Without a time window the total comes from the per-status counts the triggers keep: never a count(*) over a
   * big instance. The total and the page in one statement: one round trip, one snapshot.
   */
  async listPage(q: BackupQuery, statuses: number[] | undefined): Promise<{ total: number; rows: Backup[] }> {
    const where = ["instance_id = ?"];
    const values: unknown[] = [q.instanceId];
    if (q.begin !== undefined) { values.push(q.begin); where.push("start_time >= ?"); }
    if (q.end !== undefined) { values.push(q.end); where.push("start_time <= ?"); }
    if (statuses) { values.push(statuses); where.push("status = ANY(?::int[])"); }
    const shape = `${q.begin !== undefined ? "b" : ""}${q.end !== undefined ? "e" : ""}${statuses ? "s" : ""}`;
    const noWindow = q.begin === undefined && q.end === undefined;
    const total = noWindow
      ? `SELECT coalesce(sum(n), 0) AS total FROM backup_counts WHERE instance_id = ?${statuses ? " AND status = ANY(?::int[])" : ""}`
      : `SELECT count(*) AS total FROM backups WHERE ${where.join(" AND ")}`;
    const totalValues = noWindow ? [q.instanceId, ...(statuses ? [statuses] : [])] : values;
    const got = await this.exec.all(`SELECT t.total, p.* FROM (${total}) t LEFT JOIN LATERAL (SELECT ${BACKUP_COLUMNS} FROM backups
      WHERE ${where.join(" AND ")} ${ORDER} LIMIT ? OFFSET ?) p ON true`, [...totalValues, ...values, q.limit, q.offset], `list_${shape}`);
    return { total: Number(got[0]!.total), rows: got.filter((r) => r.backup_id !== null).map(toBackup) };
  }
}

export class PgEngine extends PgOps implements CatalogEngine {
  readonly kind = "postgres" as const;
  readonly cacheTtlMs = 1000;
  readonly sizeTtlMs = SMALL_TTL_MS;

  constructor(private readonly pool: pg.Pool, private readonly url: string) {
    super(new PgExecutor(pool));
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
    const live = { active: true };
    try {
      await client.query("BEGIN");
      const result = await fn(new PgOps(new PgExecutor(client, live)));
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw mapError(err);
    } finally {
      live.active = false;
      client.release();
    }
  }

  async migrate(): Promise<number[]> {
    const client = await this.pool.connect();
    try {
      // One node migrates at a time; the others wait, then find nothing left to do.
      await client.query("SELECT pg_advisory_lock(727274001)");
      try {
        return await runMigrations(migrations, {
          applied: async () => {
            await client.query(HISTORY_TABLE);
            return (await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map((r) => Number(r.version));
          },
          apply: async (m, at) => {
            await client.query("BEGIN");
            try {
              await client.query(m.sql);
              await client.query(postgresDialect.sql(RECORD_MIGRATION), [m.version, m.name, at]);
              await client.query("COMMIT");
            } catch (err) {
              await client.query("ROLLBACK").catch(() => undefined);
              throw err;
            }
          },
        });
      } finally {
        await client.query("SELECT pg_advisory_unlock(727274001)");
      }
    } finally {
      client.release();
    }
  }

  async pendingMigrations(): Promise<number[]> {
    return pendingVersions(migrations, (await this.exec.all("SELECT version FROM schema_migrations", [])).map((r) => Number(r.version)));
  }

  async ping(): Promise<void> {
    await this.exec.all("SELECT 1", []);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** LISTEN on a client of its own (not the pool's: it stays checked out); (re)opened in the background until stopped. */
  async watchQueue(onQueued: () => void): Promise<{ stop(): Promise<void> }> {
    let stopped = false;
    let client: pg.Client | undefined;
    let retry: NodeJS.Timeout | undefined;
    const listen = async (): Promise<void> => {
      const c = new pg.Client({ connectionString: this.url, types: TYPES, connectionTimeoutMillis: 10_000, application_name: APPLICATION_NAME });
      const lost = (): void => {
        if (client !== c) return;
        client = undefined;
        c.end().catch(() => undefined);
        if (!stopped) retry = setTimeout(() => void listen(), LISTEN_RETRY_MS).unref();
      };
      c.on("error", lost);
      c.on("end", lost);
      c.on("notification", () => {
        if (!stopped) onQueued();
      });
      client = c;
      try {
        await c.connect();
        await c.query(`LISTEN ${QUEUE_CHANNEL}`);
      } catch {
        lost();
        return;
      }
      if (client === c && !stopped) onQueued(); // anything queued before (or while) the connection was down
    };
    // Never fails: until a LISTEN connection is up (retried every LISTEN_RETRY_MS), the runner's poll finds the work.
    void listen();
    return {
      stop: async () => {
        stopped = true;
        clearTimeout(retry);
        const c = client;
        client = undefined;
        await c?.end().catch(() => undefined);
      },
    };
  }

  // --- the cache's primitives ---

  /** Other nodes' writes are not seen: the TTLs bound how stale a cached value can be. */
  changed(): boolean {
    return false;
  }

  async listingSize(instanceId: string): Promise<ListingSize> {
    const r = (await this.exec.all("SELECT v.version, coalesce((SELECT sum(n) FROM backup_counts c WHERE c.instance_id = v.instance_id), 0) AS n FROM backup_versions v WHERE v.instance_id = ?",
      [instanceId], "listingSize"))[0];
    return { version: r ? Number(r.version) : null, total: Number(r?.n ?? 0), counts: new Map() };
  }

  /** The keys and their version from one statement (one snapshot), so the index is labelled with what it reflects. */
  async buildListingIndex(instanceId: string): Promise<ListingIndex | undefined> {
    const keys = await this.exec.query(`SELECT (SELECT version FROM backup_versions WHERE instance_id = ?) AS version, start_time, status, backup_id
      FROM backups WHERE instance_id = ? ${ORDER}`, [instanceId, instanceId], undefined, "array");
    const raw = keys.rows as unknown as unknown[][];
    return raw.length ? ListingIndex.build(instanceId, Number(raw[0]![0]), raw.map((r, i) => [i, Number(r[1]), Number(r[2]), r[3]])) : undefined;
  }

  /** The rows by backup id, with the listing version in the same statement: served only if it is the index's. */
  async listingRows(index: ListingIndex, positions: number[]): Promise<Backup[] | undefined> {
    const { ids, starts, statuses } = index.keys;
    const got = await this.exec.all(`SELECT v.version, ${PREFIXED_COLUMNS} FROM backup_versions v
      LEFT JOIN backups b ON b.instance_id = v.instance_id AND b.backup_id = ANY(?::text[]) WHERE v.instance_id = ?`, [positions.map((p) => ids[p]!), index.instanceId], "listingPage");
    if (!got.length || Number(got[0]!.version) !== index.version) return undefined;
    const byId = new Map<unknown, Row>();
    for (const r of got) if (r.backup_id !== null) byId.set(r.backup_id, r);
    const rows: Backup[] = [];
    for (const p of positions) {
      const r = byId.get(ids[p]);
      if (!r || Number(r.start_time) !== starts[p] || Number(r.status) !== statuses[p]) return undefined;
      rows.push(toBackup(r));
    }
    return rows;
  }
}

/** Opens the pool's `n` connections at once (each checked out together, then all given back idle). */
async function openAll(pool: pg.Pool, n: number): Promise<void> {
  const clients = await Promise.allSettled(Array.from({ length: n }, () => pool.connect()));
  for (const r of clients) if (r.status === "fulfilled") r.value.release();
  const failed = clients.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

/** The shared catalogue: the one cache over a PostgreSQL engine. */
export class PostgresCatalog extends CachedCatalog<PgEngine> {
  watchQueue(onQueued: () => void): Promise<QueueWatch> {
    return this.engine.watchQueue(onQueued);
  }

  /**
   * Connects, checks the server answers, and applies pending migrations. `fixed` (a server's catalogue): the pool
   * is opened to its size now and keeps its connections while idle, as HikariCP's default fixed-size pool does. A
   * connection costs PostgreSQL a backend process (a fork, its catalogue caches filled, every named statement
   * parsed and planned again); opened on demand and closed after 30 s idle, a burst of small backups after a quiet
   * spell paid that for every connection the burst needed (bench:scale's fleet, a just-started node: PostgreSQL's CPU
   * ~4.4 ms per backup, ~3.2 with the pool opened at start). A command's pool (`crs-backup backups ...`) still opens connections as it needs them.
   */
  static async open(url: string, opts: { max?: number; fixed?: boolean } = {}): Promise<PostgresCatalog> {
    const max = opts.max ?? 10;
    const pool = new pg.Pool({ connectionString: url, max, min: opts.fixed ? max : 0, types: TYPES, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000, application_name: APPLICATION_NAME });
    // An idle client's error (server restarted) must not crash the process; the next query reconnects.
    pool.on("error", () => undefined);
    const c = new PostgresCatalog(new PgEngine(pool, url));
    try {
      await c.migrate();
      if (opts.fixed) await openAll(pool, max);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw mapError(err);
    }
    return c;
  }
}
