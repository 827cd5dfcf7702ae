// The backup lifecycle driven by a clock the test controls: automatic backups in their window, retention
// (-1), deletion (-2) and the audit trail, and RestoreInstance into real redis-server processes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { DEFAULTS, startServer } from "../src/app";
import { silentLogger } from "../src/log";
import { LocalTime } from "../src/protocol/time";
import { assertSameData, dbsize, send, writeMixedDataset } from "./support/dataset";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { expectSdkError, KEY, RedisClient, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";

const shanghai = new LocalTime("Asia/Shanghai");
const at = (local: string) => shanghai.parse(local)!;
// 2024-06-03 is a Monday. `live` switches to the real time for the restore tests.
const clock = { t: at("2024-06-03 01:00:00"), live: false, now() { return this.live ? Date.now() : this.t; } };

const servers: RedisProcess[] = [];
async function redis(extra: string[] = [], password?: string): Promise<RedisProcess> {
  const r = await startRedis(["--repl-diskless-sync-delay", "0", ...extra], { password });
  servers.push(r);
  return r;
}

let src: RedisProcess;
let target: RedisProcess;
let srv: TestServer;
let c: SdkClient;
const MAIN = "crs-life0001";
const TARGET = "crs-life0002";

before(async () => {
  src = await redis();
  target = await redis(["--requirepass", "tpw"], "tpw");
  await writeMixedDataset(src.endpoint);
  await send(src.endpoint, Array.from({ length: 2000 }, (_, i) => ["SET", `plain:${i}`, `value-${i}`]));
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [
      { InstanceId: MAIN, InstanceName: "life", Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${src.port}` },
      { InstanceId: TARGET, InstanceName: "target", Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:tpw@127.0.0.1:${target.port}` },
    ],
  }, { rateLimit: 0, clock, schedulerIntervalMs: 0, auditDays: 30, autoBackups: true });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  await srv?.close();
  for (const r of servers) r.kill();
});

async function tasksOf(type: string) {
  return (await c.DescribeTaskList({ InstanceId: MAIN, TaskTypes: [type], Limit: 100 })).Tasks!;
}

function storedFile(backupId: string): string {
  return path.join(srv.dataDir, "data", "files", "backups", backupId, "shard-0.rdb.gz");
}

describe("automatic backups", () => {
  test("the default config, and every bad input refused with its code", async () => {
    const cfg = await c.DescribeAutoBackupConfig({ InstanceId: MAIN });
    assert.deepEqual({ ...cfg, RequestId: undefined }, {
      AutoBackupType: 1, WeekDays: ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"], TimePeriod: "00:00-01:00",
      BackupStorageDays: 7, BinlogStorageDays: 0, RequestId: undefined,
    });
    await expectSdkError(c.ModifyAutoBackupConfig({ InstanceId: MAIN, WeekDays: ["Funday"], TimePeriod: "02:00-03:00" }), "InvalidParameterValue.WeekDaysIsInvalid");
    await expectSdkError(c.ModifyAutoBackupConfig({ InstanceId: MAIN, WeekDays: [], TimePeriod: "02:00-03:00" }), "InvalidParameterValue.WeekDaysIsInvalid");
    for (const bad of ["2:00-3:00", "02:30-03:00", "02:00-02:00", "25:00-01:00", "morning"]) {
      await expectSdkError(c.ModifyAutoBackupConfig({ InstanceId: MAIN, WeekDays: ["Monday"], TimePeriod: bad }), "InvalidParameter.Period");
    }
    const set = await c.ModifyAutoBackupConfig({ InstanceId: MAIN, WeekDays: ["wednesday", "Monday"], TimePeriod: "02:00-03:00", AutoBackupType: 1, BackupStorageDays: 3 } as never);
    assert.deepEqual(set.WeekDays, ["Monday", "Wednesday"]);
    const now = await c.DescribeAutoBackupConfig({ InstanceId: MAIN });
    assert.equal(now.TimePeriod, "02:00-03:00");
    assert.equal(now.BackupStorageDays, 3);
    // The target keeps no automatic schedule for this test.
    await c.ModifyAutoBackupConfig({ InstanceId: TARGET, WeekDays: ["Sunday"], TimePeriod: "23:00-00:00" });
  });

  test("a scheduled backup fires once in its window on the chosen days, and not outside it", async () => {
    const tick = () => srv.services.scheduler.tick();
    clock.t = at("2024-06-03 01:59:59");
    assert.deepEqual((await tick()).started, []);
    clock.t = at("2024-06-03 02:00:00");
    assert.deepEqual((await tick()).started, [MAIN]);
    const [task] = await tasksOf("017");
    assert.equal((await waitForTask(c, task!.TaskId!)).Status, "succeed");
    clock.t = at("2024-06-03 02:45:00");
    assert.deepEqual((await tick()).started, [], "once per window");
    clock.t = at("2024-06-04 02:30:00"); // Tuesday: not a chosen day
    assert.deepEqual((await tick()).started, []);
    clock.t = at("2024-06-05 03:00:00"); // Wednesday, the window has just closed
    assert.deepEqual((await tick()).started, []);
    const page = await c.DescribeInstanceBackups({ InstanceId: MAIN });
    assert.equal(page.TotalCount, 1);
    assert.equal(page.BackupSet![0]!.BackupType, "1");
    assert.equal(page.BackupSet![0]!.StartTime, "2024-06-03 02:00:00");
    assert.equal(page.BackupSet![0]!.ExpireTime, "2024-06-06 02:00:00");
  });

  test("a window missed while the server was down is caught up once at start if still open", async () => {
    const dataDir = path.join(srv.dataDir, "data");
    const other = { t: at("2024-06-10 02:20:00"), now() { return this.t; } }; // the next Monday, inside the window
    // A second server process on a copy of the catalogue, started inside an open window.
    const copy = path.join(srv.dataDir, "copy");
    fs.cpSync(dataDir, copy, { recursive: true });
    const second = await startServer({ ...DEFAULTS, port: 0, dataDir: copy, rateLimit: 0, regions: ["ap-guangzhou"], clock: other, schedulerIntervalMs: 3_600_000, logger: silentLogger, pollMs: 100 }, {});
    try {
      const c2 = new RedisClient({ credential: { secretId: KEY.secretId, secretKey: KEY.secretKey }, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${second.port}`, protocol: "http://" } } });
      const auto = await waitFor("the catch-up backup", async () => {
        const list = await c2.DescribeTaskList({ InstanceId: MAIN, TaskTypes: ["017"] });
        return list.TotalCount === 2 ? list : undefined;
      });
      assert.equal(auto.Tasks![0]!.StartTime, "2024-06-10 02:20:00");
      await second.services.scheduler.tick(); // the start-up pass, still running, is shared
      assert.deepEqual((await second.services.scheduler.tick()).started, [], "caught up once");
    } finally {
      await second.close();
    }
  });
});

describe("retention, deletion and the audit trail", () => {
  let manual: string;
  test("a backup becomes -1 when its ExpireTime passes, and its file is removed (task 046)", async () => {
    clock.t = at("2024-06-05 12:00:00");
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: MAIN, StorageDays: 5 });
    assert.equal((await waitForTask(c, TaskId!)).Status, "succeed");
    manual = (await c.DescribeInstanceBackups({ InstanceId: MAIN, Limit: 1 })).BackupSet![0]!.BackupId!;
    const auto = (await c.DescribeInstanceBackups({ InstanceId: MAIN, BeginTime: "2024-06-03 02:00:00", EndTime: "2024-06-03 02:00:00" })).BackupSet![0]!;
    assert.ok(fs.existsSync(storedFile(auto.BackupId!)));
    clock.t = at("2024-06-06 01:59:59");
    assert.deepEqual((await srv.services.scheduler.tick()).expired, []);
    clock.t = at("2024-06-06 02:00:00");
    assert.deepEqual((await srv.services.scheduler.tick()).expired, [auto.BackupId]);
    const expired = await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [-1] });
    assert.deepEqual(expired.BackupSet!.map((b) => b.BackupId), [auto.BackupId]);
    assert.ok(!fs.existsSync(storedFile(auto.BackupId!)));
    assert.ok((await tasksOf("046")).some((t) => t.Result === 2));
  });

  test("a locked backup outlives its ExpireTime until it is released", async () => {
    assert.ok(await srv.services.catalog.lockBackup(manual));
    clock.t = at("2024-06-10 13:00:00");
    await srv.services.scheduler.tick();
    assert.equal((await c.DescribeBackupDetail({ InstanceId: MAIN, BackupId: manual })).Status, 2);
    await srv.services.catalog.updateBackup(manual, { locked: 0 });
    await srv.services.scheduler.tick();
    const d = await c.DescribeBackupDetail({ InstanceId: MAIN, BackupId: manual });
    assert.equal(d.Status, -1);
    assert.ok(!fs.existsSync(storedFile(manual)));
  });

  test("a deleted backup is -2 with its file removed (task 014), and its record is purged after the audit period", async () => {
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: MAIN });
    assert.equal((await waitForTask(c, TaskId!)).Status, "succeed");
    const b = (await srv.services.catalog.backup((await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [2] })).BackupSet![0]!.BackupId!))!;
    await srv.services.backups.retire(b, -2, KEY.account);
    const deleted = await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [-2] });
    assert.deepEqual(deleted.BackupSet!.map((x) => x.BackupId), [b.backupId]);
    assert.ok(!fs.existsSync(storedFile(b.backupId)));
    assert.ok((await tasksOf("014")).some((t) => t.Result === 2));
    clock.t += 29 * 86_400_000;
    await srv.services.scheduler.tick();
    assert.equal((await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [-2] })).TotalCount, 1, "kept within the audit period");
    clock.t += 2 * 86_400_000;
    await srv.services.scheduler.tick();
    assert.equal((await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [-2] })).TotalCount, 0, "purged after it");
  });
});

describe("RestoreInstance", () => {
  let backupId: string;
  before(async () => {
    clock.live = true;
    await c.ModifyAutoBackupConfig({ InstanceId: MAIN, WeekDays: ["Sunday"], TimePeriod: "23:00-00:00" });
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: MAIN, StorageDays: 30 });
    assert.equal((await waitForTask(c, TaskId!)).Status, "succeed");
    backupId = (await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [2] })).BackupSet![0]!.BackupId!;
  });

  test("refusals: unknown backup, wrong password, expired backup", async () => {
    await expectSdkError(c.RestoreInstance({ InstanceId: TARGET, BackupId: "00000000-0000-4000-8000-000000000000", Password: "tpw" }), "InvalidParameterValue.BackupNotExists");
    await expectSdkError(c.RestoreInstance({ InstanceId: TARGET, BackupId: backupId, Password: "wrong" }), "InvalidParameterValue.PasswordError");
    await expectSdkError(c.RestoreInstance({ InstanceId: TARGET, BackupId: backupId }), "InvalidParameterValue.PasswordError");
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: MAIN });
    assert.equal((await waitForTask(c, TaskId!)).Status, "succeed");
    const doomed = (await srv.services.catalog.backup((await c.DescribeInstanceBackups({ InstanceId: MAIN, Limit: 1 })).BackupSet![0]!.BackupId!))!;
    await srv.services.backups.retire(doomed, -1, KEY.account);
    await expectSdkError(c.RestoreInstance({ InstanceId: TARGET, BackupId: doomed.backupId, Password: "tpw" }), "ResourceUnavailable.BackupStatusAbnormal");
    await srv.services.backups.retire({ ...doomed, status: -1 }, -2, KEY.account);
    await expectSdkError(c.RestoreInstance({ InstanceId: TARGET, BackupId: doomed.backupId, Password: "tpw" }), "ResourceUnavailable.BackupStatusAbnormal");
  });

  test("into a server with other data: the backup replaces it, every key, type, value and TTL as in the source; the backup is locked meanwhile", async () => {
    await send(target.endpoint, [["SET", "unrelated", "x"], ["RPUSH", "plain:1", "not a string"]]);
    const { TaskId } = await c.RestoreInstance({ InstanceId: TARGET, BackupId: backupId, Password: "tpw" });
    assert.equal((await c.DescribeBackupDetail({ InstanceId: MAIN, BackupId: backupId })).Locked, 1);
    await expectSdkError(c.RestoreInstance({ InstanceId: TARGET, BackupId: backupId, Password: "tpw" }), "ResourceUnavailable.BackupLockedError");
    const task = await waitForTask(c, TaskId!);
    assert.equal(task.Status, "succeed", task.TaskMessage);
    assert.equal((await c.DescribeBackupDetail({ InstanceId: MAIN, BackupId: backupId })).Locked, 0);
    assert.equal(await dbsize(target.endpoint), await dbsize(src.endpoint));
    await assertSameData(src.endpoint, target.endpoint);
    const [role] = (await send(target.endpoint, [["ROLE"]])) as [unknown[]];
    assert.equal(String(role[0]), "master");
    const list = await c.DescribeTaskList({ InstanceId: TARGET, TaskTypes: ["010"] });
    assert.equal(list.Tasks![0]!.Result, 2);
  });

  test("into the same instance it was taken from", async () => {
    await send(src.endpoint, [["SET", "after-backup", "1"]]);
    const { TaskId } = await c.RestoreInstance({ InstanceId: MAIN, BackupId: backupId, Password: "" });
    assert.equal((await waitForTask(c, TaskId!)).Status, "succeed");
    const [exists] = await send(src.endpoint, [["EXISTS", "after-backup"]]);
    assert.equal(Number(exists), 0);
  });
});
