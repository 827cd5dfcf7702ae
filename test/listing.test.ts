// Catalog.listBackups fast paths (backup_counts, the in-memory ListingIndex, the direct index walk) against a
// naive reading of the same SQLite file: for many random queries (offsets, windows, status sets), on instances
// above and below the index threshold, after writes through every Catalog method, inside transactions, after a
// rollback, after commits and a VACUUM from a second connection, and under a memory budget that forces eviction.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import type { CatalogTx } from "../src/catalog/catalog";
import { SqliteCatalog as Catalog } from "../src/catalog/sqlite/sqlite";
import type { Backup, BackupQuery, BackupStatus } from "../src/catalog/types";

const STATUSES: BackupStatus[] = [1, 2, 3, 4, -1, -2];
const BIG = "crs-big00001";
const BIG2 = "crs-big00002";
const SMALL = "crs-small001";
const T0 = Date.UTC(2024, 0, 1);
const MIN = 60_000;

let seed = 12345;
function rnd(n: number): number {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
}

let dir: string;
let a: Catalog;
let b: Catalog;
let made = 0;

function backup(instanceId: string, over: Partial<Backup> = {}): Backup {
  made++;
  // Few distinct start times, so ties (ordered by BackupId bytes) are everywhere; some ids outside hex.
  const odd = ["Zeta", "alpha", "\u00e9t\u00e9", "\uffff-max", "\u{1f600}-emoji", "0", "-"];
  const backupId = made % 97 === 0 ? `${odd[made % odd.length]}-${made}` : `${made.toString(16).padStart(8, "0")}-0000-4000-8000-${rnd(1 << 30).toString(16).padStart(12, "0")}`;
  const startTime = T0 + rnd(400) * MIN;
  return {
    backupId, instanceId, startTime, endTime: startTime + 30_000, backupType: rnd(2) ? "0" : "1", status: STATUSES[rnd(STATUSES.length)]!,
    remark: `r${made}`, locked: 0, backupSize: made, fullBackup: 0, instanceType: 17, fileType: "RDB-Redis 7.0", expireTime: startTime + 86_400_000,
    encrypted: false, files: [], ...over,
  };
}

function addInstance(c: Catalog, id: string): void {
  c.db.prepare("INSERT INTO accounts(account_id, created_at) VALUES ('1300000000', 0) ON CONFLICT DO NOTHING").run();
  c.db.prepare("INSERT INTO instances(instance_id, account_id, region, name, created_at) VALUES (?, '1300000000', 'ap-guangzhou', ?, 0)").run(id, id);
}

function byteOrder(x: string, y: string): number {
  return Buffer.compare(Buffer.from(x, "utf8"), Buffer.from(y, "utf8"));
}

/** The answer computed the slow, obvious way: every row of the instance, filtered and sorted in JavaScript. */
function naive(c: Catalog, q: BackupQuery): { total: number; ids: string[] } {
  const rows = c.db.prepare("SELECT backup_id, start_time, status FROM backups WHERE instance_id = ?").all(q.instanceId) as Array<{ backup_id: string; start_time: number; status: number }>;
  const set = q.statuses && q.statuses.length ? new Set(q.statuses) : undefined;
  const hits = rows
    .filter((r) => (q.begin === undefined || r.start_time >= q.begin) && (q.end === undefined || r.start_time <= q.end) && (!set || set.has(r.status)))
    .sort((x, y) => (x.start_time !== y.start_time ? y.start_time - x.start_time : byteOrder(x.backup_id, y.backup_id)));
  return { total: hits.length, ids: hits.slice(q.offset, q.offset + q.limit).map((r) => r.backup_id) };
}

function randomQuery(instanceId: string, size: number): BackupQuery {
  const q: BackupQuery = { instanceId, limit: 1 + rnd(100), offset: 0 };
  const o = rnd(4);
  q.offset = o === 0 ? 0 : o === 1 ? rnd(60) : o === 2 ? rnd(size + 20) : Math.max(0, size - rnd(40));
  const w = rnd(4);
  const t = () => T0 + (rnd(10) === 0 ? rnd(800) - 200 : rnd(400)) * MIN + (rnd(5) === 0 ? rnd(MIN) : 0);
  if (w === 1 || w === 3) q.begin = t();
  if (w === 2 || w === 3) q.end = t();
  if (q.begin !== undefined && q.end !== undefined && q.begin > q.end) [q.begin, q.end] = [q.end, q.begin];
  const s = rnd(5);
  if (s === 1) q.statuses = [STATUSES[rnd(6)]!];
  else if (s === 2) q.statuses = [2, -1, 4].filter(() => rnd(2) === 0);
  else if (s === 3) q.statuses = [STATUSES[rnd(6)]!, STATUSES[rnd(6)]!, STATUSES[rnd(6)]!, 9];
  else if (s === 4) q.statuses = [];
  return q;
}

/** Random queries through `via` (the catalogue, or a transaction's tx) against the naive answer read from `c`. */
async function check(c: Catalog, rounds: number, instances = [BIG, BIG2, SMALL], via: CatalogTx = c): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    const id = instances[rnd(instances.length)]!;
    const size = c.db.prepare("SELECT count(*) FROM backups WHERE instance_id = ?").pluck().get(id) as number;
    const q = randomQuery(id, size);
    const want = naive(c, q);
    const got = await via.listBackups(q);
    const label = JSON.stringify(q);
    assert.equal(got.total, want.total, `TotalCount of ${label}`);
    assert.deepEqual(got.rows.map((r) => r.backupId), want.ids, `page of ${label}`);
    for (const r of got.rows) assert.deepEqual(r, await via.backup(r.backupId), `row ${r.backupId} of ${label}`);
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function indexed(c: Catalog, id: string): boolean {
  return c.hasListingIndex(id);
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-listing-"));
  const file = path.join(dir, "catalog.db");
  a = new Catalog(file);
  a.listingOptions.indexThreshold = 300;
  for (const id of [BIG, BIG2, SMALL]) addInstance(a, id);
  await a.transaction(async (tx) => {
    for (let i = 0; i < 3000; i++) await tx.insertBackup(backup(BIG));
    for (let i = 0; i < 800; i++) await tx.insertBackup(backup(BIG2));
    for (let i = 0; i < 150; i++) await tx.insertBackup(backup(SMALL));
  });
  b = new Catalog(file);
});

after(async () => {
  await a.close();
  await b.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("random queries match the naive answer, on indexed and small instances", async () => {
  await check(a, 600);
  assert.ok(indexed(a, BIG) && indexed(a, BIG2), "the large instances are served from a listing index");
  assert.ok(!indexed(a, SMALL), "the small one is not");
});

test("writes through every Catalog method are seen at once", async () => {
  for (let round = 0; round < 12; round++) {
    const ids = a.db.prepare("SELECT backup_id FROM backups WHERE instance_id IN (?, ?) ORDER BY rowid").pluck().all(BIG, SMALL) as string[];
    const pick = () => ids[rnd(ids.length)]!;
    switch (round % 6) {
      case 0:
        for (let i = 0; i < 5; i++) await a.insertBackup(backup(rnd(2) ? BIG : SMALL));
        break;
      case 1:
        await a.updateBackup(pick(), { status: STATUSES[rnd(6)]! });
        await a.updateBackup(pick(), { startTime: T0 + rnd(400) * MIN });
        await a.updateBackup(pick(), { remark: `changed ${round}`, backupSize: 7 });
        break;
      case 2: {
        const old = (await a.backup(pick()))!;
        await a.upsertBackup({ ...old, status: STATUSES[rnd(6)]!, startTime: old.startTime + MIN, remark: "upserted" });
        break;
      }
      case 3:
        for (let i = 0; i < 4; i++) await a.deleteBackupRecord(pick());
        break;
      case 4:
        // Moved to another instance: both listings change.
        a.db.prepare("UPDATE backups SET instance_id = ? WHERE backup_id = ?").run(BIG2, pick());
        break;
      case 5:
        a.db.prepare("INSERT OR REPLACE INTO backups(backup_id, instance_id, start_time, backup_type, status, instance_type) VALUES (?, ?, ?, '0', ?, 17)")
          .run(pick(), BIG, T0 + rnd(400) * MIN, STATUSES[rnd(6)]!);
        break;
    }
    await check(a, 80);
  }
});

test("inside a transaction, and after a rollback", async () => {
  await a.transaction(async (tx) => {
    for (let i = 0; i < 10; i++) await tx.insertBackup(backup(BIG));
    await tx.updateBackup(a.db.prepare("SELECT backup_id FROM backups WHERE instance_id = ? LIMIT 1").pluck().get(BIG) as string, { status: -2 });
    await check(a, 40, undefined, tx);
  });
  await check(a, 40);
  const before = naive(a, { instanceId: BIG, limit: 100, offset: 0 });
  await assert.rejects(() =>
    a.transaction(async (tx) => {
      for (let i = 0; i < 10; i++) await tx.insertBackup(backup(BIG, { startTime: T0 + 500 * MIN }));
      await tx.listBackups({ instanceId: BIG, limit: 20, offset: 0 });
      throw new Error("roll back");
    }),
  );
  const after = await a.listBackups({ instanceId: BIG, limit: 100, offset: 0 });
  assert.equal(after.total, before.total);
  assert.deepEqual(after.rows.map((r) => r.backupId), before.ids);
  await check(a, 60);
});

test("commits from a second connection on the same file are seen by the next request", async () => {
  for (let round = 0; round < 8; round++) {
    await check(a, 20);
    const victim = a.db.prepare("SELECT backup_id FROM backups WHERE instance_id = ? ORDER BY random() LIMIT 1").pluck().get(BIG) as string;
    switch (round % 4) {
      case 0:
        await b.insertBackup(backup(BIG, { startTime: T0 + 399 * MIN }));
        break;
      case 1:
        await b.updateBackup(victim, { status: victim.charCodeAt(0) % 2 ? 4 : -1, startTime: T0 + rnd(400) * MIN });
        break;
      case 2:
        await b.deleteBackupRecord(victim);
        break;
      case 3:
        await b.transaction(async (tx) => {
          for (let i = 0; i < 20; i++) await tx.insertBackup(backup(rnd(2) ? BIG : BIG2));
        });
        break;
    }
    await tick();
    await check(a, 60);
  }
});

test("a VACUUM by another connection (which renumbers rowids) never serves a wrong row", async () => {
  await check(a, 50);
  // Deleting early rows and vacuuming shifts the implicit rowids of the rest.
  b.db.prepare("DELETE FROM backups WHERE rowid IN (SELECT rowid FROM backups ORDER BY rowid LIMIT 200)").run();
  b.db.exec("VACUUM");
  await tick();
  await check(a, 300);
});

test("an instance deleted (its backups cascade) and a memory budget that holds one index at a time", async () => {
  const size = (id: string) => a.db.prepare("SELECT count(*) FROM backups WHERE instance_id = ?").pluck().get(id) as number;
  a.listingOptions.indexBudgetBytes = Math.floor((size(BIG) + size(BIG2)) * 81 * 0.8);
  await a.insertBackup(backup(BIG));
  await a.insertBackup(backup(BIG2)); // both indexes are rebuilt under the new budget
  await check(a, 200);
  assert.ok(!(indexed(a, BIG) && indexed(a, BIG2)), "the budget holds one index");
  b.db.prepare("DELETE FROM instances WHERE instance_id = ?").run(BIG2);
  await tick();
  await check(a, 100);
  assert.equal((await a.listBackups({ instanceId: BIG2, limit: 20, offset: 0 })).total, 0);
  assert.equal(a.db.prepare("SELECT coalesce(sum(n), 0) FROM backup_counts WHERE instance_id = ?").pluck().get(BIG2), 0);
});

test("backup_counts stays equal to count(*) and sum(backup_size) per instance and status", () => {
  const want = a.db.prepare("SELECT instance_id, status, count(*) AS n, sum(backup_size) AS bytes FROM backups GROUP BY 1, 2 ORDER BY 1, 2").all();
  const got = a.db.prepare("SELECT instance_id, status, n, bytes FROM backup_counts WHERE n > 0 ORDER BY 1, 2").all();
  assert.deepEqual(got, want);
});
