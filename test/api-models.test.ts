// Answers checked field by field against the official SDK's models (the installed tencentcloud-sdk-nodejs's
// redis_models.d.ts, enumerated by test/support/sdk-models.ts), through the SDK itself: DescribeInstances gives
// every InstanceSet field with its JSON type; ModifyAutoBackupConfig takes WeekDays and TimePeriod as optional
// (keeping what is left out) and answers BackupStorageDays; DescribeBackupDetail leaves out the encryption fields
// that do not apply.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { expectSdkError, KEY, SdkClient, startTestServer, TestServer } from "./support/server";
import { assertModel, modelFields } from "./support/sdk-models";

const PLAIN = "crs-model001"; // a registered standalone Redis with a password
const V6 = "crs-model002"; // registered on an IPv6 address, no password
const CATALOGUE = "crs-model003"; // catalogue only (no Redis URL)
const CLUSTER = "crs-model004"; // a cluster of three shards
const NOAUTO = "crs-model005"; // no automatic backups
const UNENCRYPTED = "0a000001-0000-4000-8000-000000000000";
const ENCRYPTED = "0a000002-0000-4000-8000-000000000000";

let srv: TestServer;
let c: SdkClient;

before(async () => {
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [
      { InstanceId: PLAIN, InstanceName: "plain", Region: "ap-guangzhou", Account: KEY.account, Redis: "redis://:pw@127.0.0.1:1" },
      { InstanceId: V6, InstanceName: "v6", Region: "ap-guangzhou", Account: KEY.account, Redis: "redis://[::1]:1" },
      { InstanceId: CATALOGUE, InstanceName: "catalogue", Region: "ap-guangzhou", Account: KEY.account },
      { InstanceId: CLUSTER, InstanceName: "cluster", Region: "ap-guangzhou", Account: KEY.account, InstanceType: 18, Redis: "redis://127.0.0.1:1" },
      { InstanceId: NOAUTO, InstanceName: "noauto", Region: "ap-guangzhou", Account: KEY.account, AutoBackup: false },
    ],
    Backups: [
      { InstanceId: CATALOGUE, BackupId: UNENCRYPTED, StartTime: "2024-03-01 02:00:00", BackupSize: 1024 },
      { InstanceId: CATALOGUE, BackupId: ENCRYPTED, StartTime: "2024-03-02 02:00:00", BackupSize: 2048, Encrypted: true },
    ],
  }, { rateLimit: 0, schedulerIntervalMs: 0 });
  // A fixture instance has one shard; the cluster's three are what a probe of a real cluster records.
  await srv.services.catalog.updateInstance(CLUSTER, { shardNum: 3, memSizeMb: 256 });
  c = srv.client({ language: "en-US" });
});

after(() => srv?.close());

describe("DescribeInstances", () => {
  test("the SDK's InstanceSet model is what the test enumerates, the fields clients crashed on included", () => {
    const names = modelFields("InstanceSet").map((f) => f.name);
    assert.ok(names.length >= 61, `${names.length} fields`);
    for (const f of ["NodeSet", "Vip6", "DiskSize", "ProductVersion", "RedisClusterId", "ClientLimitMin", "ClientLimitMax", "MonitorVersion",
      "RemainBandwidthDuration", "PolarisServer", "DedicatedClusterId", "CurrentProxyVersion", "UpgradeProxyVersion", "UpgradeRedisVersion",
      "IPv6", "BackupMode", "DeleteProtectionSwitch"]) {
      assert.ok(names.includes(f), `the model declares ${f}`);
    }
    assert.deepEqual(modelFields("RedisNodeInfo").map((f) => `${f.name}:${f.kind}`), ["NodeType:number", "NodeId:number", "ZoneId:number", "ZoneName:string"]);
  });

  test("every instance has every InstanceSet field with its JSON type, and nothing else", async () => {
    const r = await c.DescribeInstances({ Limit: 100 });
    assert.equal(r.TotalCount, 5);
    assertModel(r, "DescribeInstancesResponse");
    assert.deepEqual(r.InstanceSet!.map((i) => i.InstanceId).sort(), [PLAIN, V6, CATALOGUE, CLUSTER, NOAUTO]);
    for (const i of r.InstanceSet!) assertModel(i, "InstanceSet", { where: i.InstanceId! });
  });

  test("the new fields hold truthful values: one master node per shard, IPv6 only when the address is one", async () => {
    const byId = new Map((await c.DescribeInstances({ Limit: 100 })).InstanceSet!.map((i) => [i.InstanceId!, i]));
    const cluster = byId.get(CLUSTER)!;
    assert.deepEqual(cluster.NodeSet, [0, 1, 2].map((n) => ({ NodeType: 0, NodeId: n, ZoneId: 0, ZoneName: "" })));
    assert.equal(cluster.RedisShardNum, 3);
    assert.equal(cluster.ProductType, "cluster");
    assert.equal(cluster.Size, 768);
    for (const id of [PLAIN, V6, CATALOGUE, NOAUTO]) assert.deepEqual(byId.get(id)!.NodeSet, [{ NodeType: 0, NodeId: 0, ZoneId: 0, ZoneName: "" }], id);
    const v6 = byId.get(V6)!;
    assert.equal(v6.WanIp, "::1");
    assert.equal(v6.Vip6, "::1");
    assert.equal(v6.IPv6, "::1");
    assert.equal(v6.NoAuth, true);
    const plain = byId.get(PLAIN)!;
    assert.equal(plain.Vip6, "");
    assert.equal(plain.IPv6, "");
    assert.equal(plain.NoAuth, false);
    for (const i of byId.values()) {
      assert.equal(i.BackupMode, "NormalLevelBackup");
      assert.equal(i.ProductVersion, "local");
      assert.equal(i.DeleteProtectionSwitch, 0);
      assert.equal(i.DiskSize, 0);
      assert.equal(i.RedisReplicasNum, 0);
    }
  });
});

describe("ModifyAutoBackupConfig", () => {
  const config = async (id: string) => {
    const cfg = await c.DescribeAutoBackupConfig({ InstanceId: id });
    return { WeekDays: cfg.WeekDays, TimePeriod: cfg.TimePeriod, BackupStorageDays: cfg.BackupStorageDays };
  };

  test("the answer is the whole configuration now in force, BackupStorageDays included", async () => {
    const set = await c.ModifyAutoBackupConfig({ InstanceId: PLAIN, WeekDays: ["friday", "Monday"], TimePeriod: "03:00-04:00", AutoBackupType: 1, BackupStorageDays: 14 });
    assertModel(set, "ModifyAutoBackupConfigResponse");
    assert.deepEqual({ ...set, RequestId: undefined }, { AutoBackupType: 1, WeekDays: ["Monday", "Friday"], TimePeriod: "03:00-04:00", BackupStorageDays: 14, RequestId: undefined });
    assert.deepEqual(await config(PLAIN), { WeekDays: ["Monday", "Friday"], TimePeriod: "03:00-04:00", BackupStorageDays: 14 });
  });

  test("WeekDays, TimePeriod and BackupStorageDays are optional; what is left out keeps its current value", async () => {
    const period = await c.ModifyAutoBackupConfig({ InstanceId: PLAIN, TimePeriod: "22:00-01:00" });
    assert.deepEqual([period.WeekDays, period.TimePeriod, period.BackupStorageDays], [["Monday", "Friday"], "22:00-01:00", 14]);
    assert.deepEqual(await config(PLAIN), { WeekDays: ["Monday", "Friday"], TimePeriod: "22:00-01:00", BackupStorageDays: 14 });

    const days = await c.ModifyAutoBackupConfig({ InstanceId: PLAIN, WeekDays: ["Sunday"] });
    assert.deepEqual([days.WeekDays, days.TimePeriod, days.BackupStorageDays], [["Sunday"], "22:00-01:00", 14]);
    assert.deepEqual(await config(PLAIN), { WeekDays: ["Sunday"], TimePeriod: "22:00-01:00", BackupStorageDays: 14 });

    const keep = await c.ModifyAutoBackupConfig({ InstanceId: PLAIN, BackupStorageDays: 30 });
    assert.deepEqual([keep.WeekDays, keep.TimePeriod, keep.BackupStorageDays], [["Sunday"], "22:00-01:00", 30]);

    const nothing = await c.ModifyAutoBackupConfig({ InstanceId: PLAIN });
    assert.deepEqual([nothing.WeekDays, nothing.TimePeriod, nothing.BackupStorageDays], [["Sunday"], "22:00-01:00", 30]);
    assert.deepEqual(await config(PLAIN), { WeekDays: ["Sunday"], TimePeriod: "22:00-01:00", BackupStorageDays: 30 });

    // An instance with no automatic backups keeps none when only the window changes.
    const off = await c.ModifyAutoBackupConfig({ InstanceId: NOAUTO, TimePeriod: "05:00-06:00" });
    assert.deepEqual([off.WeekDays, off.TimePeriod, off.BackupStorageDays], [[], "05:00-06:00", 7]);
    assert.deepEqual(await config(NOAUTO), { WeekDays: [], TimePeriod: "05:00-06:00", BackupStorageDays: 7 });
  });

  test("a value that is given is still validated, and a refused call changes nothing", async () => {
    const before = await config(PLAIN);
    await expectSdkError(c.ModifyAutoBackupConfig({ InstanceId: PLAIN, WeekDays: [] }), "InvalidParameterValue.WeekDaysIsInvalid");
    const day = await expectSdkError(c.ModifyAutoBackupConfig({ InstanceId: PLAIN, WeekDays: ["Funday"], TimePeriod: "02:00-03:00" }), "InvalidParameterValue.WeekDaysIsInvalid");
    assert.match(day.message, /WeekDays.*Funday/);
    const window = await expectSdkError(c.ModifyAutoBackupConfig({ InstanceId: PLAIN, WeekDays: ["Monday"], TimePeriod: "02:30-03:00" }), "InvalidParameter.Period");
    assert.match(window.message, /TimePeriod.*02:30-03:00/);
    await expectSdkError(c.ModifyAutoBackupConfig({ InstanceId: PLAIN, TimePeriod: "morning", BackupStorageDays: 3 }), "InvalidParameter.Period");
    assert.match((await expectSdkError(c.ModifyAutoBackupConfig({ InstanceId: PLAIN, BackupStorageDays: 0 }), "InvalidParameterValue")).message, /BackupStorageDays/);
    assert.match((await expectSdkError(c.ModifyAutoBackupConfig({ InstanceId: PLAIN, AutoBackupType: 2 }), "InvalidParameterValue")).message, /AutoBackupType/);
    assert.deepEqual(await config(PLAIN), before);
  });
});

describe("DescribeBackupDetail", () => {
  test("an unencrypted backup answers Encrypted false and leaves out DecryptKey, KmsKeyId and KeyAlgorithm", async () => {
    const d = await c.DescribeBackupDetail({ InstanceId: CATALOGUE, BackupId: UNENCRYPTED });
    assertModel(d, "DescribeBackupDetailResponse", { absent: ["DecryptKey", "KmsKeyId", "KeyAlgorithm"] });
    assert.equal(d.Encrypted, false);
    assert.equal(d.BackupSize, 1024);
  });

  test("an encrypted (fixture) backup names the cloud's algorithm and, holding no key, leaves out DecryptKey and KmsKeyId", async () => {
    const d = await c.DescribeBackupDetail({ InstanceId: CATALOGUE, BackupId: ENCRYPTED });
    assertModel(d, "DescribeBackupDetailResponse", { absent: ["DecryptKey", "KmsKeyId"] });
    assert.equal(d.Encrypted, true);
    assert.equal(d.KeyAlgorithm, "AES-256-CBC");
  });
});
