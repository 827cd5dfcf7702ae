// The migration runner both engines share: one history table (schema_migrations), the same numbering on both
// (sqlite/migrations.ts and postgres/migrations.ts hold each engine's text of every version), each version
// applied in order and recorded in the same transaction as its SQL. A driver gives the engine's way to read the
// history and to apply one migration; SQLite's is synchronous (a catalogue opened by `new` is migrated at once),
// PostgreSQL's asynchronous, and the runner keeps whichever it is given.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const HISTORY_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
export const RECORD_MIGRATION = "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)";

type Step<T> = T | Promise<T>;

/** SQLite's: reads and applies synchronously. */
export interface SyncMigrationDriver {
  /** Creates the history table when missing; the versions it records. */
  applied(): number[];
  /** Runs the migration's SQL and records it (RECORD_MIGRATION) atomically. */
  apply(m: Migration, at: number): void;
}

/** PostgreSQL's. */
export interface AsyncMigrationDriver {
  applied(): Promise<number[]>;
  apply(m: Migration, at: number): Promise<void>;
}

function then<T, U>(v: Step<T>, f: (t: T) => Step<U>): Step<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/** Checks that a history is numbered 1, 2, 3, … (each engine's list, and the same list on both). */
export function checkHistory(all: readonly Migration[]): void {
  all.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`catalogue migration ${m.version} (${m.name}) is out of order: expected version ${i + 1}`);
  });
}

/** The versions of `all` not in `done`. */
export function pendingVersions(all: readonly Migration[], done: readonly number[]): number[] {
  const have = new Set(done);
  return all.map((m) => m.version).filter((v) => !have.has(v));
}

/** Applies the pending migrations in order; the versions applied now. Synchronous with a synchronous driver. */
export function runMigrations(all: readonly Migration[], driver: SyncMigrationDriver): number[];
export function runMigrations(all: readonly Migration[], driver: AsyncMigrationDriver): Promise<number[]>;
export function runMigrations(all: readonly Migration[], driver: SyncMigrationDriver | AsyncMigrationDriver): Step<number[]> {
  checkHistory(all);
  return then<number[], number[]>(driver.applied(), (done) => {
    const todo = pendingVersions(all, done).map((v) => all[v - 1]!);
    const out: number[] = [];
    const next = (i: number): Step<number[]> => i === todo.length ? out : then(driver.apply(todo[i]!, Date.now()), () => {
      out.push(todo[i]!.version);
      return next(i + 1);
    });
    return next(0);
  });
}
