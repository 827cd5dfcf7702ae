// What the two engines' SQL differs in, as a small dialect: statements are written once with `?` placeholders
// (SQLite binds them as they are, PostgreSQL numbers them $1, $2, …), lists of values are bound one by one
// (SQLite) or as one array (PostgreSQL), and row locks exist only on PostgreSQL. Everything else — tables,
// columns, ON CONFLICT, RETURNING — is the same text on both.

export interface Dialect {
  readonly name: "sqlite" | "postgres";
  /** The engine's text of a statement written with `?` placeholders. */
  sql(text: string): string;
  /**
   * `col` is one of `values`: pushes the values it binds onto `args` and returns the condition (`?` placeholders).
   * An empty list matches nothing.
   */
  anyOf(col: string, values: readonly unknown[], type: "int" | "text", args: unknown[]): string;
  /** Null-safe equality (`a IS b` in SQLite, `a IS NOT DISTINCT FROM b` in PostgreSQL). */
  readonly same: string;
  /** Appended to a SELECT that takes row locks (PostgreSQL); SQLite's write transactions are exclusive already. */
  readonly forUpdate: string;
  /** The same, skipping rows another transaction holds (the task queue's claim). */
  readonly forUpdateSkipLocked: string;
}

export const sqliteDialect: Dialect = {
  name: "sqlite",
  sql: (text) => text,
  anyOf(col, values, _type, args) {
    args.push(...values);
    return values.length ? `${col} IN (${values.map(() => "?").join(", ")})` : `${col} IN (NULL)`;
  },
  same: "IS",
  forUpdate: "",
  forUpdateSkipLocked: "",
};

export const postgresDialect: Dialect = {
  name: "postgres",
  sql(text) {
    let n = 0;
    return text.replace(/\?/g, () => `$${++n}`);
  },
  anyOf(col, values, type, args) {
    args.push([...values]);
    return `${col} = ANY(?::${type}[])`;
  },
  same: "IS NOT DISTINCT FROM",
  forUpdate: " FOR UPDATE",
  forUpdateSkipLocked: " FOR UPDATE SKIP LOCKED",
};

/** How shared catalogue code reaches an engine: rows of a statement, and the rows a write changed. */
export interface SqlExecutor {
  readonly dialect: Dialect;
  /** Rows as objects keyed by column. `name` marks a hot statement an engine may keep prepared. */
  all(text: string, args: readonly unknown[], name?: string): Promise<Record<string, unknown>[]>;
  /** Runs a write; the number of rows it changed. */
  run(text: string, args: readonly unknown[], name?: string): Promise<number>;
}

/** `UPDATE table SET a = ?, b = ? WHERE …`: the statement and its values, or undefined when nothing is set. */
export function updateStatement(table: string, cols: Record<string, unknown>, where: string, whereArgs: readonly unknown[]): { text: string; args: unknown[] } | undefined {
  const names = Object.keys(cols);
  if (!names.length) return undefined;
  return { text: `UPDATE ${table} SET ${names.map((n) => `${n} = ?`).join(", ")} WHERE ${where}`, args: [...names.map((n) => cols[n]), ...whereArgs] };
}
