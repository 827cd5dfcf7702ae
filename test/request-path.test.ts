// What the request path keeps off its hot path stays exact: the listing pages SQLite's catalogue caches (a write
// through this handle, through another connection, or in a transaction is seen by the next listing, field by
// field), the rows it serves are frozen copies of the cache's, the RedisBackupSet JSON memo follows every field,
// and the response spliced from raw JSON is the text JSON.stringify makes.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { backupSetJson, redisBackupSet, redisBackupSetJson } from "../src/actions/format";
import { SqliteCatalog } from "../src/catalog/sqlite/sqlite";
import type { Backup, BackupQuery, Instance } from "../src/catalog/types";
import { RawJson, responseJson } from "../src/protocol/raw-json";
import { LocalTime } from "../src/protocol/time";

const T0 = Date.UTC(2024, 0, 1);
let dir: string;
let a: SqliteCatalog;
let b: SqliteCatalog;

function backup(instanceId: string, n: number, over: Partial<Backup> = {}): Backup {
  const startTime = T0 + n * 60_000;
  return {
    backupId: `0000${n.toString(16).padStart(4, "0")}-0000-4000-8000-000000000000`, instanceId, startTime, endTime: startTime + 30_000, backupType: "0", status: 2,
    remark: `r${n}`, locked: 0, backupSize: n, fullBackup: 0, instanceType: 17, fileType: "RDB-Redis 7.0", expireTime: startTime + 86_400_000,
    encrypted: false, files: [], ...over,
  };
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-request-path-"));
  a = new SqliteCatalog(path.join(dir, "catalog.db"));
  b = new SqliteCatalog(path.join(dir, "catalog.db"));
  a.db.prepare("INSERT INTO accounts(account_id, created_at) VALUES ('1300000000', 0)").run();
  for (const id of ["crs-small001", "crs-big00001"]) a.db.prepare("INSERT INTO instances(instance_id, account_id, region, name, created_at) VALUES (?, '1300000000', 'ap-guangzhou', ?, 0)").run(id, id);
  await a.transaction(async (tx) => {
    for (let n = 0; n < 30; n++) await tx.insertBackup(backup("crs-small001", n));
    for (let n = 0; n < 2100; n++) await tx.insertBackup(backup("crs-big00001", 1000 + n));
  });
});

after(async () => {
  await a.close();
  await b.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const pages: BackupQuery[] = [
  { instanceId: "crs-small001", limit: 5, offset: 0 },
  { instanceId: "crs-small001", limit: 5, offset: 5, statuses: [2] },
  { instanceId: "crs-big00001", limit: 5, offset: 0 },
  { instanceId: "crs-big00001", limit: 5, offset: 100, begin: T0, end: T0 + 10_000 * 60_000 },
];

/** Lists every query twice (the second from the cache) and checks both against a fresh handle's answer. */
async function same(label: string): Promise<void> {
  const fresh = new SqliteCatalog(path.join(dir, "catalog.db"));
  try {
    for (const q of pages) {
      const want = await fresh.listBackups(q);
      for (let k = 0; k < 2; k++) assert.deepEqual(await a.listBackups(q), want, `${label}: ${JSON.stringify(q)}`);
    }
  } finally {
    await fresh.close();
  }
}

test("cached listing pages see every write: this handle's, another connection's, a transaction's; rows served frozen, in a new array", async () => {
  await same("first");
  const first = await a.listBackups(pages[0]!);
  const again = await a.listBackups(pages[0]!);
  assert.notEqual(first.rows, again.rows);
  assert.ok(again.rows.every((r) => Object.isFrozen(r)));
  assert.throws(() => {
    (again.rows[0] as { remark: string }).remark = "changed by a caller";
  }, TypeError);

  const top = first.rows[0]!.backupId;
  await a.updateBackup(top, { remark: "through this handle" });
  await same("update through this handle");
  assert.equal((await a.listBackups(pages[0]!)).rows[0]!.remark, "through this handle");

  await b.updateBackup(top, { remark: "through another connection", locked: 1 });
  await same("update through another connection");
  assert.equal((await a.listBackups(pages[0]!)).rows[0]!.remark, "through another connection");

  const bigTop = (await a.listBackups(pages[2]!)).rows[0]!.backupId;
  b.db.prepare("UPDATE backups SET backup_size = 7 WHERE backup_id = ?").run(bigTop); // plain SQL, another connection
  await same("SQL from another connection");
  assert.equal((await a.listBackups(pages[2]!)).rows[0]!.backupSize, 7);

  await a.transaction(async (tx) => {
    await tx.insertBackup(backup("crs-small001", 99));
    await tx.insertBackup(backup("crs-big00001", 9999));
  });
  await same("insert in a transaction");
  assert.equal((await a.listBackups(pages[0]!)).total, 31);

  await b.deleteBackupRecord(backup("crs-small001", 99).backupId);
  await same("delete through another connection");
});

test("a commit by another process is seen by the first read after it (PRAGMA data_version, read once per event-loop callback)", async () => {
  const top = (await a.listBackups(pages[0]!)).rows[0]!;
  for (const size of [11, 12, 13]) {
    assert.notEqual((await a.listBackups(pages[0]!)).rows[0]!.backupSize, size); // cached now
    // Plain SQL in a child process: neither this process's connections nor their total_changes() see it.
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ["-e", `new (require("better-sqlite3"))(process.argv[1]).prepare("UPDATE backups SET backup_size = ? WHERE backup_id = ?").run(${size}, process.argv[2])`,
        path.join(dir, "catalog.db"), top.backupId], { stdio: "inherit", cwd: path.join(__dirname, "..", "..") });
      child.once("exit", resolve);
    });
    assert.equal(code, 0);
    assert.equal((await a.listBackups(pages[0]!)).rows[0]!.backupSize, size);
  }
});

test("the RedisBackupSet JSON memo follows every field, the instance's name and region, and the zone", () => {
  const time = new LocalTime("Asia/Shanghai");
  const other = new LocalTime("UTC");
  const inst = { instanceId: "crs-small001", name: "one", region: "ap-guangzhou" } as Instance;
  const base = backup("crs-small001", 1);
  const variants: Array<[Backup, Instance, LocalTime]> = [
    [base, inst, time], [{ ...base, remark: "x" }, inst, time], [{ ...base, status: 4 }, inst, time], [{ ...base, locked: 1 }, inst, time],
    [{ ...base, endTime: undefined }, inst, time], [{ ...base, expireTime: base.expireTime! + 1000 }, inst, time], [{ ...base, backupSize: 2 }, inst, time],
    [{ ...base, encrypted: true }, inst, time], [{ ...base, fileType: "RDB-Redis 6.2" }, inst, time], [base, { ...inst, name: "renamed" }, time],
    [base, { ...inst, region: "ap-shanghai" }, time], [base, inst, other], [base, inst, time],
  ];
  for (const [bk, i, t] of variants) {
    assert.equal(redisBackupSetJson(bk, i, t), JSON.stringify(redisBackupSet(bk, i, t)));
    const frozen = Object.freeze({ ...bk });
    assert.equal(redisBackupSetJson(frozen, i, t), JSON.stringify(redisBackupSet(frozen, i, t)));
    assert.equal(redisBackupSetJson(frozen, { ...i, name: `${i.name}!` }, t), JSON.stringify(redisBackupSet(frozen, { ...i, name: `${i.name}!` }, t)));
  }
  const rows = [base, { ...base, backupId: "b2" }];
  assert.equal(backupSetJson(rows, inst, time).json, JSON.stringify(rows.map((r) => redisBackupSet(r, inst, time))));
  assert.equal(backupSetJson([], inst, time).json, "[]");
});

test("a response spliced from raw JSON is the text JSON.stringify makes of it", () => {
  const id = "00000000-0000-4000-8000-000000000000";
  const cases: Array<Record<string, unknown>> = [
    {}, { TotalCount: 0, BackupSet: [] }, { a: 1, skipped: undefined, f: () => 1, s: "\u2028\"q\"", nested: { d: new Date(0), n: null } },
    { RequestId: "theirs", after: 1 },
  ];
  for (const c of cases) assert.equal(responseJson(c, id), JSON.stringify({ Response: { ...c, RequestId: id } }));
  const set = [{ x: 1 }, { y: "two" }];
  assert.equal(responseJson({ TotalCount: 2, BackupSet: new RawJson(JSON.stringify(set)) }, id), JSON.stringify({ Response: { TotalCount: 2, BackupSet: set, RequestId: id } }));
  // Stringified by anyone else, a RawJson is its value.
  assert.equal(JSON.stringify({ v: new RawJson("[1,2]") }), '{"v":[1,2]}');
});
