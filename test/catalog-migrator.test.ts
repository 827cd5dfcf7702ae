// The pieces both catalogue engines share: one migration history (the same versions and names on SQLite and
// PostgreSQL, applied by one runner) and the dialect that writes their common SQL once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { postgresDialect, sqliteDialect, updateStatement } from "../src/catalog/dialect";
import { checkHistory, Migration, pendingVersions, runMigrations } from "../src/catalog/migrator";
import { migrations as pgMigrations } from "../src/catalog/postgres/migrations";
import { migrations as sqliteMigrations } from "../src/catalog/sqlite/migrations";

test("one history: both engines number their migrations 1, 2, 3, … with the same names", () => {
  checkHistory(sqliteMigrations);
  checkHistory(pgMigrations);
  assert.deepEqual(pgMigrations.map((m) => [m.version, m.name]), sqliteMigrations.map((m) => [m.version, m.name]));
});

test("the runner applies only what is pending, in order, synchronously with a synchronous driver", () => {
  const all: Migration[] = [1, 2, 3].map((version) => ({ version, name: `m${version}`, sql: `-- ${version}` }));
  const applied: number[] = [];
  const result = runMigrations(all, { applied: () => [1], apply: (m) => void applied.push(m.version) });
  assert.deepEqual(result, [2, 3]);
  assert.deepEqual(applied, [2, 3]);
  assert.deepEqual(pendingVersions(all, [1, 3]), [2]);
  assert.throws(() => runMigrations([all[0]!, all[2]!], { applied: () => [], apply: () => undefined }), /migration 3 \(m3\) is out of order: expected version 2/);
});

test("the runner with an asynchronous driver stops at the first failing migration, keeping what it applied", async () => {
  const all: Migration[] = [1, 2, 3].map((version) => ({ version, name: `m${version}`, sql: "" }));
  const applied: number[] = [];
  await assert.rejects(runMigrations(all, {
    applied: async () => [],
    apply: async (m) => {
      if (m.version === 2) throw new Error("bad SQL in 2");
      applied.push(m.version);
    },
  }), /bad SQL in 2/);
  assert.deepEqual(applied, [1]);
});

test("the dialect: placeholders numbered for PostgreSQL, lists bound one by one or as one array, empty lists match nothing", () => {
  assert.equal(postgresDialect.sql("a = ? AND b IN (?, ?)"), "a = $1 AND b IN ($2, $3)");
  assert.equal(sqliteDialect.sql("a = ?"), "a = ?");
  const s: unknown[] = [];
  assert.equal(sqliteDialect.anyOf("status", [2, 4], "int", s), "status IN (?, ?)");
  assert.deepEqual(s, [2, 4]);
  assert.equal(sqliteDialect.anyOf("status", [], "int", s), "status IN (NULL)");
  const p: unknown[] = [];
  assert.equal(postgresDialect.anyOf("status", [2, 4], "int", p), "status = ANY(?::int[])");
  assert.deepEqual(p, [[2, 4]]);
  const where: unknown[] = ["b1"];
  const u = updateStatement("backups", { status: 2, locked: 0 }, `backup_id = ? AND ${postgresDialect.anyOf("status", [3], "int", where)}`, where)!;
  assert.equal(postgresDialect.sql(u.text), "UPDATE backups SET status = $1, locked = $2 WHERE backup_id = $3 AND status = ANY($4::int[])");
  assert.deepEqual(u.args, [2, 0, "b1", [3]]);
  assert.equal(updateStatement("tasks", {}, "task_id = ?", [1]), undefined);
});
