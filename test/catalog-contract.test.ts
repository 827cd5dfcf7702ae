// One contract for every catalogue backend: the same behaviours, asserted the same way, against the embedded
// SQLite catalogue and against PostgreSQL (a fresh database on the server CI runs). Two handles on one catalogue
// (two connections to one SQLite file, two pools on one database) stand for two nodes where races matter.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Catalog, CatalogTx } from "../src/catalog/catalog";
import { openCatalog } from "../src/catalog/open";
import type { Backup, BackupQuery, BackupStatus, Instance, ProvisionedInstance, StreamSegment, Task } from "../src/catalog/types";
import { freshDatabase, TestDatabase } from "./support/postgres";

const STATUSES: BackupStatus[] = [1, 2, 3, 4, -1, -2];
const T0 = Date.UTC(2024, 0, 1);
const MIN = 60_000;

function instance(id: string, over: Partial<Instance> = {}): Instance {
  return {
    instanceId: id, accountId: "1300000001", region: "ap-guangzhou", name: `name-${id}`, instanceType: 17, shardNum: 1, memSizeMb: 0, createdAt: T0,
    autoBackupWeekDays: ["Monday", "Friday"], autoBackupPeriod: "01:00-02:00", backupStorageDays: 7, lastAutoWindow: 0, redisUrl: "redis://127.0.0.1:6379", ...over,
  };
}

let made = 0;
function backup(instanceId: string, over: Partial<Backup> = {}): Backup {
  made++;
  const startTime = T0 + (made % 50) * MIN;
  return {
    backupId: `${made.toString(16).padStart(8, "0")}-0000-4000-8000-${(made * 7919).toString(16).padStart(12, "0")}`, instanceId, startTime, endTime: startTime + 1000,
    backupType: "0", status: STATUSES[made % 6]!, remark: `r${made}`, locked: 0, backupSize: made * 10, fullBackup: 0, instanceType: 17, fileType: "RDB-Redis 7.0",
    expireTime: startTime + 86_400_000, encrypted: false, files: [{ key: `backups/x${made}/shard-0.rdb.gz`, bytes: made, sha256: "ab".repeat(32), shard: 0, storedBytes: made }], ...over,
  };
}

function task(instanceId: string, over: Partial<Task> = {}): Omit<Task, "taskId"> {
  return { instanceId, accountId: "1300000001", taskType: "012", status: "preparing", progress: 0, startTime: T0, message: "", ...over };
}

/** A new instance with `n` new backups, inserted in one transaction. */
async function seedBackups(cat: Catalog, instanceId: string, n: number): Promise<Backup[]> {
  await cat.upsertInstance(instance(instanceId));
  const all: Backup[] = [];
  await cat.transaction(async (tx) => {
    for (let i = 0; i < n; i++) {
      const bk = backup(instanceId);
      all.push(bk);
      await tx.insertBackup(bk);
    }
  });
  return all;
}

const byteOrder = (p: string, q: string) => Buffer.compare(Buffer.from(p), Buffer.from(q));

/** What listBackups answers for `q`, read naively off `all`: filtered, newest first (ties by id bytes), one page. */
function naiveListing(all: Backup[], q: BackupQuery): { total: number; ids: string[] } {
  const hits = all.filter((r) => (q.begin === undefined || r.startTime >= q.begin) && (q.end === undefined || r.startTime <= q.end) && (!q.statuses || q.statuses.includes(r.status)))
    .sort((p, r) => (p.startTime !== r.startTime ? r.startTime - p.startTime : byteOrder(p.backupId, r.backupId)));
  return { total: hits.length, ids: hits.slice(q.offset, q.offset + q.limit).map((r) => r.backupId) };
}

interface Backend {
  name: string;
  open(): Promise<[Catalog, Catalog]>;
  cleanup(): Promise<void>;
}

const backends: Backend[] = [
  (() => {
    let dir = "";
    return {
      name: "sqlite",
      async open() {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-contract-"));
        const url = `sqlite:${path.join(dir, "catalog.db")}`;
        return [await openCatalog(url), await openCatalog(url)];
      },
      async cleanup() {
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  })(),
  (() => {
    let db: TestDatabase;
    return {
      name: "postgres",
      async open() {
        db = await freshDatabase("contract");
        return [await openCatalog(db.url), await openCatalog(db.url)];
      },
      async cleanup() {
        await db.drop();
      },
    };
  })(),
];

for (const backend of backends) {
  describe(`catalogue contract: ${backend.name}`, () => {
    let a: Catalog;
    let b: Catalog;
    before(async () => {
      [a, b] = await backend.open();
    });
    after(async () => {
      await a.close();
      await b.close();
      await backend.cleanup();
    });

    test("migrations: applied at open, nothing pending, idempotent; the catalogue answers a ping", async () => {
      assert.deepEqual(await a.pendingMigrations(), []);
      assert.deepEqual(await a.migrate(), []);
      await a.ping();
      assert.equal(a.kind, backend.name);
      assert.doesNotMatch(a.describe(), /password|:[^/@]*@/);
    });

    test("credentials: put, read (a copy), list, count, delete; another handle sees changes", async () => {
      await a.putCredential({ secretId: "AKIDone", secretKey: "k1", accountId: "1300000001", policy: { Actions: ["DescribeInstanceBackups"], Instances: ["crs-aaaaaaaa"] } });
      await a.putCredential({ secretId: "AKIDtwo", secretKey: "k2", accountId: "1300000002", token: "tok" });
      const one = (await a.credential("AKIDone"))!;
      assert.deepEqual(one, { secretId: "AKIDone", secretKey: "k1", accountId: "1300000001", policy: { Actions: ["DescribeInstanceBackups"], Instances: ["crs-aaaaaaaa"] } });
      one.policy!.Actions!.push("mutated");
      assert.deepEqual((await a.credential("AKIDone"))!.policy!.Actions, ["DescribeInstanceBackups"], "a cached credential is handed out as a copy");
      assert.equal((await b.credential("AKIDtwo"))!.token, "tok");
      assert.equal(await a.credential("AKIDnope"), undefined);
      assert.equal(await a.credentialCount(), 2);
      assert.deepEqual((await a.credentials("1300000002")).map((c) => c.secretId), ["AKIDtwo"]);
      // Overwrite through the other handle, then revoke: both seen (SQLite at once; PostgreSQL within the cache TTL).
      await b.putCredential({ secretId: "AKIDone", secretKey: "k1-new", accountId: "1300000001" });
      await waitUntil(async () => (await a.credential("AKIDone"))?.secretKey === "k1-new");
      assert.equal(await b.deleteCredential("AKIDtwo"), true);
      assert.equal(await b.deleteCredential("AKIDtwo"), false);
      await waitUntil(async () => (await a.credential("AKIDtwo")) === undefined);
    });

    test("instances: upsert keeps schedule state, update, list by account, lock in a transaction", async () => {
      await a.upsertInstance(instance("crs-aaaaaaaa"));
      await a.upsertInstance(instance("crs-bbbbbbbb", { accountId: "1300000002" }));
      await a.updateInstance("crs-aaaaaaaa", { lastAutoWindow: 123, autoBackupWeekDays: ["Sunday"], redisVersion: "7.0.15" });
      await a.upsertInstance(instance("crs-aaaaaaaa", { name: "renamed", deletedAt: undefined }));
      const i = (await a.instance("crs-aaaaaaaa"))!;
      assert.equal(i.name, "renamed");
      assert.equal(i.lastAutoWindow, 123, "re-registration keeps the schedule's state");
      assert.deepEqual(i.autoBackupWeekDays, ["Sunday"]);
      assert.equal(i.redisVersion, "7.0.15");
      assert.deepEqual((await a.instances("1300000002")).map((x) => x.instanceId), ["crs-bbbbbbbb"]);
      assert.equal((await a.instances()).length >= 2, true);
      await a.updateInstance("crs-bbbbbbbb", { deletedAt: 5 });
      await waitUntil(async () => (await b.instance("crs-bbbbbbbb"))?.deletedAt === 5);
      const locked = await a.transaction((tx) => tx.lockInstance("crs-aaaaaaaa"));
      assert.equal(locked!.instanceId, "crs-aaaaaaaa");
      assert.equal(await a.transaction((tx) => tx.lockInstance("crs-zzzzzzzz")), undefined);
    });

    test("backups: insert, read, update, conditional transitions and locks, delete", async () => {
      const x = backup("crs-aaaaaaaa", { status: 2 });
      await a.insertBackup(x);
      assert.deepEqual(await b.backup(x.backupId), { ...x, fixture: false });
      await a.updateBackup(x.backupId, { remark: "changed", files: [], endTime: undefined });
      const y = (await a.backup(x.backupId))!;
      assert.equal(y.remark, "changed");
      assert.deepEqual(y.files, []);
      assert.equal(y.endTime, undefined);
      assert.equal(await a.lockBackup(x.backupId), true);
      assert.equal(await b.lockBackup(x.backupId), false, "one holder at a time");
      assert.equal(await a.transitionBackup(x.backupId, [2, 4], 3), false, "a locked backup does not move unless asked with its lock");
      assert.equal(await a.transitionBackup(x.backupId, [2, 4], 3, { locked: 1 }, 1), true);
      assert.equal(await b.transitionBackup(x.backupId, [2, 4], 3, { locked: 1 }, 1), false, "a transition happens once");
      assert.equal((await a.backup(x.backupId))!.status, 3);
      assert.equal(await a.transitionBackup(x.backupId, [3], 2, { locked: 0 }, 1), true);
      await a.upsertBackup({ ...x, remark: "replaced", fixture: true });
      assert.equal((await a.backup(x.backupId))!.remark, "replaced");
      assert.equal((await a.backup(x.backupId))!.fixture, true);
      await a.deleteBackupRecord(x.backupId);
      assert.equal(await b.backup(x.backupId), undefined);
    });

    test("listing: pages, windows and status sets match a naive reading; TotalCount from counts", async () => {
      const all = await seedBackups(a, "crs-listing1", 400);
      let seed = 7;
      const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
      for (let round = 0; round < 60; round++) {
        const q: BackupQuery = { instanceId: "crs-listing1", limit: 1 + rnd(50), offset: rnd(3) === 0 ? rnd(420) : rnd(20) };
        if (rnd(2)) q.begin = T0 + rnd(50) * MIN;
        if (rnd(2)) q.end = T0 + rnd(50) * MIN;
        if (rnd(2)) q.statuses = [STATUSES[rnd(6)]!, STATUSES[rnd(6)]!];
        const got = await (round % 2 ? a : b).listBackups(q);
        const want = naiveListing(all, q);
        assert.equal(got.total, want.total, JSON.stringify(q));
        assert.deepEqual(got.rows.map((r) => r.backupId), want.ids, JSON.stringify(q));
      }
      const stats = await a.stats();
      assert.ok(stats.backups >= 400);
      assert.equal(stats.backupsByStatus["2"]! >= all.filter((x) => x.status === 2).length, true);
    });

    test("listing from the in-memory index of a large instance: the same answers, and another node's change shows at once", async () => {
      type WithListing = { listingOptions: { indexThreshold: number } };
      const handles = [a, b] as unknown as WithListing[];
      const saved = handles.map((h) => h.listingOptions.indexThreshold);
      for (const h of handles) h.listingOptions.indexThreshold = 100;
      try {
        const all = await seedBackups(a, "crs-listing2", 300);
        const check = async (c: Catalog, q: BackupQuery) => {
          const got = await c.listBackups(q);
          const want = naiveListing(all, q);
          assert.equal(got.total, want.total, JSON.stringify(q));
          assert.deepEqual(got.rows.map((r) => r.backupId), want.ids, JSON.stringify(q));
        };
        const queries: BackupQuery[] = [
          { instanceId: "crs-listing2", limit: 20, offset: 0 },
          { instanceId: "crs-listing2", limit: 20, offset: 250 },
          { instanceId: "crs-listing2", limit: 50, offset: 5, begin: T0 + 10 * MIN, end: T0 + 30 * MIN },
          { instanceId: "crs-listing2", limit: 10, offset: 3, statuses: [2, 4] },
          { instanceId: "crs-listing2", limit: 10, offset: 400 },
        ];
        for (const q of queries) await check(a, q);
        // The other handle (another node) inserts, deletes and changes a status: the next page shows all three.
        const added = backup("crs-listing2", { startTime: T0 + 99 * MIN, status: 2 });
        await b.insertBackup(added);
        all.push(added);
        const gone = all.splice(100, 1)[0]!;
        await b.deleteBackupRecord(gone.backupId);
        const changed = all[150]!;
        await b.updateBackup(changed.backupId, { status: -1 });
        changed.status = -1;
        for (const q of queries) await check(a, q);
        assert.equal((await a.listBackups({ instanceId: "crs-listing2", limit: 1, offset: 0 })).rows[0]!.backupId, added.backupId);
      } finally {
        handles.forEach((h, i) => (h.listingOptions.indexThreshold = saved[i]!));
      }
    });

    test("lifecycle reads: expired, by status, of an instance; purge of retired records", async () => {
      await a.upsertInstance(instance("crs-life0001"));
      const now = T0 + 10 * 86_400_000;
      const expired = backup("crs-life0001", { status: 2, expireTime: now - 1 });
      const lockedExpired = backup("crs-life0001", { status: 4, expireTime: now - 1, locked: 1 });
      const fixtureExpired = backup("crs-life0001", { status: 2, expireTime: now - 1, fixture: true });
      const fresh = backup("crs-life0001", { status: 2, expireTime: now + 1 });
      const oldDeleted = backup("crs-life0001", { status: -2, deletedAt: now - 100 });
      const newDeleted = backup("crs-life0001", { status: -2, deletedAt: now + 100 });
      for (const x of [expired, lockedExpired, fixtureExpired, fresh, oldDeleted, newDeleted]) await a.insertBackup(x);
      const ids = (await a.expiredBackups(now)).map((x) => x.backupId);
      assert.ok(ids.includes(expired.backupId) && !ids.includes(lockedExpired.backupId) && !ids.includes(fixtureExpired.backupId) && !ids.includes(fresh.backupId));
      assert.equal((await a.backupsOfInstance("crs-life0001")).length, 6);
      assert.ok((await a.backupsInStatus(-2)).some((x) => x.backupId === oldDeleted.backupId));
      const locked = (await b.lockedBackups()).map((x) => x.backupId);
      assert.ok(locked.includes(lockedExpired.backupId), "a locked Status 4 backup is found");
      assert.ok(!locked.includes(expired.backupId) && !locked.includes(fresh.backupId), "unlocked ones are not");
      assert.ok((await a.purgeRetired(now)) >= 1);
      assert.equal(await a.purgeRetired(now), 0, "nothing left to purge");
      assert.equal(await a.backup(oldDeleted.backupId), undefined);
      assert.ok(await a.backup(newDeleted.backupId));
    });

    test("tasks: insert, update with state, by status, active per instance, list with filters and the instance name", async () => {
      const id = await a.insertTask(task("crs-aaaaaaaa", { params: { remark: "p" }, backupId: "bk-1" }));
      await a.updateTask(id, { status: "running", progress: 40, state: { replicaOf: { host: "10.0.0.1", port: 4242 } } });
      const t = (await b.task(id))!;
      assert.equal(t.status, "running");
      assert.equal(t.progress, 40);
      assert.deepEqual(t.params, { remark: "p" });
      assert.deepEqual(t.state, { replicaOf: { host: "10.0.0.1", port: 4242 } });
      assert.ok((await a.tasksInStatus(["running"])).some((x) => x.taskId === id));
      assert.deepEqual((await a.activeTasks("crs-aaaaaaaa", ["012"])).map((x) => x.taskId), [id]);
      assert.deepEqual(await a.activeTasks("crs-aaaaaaaa", ["010"]), []);
      await a.updateTask(id, { status: "succeed", endTime: T0 + 5, state: undefined });
      assert.deepEqual(await a.activeTasks("crs-aaaaaaaa", ["012"]), []);
      const listed = await a.listTasks({ accountId: "1300000001", region: "ap-guangzhou", instanceName: "RENAMED", limit: 10, offset: 0, statuses: ["succeed"] });
      assert.ok(listed.rows.some((x) => x.taskId === id && x.instanceName === "renamed"));
      assert.equal((await a.listTasks({ accountId: "1300000001", instanceIds: [], limit: 10, offset: 0 })).total, 0);
      assert.equal((await a.task(id))!.state, undefined);
    });

    test("the queue: each task claimed by exactly one of many racing claimers; by id; leases renewed and taken over", async () => {
      const ids: number[] = [];
      for (let i = 0; i < 12; i++) ids.push(await a.insertTask(task("crs-aaaaaaaa", { taskType: "009" })));
      const claimers = [a, b, a, b, a, b];
      const won: Task[] = [];
      await Promise.all(claimers.map(async (c, n) => {
        for (;;) {
          const t = await c.claimTask(`node-${n}`, ["009"], T0 + 1000, T0);
          if (!t) return;
          won.push(t);
        }
      }));
      assert.deepEqual(won.map((t) => t.taskId).sort((x, y) => x - y), ids, "every task once, none twice");
      assert.ok(won.every((t) => t.status === "running" && t.owner?.startsWith("node-") && t.leaseUntil === T0 + 1000));
      assert.equal(await a.claimTask("node-x", ["009"], T0 + 1000, T0), undefined);

      const byId = await a.insertTask(task("crs-aaaaaaaa", { taskType: "010" }));
      const [first, second] = await Promise.all([a.claimTaskById(byId, "cli-1", T0 + 500, T0), b.claimTaskById(byId, "cli-2", T0 + 500, T0)]);
      assert.equal(Number(first) + Number(second), 1, "one claimer by id");
      const owner = first ? "cli-1" : "cli-2";
      assert.equal(await a.renewLease(byId, owner, T0 + 2000), true);
      assert.equal(await a.renewLease(byId, "someone-else", T0 + 2000), false);
      // Not lapsed yet: nobody takes it over; lapsed: exactly one does; a dead owner's task at once.
      assert.equal(await b.takeOver(byId, owner, "rescuer", T0 + 9000, T0 + 1999), false);
      const [r1, r2] = await Promise.all([a.takeOver(byId, owner, "rescuer-a", T0 + 9000, T0 + 2001), b.takeOver(byId, owner, "rescuer-b", T0 + 9000, T0 + 2001)]);
      assert.equal(Number(r1) + Number(r2), 1);
      assert.equal(await a.renewLease(byId, owner, T0 + 3000), false, "the old owner lost it");
      const rescuer = r1 ? "rescuer-a" : "rescuer-b";
      assert.equal(await a.takeOver(byId, rescuer, "restarted", T0 + 9000, T0, rescuer), true, "a known-dead owner's task is taken over before its lease lapses");
    });

    test("stats: counts and stored bytes follow every insert, size change, status change and delete", async () => {
      await a.upsertInstance(instance("crs-stats001"));
      const base = await a.stats();
      const x = backup("crs-stats001", { status: 1, backupSize: 0 });
      const y = backup("crs-stats001", { status: 2, backupSize: 500 });
      await a.insertBackup(x);
      await a.insertBackup(y);
      await a.updateBackup(x.backupId, { backupSize: 1234 }); // a backup finishing: its size first...
      await a.updateBackup(x.backupId, { status: 2 }); // ...then its status
      await a.transitionBackup(y.backupId, [2], -1, { files: [] }); // expired: no longer stored
      let s = await b.stats();
      assert.equal(s.storedBytes - base.storedBytes, 1234);
      assert.equal(s.backups - base.backups, 2);
      assert.equal((s.backupsByStatus["-1"] ?? 0) - (base.backupsByStatus["-1"] ?? 0), 1);
      await a.deleteBackupRecord(x.backupId);
      s = await a.stats();
      assert.equal(s.storedBytes, base.storedBytes);
      assert.equal(s.backups - base.backups, 1);
      assert.ok(s.instances >= 1);
    });

    test("transactions: all or nothing, and what a transaction wrote is read back inside it", async () => {
      const before = await a.credentialCount();
      await assert.rejects(a.transaction(async (tx) => {
        await tx.putCredential({ secretId: "AKIDrollback", secretKey: "x", accountId: "1300000009" });
        assert.ok(await tx.credential("AKIDrollback"));
        await tx.insertBackup(backup("crs-aaaaaaaa"));
        throw new Error("abort");
      }), /abort/);
      assert.equal(await a.credentialCount(), before);
      assert.equal(await a.credential("AKIDrollback"), undefined);
      // Concurrent transactions on one handle and across handles serialise rather than interleave.
      await a.upsertInstance(instance("crs-counter1"));
      await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).transaction(async (tx) => {
        const cur = (await tx.lockInstance("crs-counter1"))!;
        await tx.updateInstance("crs-counter1", { memSizeMb: cur.memSizeMb + 1 });
      })));
      await waitUntil(async () => (await a.instance("crs-counter1"))?.memSizeMb === 8);
    });

    test("transactions: a call on the outer catalogue inside transaction() is refused, and nothing of the transaction is kept", async () => {
      await a.upsertInstance(instance("crs-misuse01"));
      const before = await a.credentialCount();
      for (const call of [
        () => a.credential("AKIDmisuse"),
        () => a.instance("crs-misuse01"),
        () => a.listBackups({ instanceId: "crs-misuse01", limit: 10, offset: 0 }),
        () => a.putCredential({ secretId: "AKIDmisuse2", secretKey: "x", accountId: "1300000009" }),
        () => a.updateTask(1, { progress: 1 }),
        () => a.claimTask("node", ["012"], T0, T0),
        () => a.transaction(async () => undefined),
      ]) {
        await assert.rejects(a.transaction(async (tx) => {
          await tx.putCredential({ secretId: "AKIDmisuse", secretKey: "x", accountId: "1300000009" });
          // Even after an await, and from a helper the callback calls: still inside.
          await new Promise((r) => setImmediate(r));
          await call();
        }), (err: Error) => err.name === "CatalogMisuseError" && /inside its own transaction/.test(err.message), String(call));
      }
      assert.equal(await a.credentialCount(), before, "every refused transaction was rolled back");
      // Another handle (another node) is not this transaction's catalogue: it answers, without the uncommitted change.
      assert.equal(await a.transaction(async (tx) => {
        await tx.updateInstance("crs-misuse01", { name: "renamed" });
        assert.equal((await b.instance("crs-misuse01"))?.name, "name-crs-misuse01");
        return (await tx.instance("crs-misuse01"))?.name;
      }), "renamed");
      assert.equal((await a.instance("crs-misuse01"))?.name, "renamed", "the outer catalogue answers again once the transaction ended");
      // A tx kept past its transaction is refused too, instead of writing outside any transaction.
      let kept: CatalogTx | undefined;
      await a.transaction(async (tx) => {
        kept = tx;
      });
      await assert.rejects(kept!.credential("AKIDmisuse"), /after its transaction ended/);
      // Work started inside a transaction that outlives it may use the outer catalogue once it has ended.
      let later: Promise<number> | undefined;
      await a.transaction(async () => {
        later = new Promise((r) => setTimeout(r, 20)).then(() => a.credentialCount());
      });
      assert.equal(await later, before);
    });

    test("provisioned instances: a port held once across racing nodes, reads, owner filter, state moves from a set, delete frees the port", async () => {
      const row = (id: string, owner: string, port: number): ProvisionedInstance => ({ instanceId: id, owner, provider: "local", port, dataDir: `/data/instances/${id}`, state: "loading", taskId: 7, createdAt: T0 });
      const raced = await Promise.all([a.insertProvisioned(row("crs-prov0001", "node-a", 7401)), b.insertProvisioned(row("crs-prov0002", "node-b", 7401))]);
      assert.deepEqual(raced.filter(Boolean).length, 1, "exactly one node holds the port");
      const winner = raced[0] ? "crs-prov0001" : "crs-prov0002";
      const loser = raced[0] ? "crs-prov0002" : "crs-prov0001";
      assert.equal(await a.provisioned(loser), undefined);
      assert.equal(await b.insertProvisioned(row(loser, "node-b", 7402)), true);
      assert.deepEqual(await b.provisioned(winner), row(winner, raced[0] ? "node-a" : "node-b", 7401));
      assert.deepEqual((await a.provisionedInstances()).map((p) => p.instanceId), ["crs-prov0001", "crs-prov0002"]);
      assert.deepEqual((await a.provisionedInstances("node-b")).map((p) => p.port).sort(), raced[0] ? [7402] : [7401, 7402]);
      // A state move happens once whoever races for it; a move from a state it is not in does nothing.
      const moved = await Promise.all([a.setProvisionedState(winner, ["loading"], "ready", "node-a"), b.setProvisionedState(winner, ["loading"], "ready", "node-b")]);
      assert.equal(moved.filter(Boolean).length, 1);
      const after = (await a.provisioned(winner))!;
      assert.equal(after.state, "ready");
      assert.equal(after.owner, moved[0] ? "node-a" : "node-b");
      assert.equal(await a.setProvisionedState(winner, ["loading"], "ready"), false);
      assert.equal(await a.setProvisionedState(winner, ["loading", "ready"], "ready"), true);
      assert.equal((await a.provisioned(winner))!.owner, after.owner, "no owner given: the owner stays");
      // A row written in a failed transaction is not kept; delete frees the port for another instance.
      await assert.rejects(a.transaction(async (tx) => {
        await tx.insertProvisioned(row("crs-prov0003", "node-a", 7403));
        throw new Error("rolled back");
      }), /rolled back/);
      assert.equal(await b.provisioned("crs-prov0003"), undefined);
      await a.deleteProvisioned(winner);
      assert.equal(await b.insertProvisioned(row("crs-prov0004", "node-b", 7401)), true);
      await a.deleteProvisioned("crs-prov0404"); // absent: fine
    });

    test("cluster-shaped provisioned instances: every node's port held once across instances, a taken one refuses the whole row, delete frees them all", async () => {
      const row = (id: string, ports: number[]): ProvisionedInstance => ({ instanceId: id, owner: "node-a", provider: "local", port: ports[0]!, clusterPorts: ports, dataDir: `/data/instances/${id}`, state: "loading", taskId: 8, createdAt: T0 });
      assert.equal(await a.insertProvisioned(row("crs-provc001", [7501, 7502, 7503])), true);
      assert.deepEqual(await b.provisioned("crs-provc001"), row("crs-provc001", [7501, 7502, 7503]));
      // A cluster of one master is still a cluster.
      assert.equal(await a.insertProvisioned(row("crs-provc002", [7510])), true);
      assert.deepEqual((await b.provisioned("crs-provc002"))!.clusterPorts, [7510]);
      // A standalone instance or another cluster on a port the first one's third node holds: refused, nothing kept.
      assert.equal(await b.insertProvisioned({ ...row("crs-provc003", [7503]), clusterPorts: undefined } as ProvisionedInstance), false);
      assert.equal(await a.insertProvisioned(row("crs-provc004", [7520, 7503])), false);
      assert.equal(await a.provisioned("crs-provc004"), undefined);
      assert.equal(await a.insertProvisioned(row("crs-provc005", [7520, 7521])), true, "the refused row's own ports are free");
      const listed = new Map((await b.provisionedInstances()).map((p) => [p.instanceId, p.clusterPorts]));
      assert.deepEqual([listed.get("crs-provc001"), listed.get("crs-provc005")], [[7501, 7502, 7503], [7520, 7521]]);
      await a.deleteProvisioned("crs-provc001");
      assert.equal(await b.insertProvisioned(row("crs-provc006", [7502, 7503, 7501])), true);
      for (const id of ["crs-provc002", "crs-provc005", "crs-provc006"]) await a.deleteProvisioned(id);
    });

    test("streams: the mode and its since, one lease holder among racing nodes, renewal, takeover after it lapses, release; segments and bases", async () => {
      const id = "crs-strm0001";
      await a.upsertInstance(instance(id));
      const on = await a.setBackupMode(id, "SecondLevelBackup", T0);
      assert.equal(on.mode, "SecondLevelBackup");
      assert.equal(on.since, T0);
      assert.equal((await b.setBackupMode(id, "SecondLevelBackup", T0 + MIN)).since, T0, "since is kept while it stays on");
      const claims = await Promise.all([a.claimStream(id, "node-a", T0 + 10_000, T0), b.claimStream(id, "node-b", T0 + 10_000, T0)]);
      assert.equal(claims.filter(Boolean).length, 1, "one lease holder");
      const [holder, other] = claims[0] ? ["node-a", "node-b"] : ["node-b", "node-a"];
      assert.equal(await a.claimStream(id, holder, T0 + 20_000, T0 + 5_000), true, "renewed by its holder");
      assert.equal(await b.claimStream(id, other, T0 + 30_000, T0 + 19_999), false, "not taken before it lapses");
      assert.equal(await b.claimStream(id, other, T0 + 40_000, T0 + 20_001), true, "taken over once it lapsed");
      await a.releaseStream(id, holder); // not the holder any more: nothing changes
      assert.equal((await a.streamConfig(id))!.owner, other);
      // Starting afresh (a cluster's number of masters changed): only the lease holder moves since and the epoch.
      assert.equal(await a.restartStream(id, holder, T0 + 21_000), false, "not by a node that lost the lease");
      assert.equal((await b.streamConfig(id))!.epoch, undefined);
      assert.equal(await a.restartStream(id, other, T0 + 21_000), true);
      const afresh = (await b.streamConfig(id))!;
      assert.deepEqual([afresh.since, afresh.epoch], [T0 + 21_000, T0 + 21_000]);
      await a.setStreamStatus(id, other, "streaming");
      await a.releaseStream(id, other);
      const released = (await b.streamConfig(id))!;
      assert.equal(released.owner, undefined);
      assert.equal(released.status, "streaming");
      assert.deepEqual((await a.streamConfigs("SecondLevelBackup")).map((c) => c.instanceId), [id]);
      // Segments in stream order; the last one moved forward by extend; bases by shard.
      const seg = (start: number, end: number, fromMs: number, toMs: number): Omit<StreamSegment, "segmentId"> => ({
        instanceId: id, shard: 0, replid: "a".repeat(40), startOffset: start, endOffset: end, startDb: 0, endDb: 2, fromMs, toMs,
        samples: [[end, toMs]], units: 3, bytes: end - start, key: `streams/${id}/shard-0/${start}-${end}.seg.gz`, sha256: "cd".repeat(32), createdAt: toMs,
      });
      const s1 = await a.insertStreamSegment(seg(100, 200, T0, T0 + 1000));
      const s2 = await b.insertStreamSegment(seg(200, 300, T0 + 1000, T0 + 2000));
      assert.ok(s2 > s1);
      await a.extendStreamSegment(s2, { endOffset: 310, endDb: 0, toMs: T0 + 3000, samples: [[300, T0 + 2000], [310, T0 + 3000]] });
      const last = (await b.lastStreamSegment(id, 0))!;
      assert.deepEqual([last.segmentId, last.endOffset, last.endDb, last.toMs, last.samples], [s2, 310, 0, T0 + 3000, [[300, T0 + 2000], [310, T0 + 3000]]]);
      assert.deepEqual((await b.streamSegments(id, 0, T0 + 2500)).map((x) => x.segmentId), [s2]);
      assert.deepEqual((await b.streamSegments(id, 0)).map((x) => x.startOffset), [100, 200]);
      assert.deepEqual(await b.streamStats(id, 0), { segments: 2, bytes: 200, fromMs: T0, toMs: T0 + 3000 });
      await a.insertStreamBase({ backupId: "00000000-0000-4000-8000-00000000b001", instanceId: id, shard: 0, replid: "a".repeat(40), offset: 100, takenAt: T0 });
      await a.insertStreamBase({ backupId: "00000000-0000-4000-8000-00000000b002", instanceId: id, shard: 1, replid: "b".repeat(40), offset: 5, takenAt: T0 + 1 });
      await a.setStreamBaseProof("00000000-0000-4000-8000-00000000b001", { ok: true, at: T0 + 5, previous: "00000000-0000-4000-8000-00000000b000", units: 3, detail: "equal" });
      const bases = await b.streamBases(id);
      assert.deepEqual(bases.map((x) => [x.shard, x.offset]), [[0, 100], [1, 5]]);
      assert.deepEqual(bases[0]!.proof, { ok: true, at: T0 + 5, previous: "00000000-0000-4000-8000-00000000b000", units: 3, detail: "equal" });
      assert.deepEqual((await b.streamBases(id, 1)).map((x) => x.replid), ["b".repeat(40)]);
      await a.deleteStreamSegment(s1);
      assert.deepEqual((await b.streamSegments(id, 0)).map((x) => x.segmentId), [s2]);
      // A segment holding keys moved in from another master (RESTORE-ASKING) keeps their count.
      assert.equal(await b.lastKeyMove(id), undefined);
      const s3 = await a.insertStreamSegment({ ...seg(310, 400, T0 + 3000, T0 + 4000), keyMoves: 7 });
      assert.deepEqual((await b.streamSegments(id, 0)).map((x) => [x.segmentId, x.keyMoves]), [[s2, undefined], [s3, 7]]);
      assert.equal(await b.lastKeyMove(id), T0 + 4000);
      await a.deleteStreamSegment(s3);
      // Switched off: since and the lease cleared, no claim possible.
      const off = await b.setBackupMode(id, "NormalLevelBackup", T0 + 9 * MIN);
      assert.equal(off.since, undefined);
      assert.equal(await a.claimStream(id, "node-a", T0 + 99_000, T0 + 50_000), false);
    });

    test("settings: put, read, and settingOnce keeps the first value of racing writers", async () => {
      await a.putSetting("s.one", "1");
      assert.equal(await b.setting("s.one"), "1");
      await a.putSetting("s.one", "2");
      assert.equal(await b.setting("s.one"), "2");
      assert.equal(await a.setting("s.none"), undefined);
      const [x, y] = await Promise.all([a.settingOnce("s.once", "from-a"), b.settingOnce("s.once", "from-b")]);
      assert.equal(x, y, "both see the one stored value");
      assert.ok(["from-a", "from-b"].includes(x));
    });
  });
}

async function waitUntil(probe: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
