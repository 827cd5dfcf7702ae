// Per-instance automatic backups in fixture files: `AutoBackup: false` (none for that instance), an object like
// ModifyAutoBackupConfig's parameters, or nothing (every day 00:00-01:00). Validation names the entry and field;
// the scheduler, DescribeAutoBackupConfig and the schedule metric follow it; loading the fixture again keeps a
// schedule changed through the API unless the fixture sets one.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { loadSeedFile, parseSeed, SeedError } from "../src/server/seed";
import { LocalTime } from "../src/protocol/time";
import { parsePrometheus } from "./support/prom";
import { freePort } from "./support/redis";
import { KEY, startTestServer, TestServer } from "./support/server";

const time = new LocalTime("Asia/Shanghai");
const parse = (instances: unknown[]) => parseSeed(JSON.stringify({ Instances: instances }), { time, regions: () => true, existingInstance: () => undefined, now: 0 });
const base = { InstanceId: "crs-auto0001", Region: "ap-guangzhou" };

test("AutoBackup in a fixture: false, an object, or absent; wrong values are refused naming the field", () => {
  const [absent] = parse([base]).instances;
  assert.deepEqual([absent!.autoBackupWeekDays, absent!.autoBackupPeriod, absent!.backupStorageDays], [["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"], "00:00-01:00", 7]);
  const [off] = parse([{ ...base, AutoBackup: false }]).instances;
  assert.deepEqual(off!.autoBackupWeekDays, []);
  const [on] = parse([{ ...base, AutoBackup: true }]).instances;
  assert.equal(on!.autoBackupWeekDays.length, 7);
  const [custom] = parse([{ ...base, AutoBackup: { WeekDays: ["friday", "Monday", "Monday"], TimePeriod: "22:00-02:00", BackupStorageDays: 30 } }]).instances;
  assert.deepEqual([custom!.autoBackupWeekDays, custom!.autoBackupPeriod, custom!.backupStorageDays], [["Monday", "Friday"], "22:00-02:00", 30]);
  const [periodOnly] = parse([{ ...base, AutoBackup: { TimePeriod: "03:00-04:00" } }]).instances;
  assert.deepEqual([periodOnly!.autoBackupWeekDays.length, periodOnly!.autoBackupPeriod], [7, "03:00-04:00"]);

  const cases: Array<[unknown, RegExp]> = [
    ["daily", /^Instances\[0\]\.AutoBackup: must be false \(no automatic backups\), true \(every day 00:00-01:00\) or an object/],
    [{ WeekDays: ["Funday"] }, /^Instances\[0\]\.AutoBackup\.WeekDays: "Funday" is not one of Monday, Tuesday/],
    [{ WeekDays: [] }, /^Instances\[0\]\.AutoBackup\.WeekDays: must name at least one day; for no automatic backups write "AutoBackup": false/],
    [{ WeekDays: "Monday" }, /^Instances\[0\]\.AutoBackup\.WeekDays: must be an array of strings/],
    [{ TimePeriod: "01:30-02:30" }, /^Instances\[0\]\.AutoBackup\.TimePeriod: must be whole hours HH:00-HH:00/],
    [{ TimePeriod: "05:00-05:00" }, /^Instances\[0\]\.AutoBackup\.TimePeriod: must be whole hours/],
    [{ BackupStorageDays: 0 }, /^Instances\[0\]\.AutoBackup\.BackupStorageDays: must be an integer from 1 to 1825, got 0/],
    [{ Days: 3 }, /^Instances\[0\]\.AutoBackup\.Days: is not a known field \(known: WeekDays, TimePeriod, BackupStorageDays\)/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => parse([{ ...base, AutoBackup: value }]), (err: Error) => err instanceof SeedError && message.test(err.message), `${JSON.stringify(value)} -> ${message}`);
  }
  assert.throws(() => parse([{ ...base, BackupStorageDays: 3, AutoBackup: { BackupStorageDays: 4 } }]), /Instances\[0\]\.BackupStorageDays: is 3 but AutoBackup\.BackupStorageDays is 4; give one of them/);
});

describe("the scheduler, DescribeAutoBackupConfig and the metrics follow the fixture", () => {
  // 2024-01-01 (a Monday) 00:30 in Asia/Shanghai: inside the default window, outside 02:00-04:00.
  const NOW = Date.UTC(2023, 11, 31, 16, 30);
  const ID = { daily: "crs-auto0001", off: "crs-auto0002", custom: "crs-auto0003", mondayNight: "crs-auto0004" };
  let srv: TestServer;

  before(async () => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    srv = await startTestServer({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
      Instances: [
        { InstanceId: ID.daily, Region: "ap-guangzhou", Account: KEY.account, Redis: closed },
        { InstanceId: ID.off, Region: "ap-guangzhou", Account: KEY.account, Redis: closed, AutoBackup: false },
        { InstanceId: ID.custom, Region: "ap-guangzhou", Account: KEY.account, Redis: closed, AutoBackup: { WeekDays: ["Monday", "Thursday"], TimePeriod: "02:00-04:00", BackupStorageDays: 14 } },
        { InstanceId: ID.mondayNight, Region: "ap-guangzhou", Account: KEY.account, Redis: closed, AutoBackup: { WeekDays: ["Monday"], TimePeriod: "00:00-02:00" } },
      ],
    }, { clock: { now: () => NOW }, schedulerIntervalMs: 0, rateLimit: 0, autoBackups: true });
  });

  after(async () => srv?.close());

  test("one scheduler pass queues the daily and the Monday instance, not the one turned off nor the one outside its window", async () => {
    const r = await srv.services.scheduler.tick();
    assert.deepEqual([...r.started].sort(), [ID.daily, ID.mondayNight]);
    // Each window fires once.
    assert.deepEqual((await srv.services.scheduler.tick()).started, []);
  });

  test("DescribeAutoBackupConfig shows the fixture's schedules (no days for AutoBackup false)", async () => {
    const c = srv.client();
    const off = await c.DescribeAutoBackupConfig({ InstanceId: ID.off });
    assert.deepEqual(off.WeekDays, []);
    assert.equal(off.TimePeriod, "00:00-01:00");
    const custom = await c.DescribeAutoBackupConfig({ InstanceId: ID.custom });
    assert.deepEqual([custom.WeekDays, custom.TimePeriod, custom.BackupStorageDays], [["Monday", "Thursday"], "02:00-04:00", 14]);
  });

  test("crs_backup_schedule_interval_seconds: per schedule, absent for the instance turned off", async () => {
    const text = await new Promise<string>((resolve, reject) => http.get({ host: "127.0.0.1", port: srv.port, path: "/metrics" }, (res) => {
      let t = "";
      res.on("data", (d: Buffer) => (t += d.toString()));
      res.on("end", () => resolve(t));
    }).on("error", reject));
    const m = parsePrometheus(text);
    const interval = (id: string) => m.get("crs_backup_schedule_interval_seconds", { instance_id: id });
    assert.equal(interval(ID.daily), 25 * 3600);
    assert.equal(interval(ID.custom), 4 * 86400 + 2 * 3600);
    assert.equal(interval(ID.mondayNight), 7 * 86400 + 2 * 3600);
    assert.equal(interval(ID.off), undefined);
  });

  test("loading the fixture again: a schedule set through the API stays unless the fixture sets one", async () => {
    const c = srv.client();
    await c.ModifyAutoBackupConfig({ InstanceId: ID.daily, WeekDays: ["Sunday"], TimePeriod: "05:00-06:00" });
    await c.ModifyAutoBackupConfig({ InstanceId: ID.off, WeekDays: ["Sunday"], TimePeriod: "05:00-06:00" });
    const file = path.join(srv.dataDir, "seed.json");
    assert.ok(fs.existsSync(file));
    await loadSeedFile(srv.services.catalog, file, srv.services.time, () => true);
    const daily = await c.DescribeAutoBackupConfig({ InstanceId: ID.daily });
    assert.deepEqual([daily.WeekDays, daily.TimePeriod], [["Sunday"], "05:00-06:00"], "no AutoBackup in the fixture: the API's change stays");
    const off = await c.DescribeAutoBackupConfig({ InstanceId: ID.off });
    assert.deepEqual(off.WeekDays, [], "AutoBackup false in the fixture is in force again");
  });
});
