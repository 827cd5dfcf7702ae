// DescribeInstanceBackups through the official tencentcloud-sdk-nodejs client, in every signing mode it has.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CommonClient } from "tencentcloud-sdk-nodejs/tencentcloud/common";
import { expectSdkError, KEY, startTestServer, TestServer } from "./support/server";
import { BACKUPS, expectedOrder, FINANCE, FOREIGN, LIMITED, MAIN, NO_ACTION, OTHER, SECOND, SEED, SHANGHAI, TEMP } from "./fixtures";

const ORDER = expectedOrder(BACKUPS);
const MODES = [
  { signMethod: "TC3-HMAC-SHA256", reqMethod: "POST" },
  { signMethod: "TC3-HMAC-SHA256", reqMethod: "GET" },
  { signMethod: "HmacSHA1", reqMethod: "POST" },
  { signMethod: "HmacSHA1", reqMethod: "GET" },
  { signMethod: "HmacSHA256", reqMethod: "POST" },
  { signMethod: "HmacSHA256", reqMethod: "GET" },
] as const;

let srv: TestServer;
before(async () => {
  srv = await startTestServer(SEED, { rateLimit: 0 });
});
after(() => srv.close());

describe("every SDK signing mode", () => {
  for (const mode of MODES) {
    test(`${mode.signMethod} ${mode.reqMethod}: first page, filters and paging`, async () => {
      const c = srv.client(mode);
      const page = await c.DescribeInstanceBackups({ InstanceId: MAIN });
      assert.equal(page.TotalCount, 45);
      assert.deepEqual(page.BackupSet!.map((b) => b.BackupId), ORDER.slice(0, 20).map((b) => b.BackupId));
      const filtered = await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [2, 4], Limit: 5, Offset: 5 });
      const matching = ORDER.filter((b) => b.Status === 2 || b.Status === 4);
      assert.equal(filtered.TotalCount, matching.length);
      assert.deepEqual(filtered.BackupSet!.map((b) => b.BackupId), matching.slice(5, 10).map((b) => b.BackupId));
      assert.ok(page.RequestId && /^[0-9a-f-]{36}$/.test(page.RequestId));
    });
  }
});

test("every RedisBackupSet field is present, typed and rendered in the server's time zone", async () => {
  const page = await srv.client().DescribeInstanceBackups({ InstanceId: MAIN, Limit: 1 });
  const b = page.BackupSet![0]!;
  const src = ORDER[0]!;
  assert.deepEqual(b, {
    StartTime: src.StartTime, BackupId: src.BackupId, BackupType: src.BackupType, Status: src.Status, Remark: src.Remark, Locked: 0,
    BackupSize: src.BackupSize, FullBackup: 0, InstanceType: 17, InstanceId: MAIN, InstanceName: "Orders-Main", Region: "ap-guangzhou",
    EndTime: src.EndTime, FileType: "RDB-Redis 7.0", ExpireTime: src.StartTime.replace(/^2024-03-(\d\d)/, (_, d: string) => `2024-03-${String(Number(d) + 7).padStart(2, "0")}`),
    Encrypted: false,
  });
  assert.equal(Object.keys(b).length, 16);
});

test("a Terraform-style walk (Limit 20, Offset += 20 until a short page) returns every backup exactly once, in order", async () => {
  const c = srv.client();
  const seen: string[] = [];
  for (let offset = 0; ; offset += 20) {
    const page = await c.DescribeInstanceBackups({ InstanceId: MAIN, Limit: 20, Offset: offset });
    seen.push(...page.BackupSet!.map((b) => b.BackupId!));
    if (page.BackupSet!.length < 20) break;
  }
  assert.equal(new Set(seen).size, 45);
  assert.deepEqual(seen, ORDER.map((b) => b.BackupId));
});

test("equal start times are ordered by BackupId ascending", async () => {
  const page = await srv.client().DescribeInstanceBackups({ InstanceId: MAIN, BeginTime: "2024-03-01 10:15:00", EndTime: "2024-03-01 10:15:00" });
  const ids = page.BackupSet!.map((b) => b.BackupId);
  assert.equal(ids.length, 3);
  assert.deepEqual(ids, [...ids].sort());
});

test("the time window is inclusive at both ends and either end may come alone", async () => {
  const c = srv.client();
  const win = await c.DescribeInstanceBackups({ InstanceId: MAIN, BeginTime: "2024-03-01 05:15:00", EndTime: "2024-03-01 08:15:00", Limit: 100 });
  assert.deepEqual(win.BackupSet!.map((b) => b.StartTime), ["2024-03-01 08:15:00", "2024-03-01 07:15:00", "2024-03-01 06:15:00", "2024-03-01 05:15:00"]);
  const from = await c.DescribeInstanceBackups({ InstanceId: MAIN, BeginTime: "2024-03-02 20:15:00" });
  assert.equal(from.TotalCount, ORDER.filter((b) => b.StartTime >= "2024-03-02 20:15:00").length);
  const until = await c.DescribeInstanceBackups({ InstanceId: MAIN, EndTime: "2024-03-01 01:15:00" });
  assert.deepEqual(until.BackupSet!.map((b) => b.StartTime), ["2024-03-01 01:15:00", "2024-03-01 00:15:00"]);
});

test("each Status value filters exactly its backups; empty Status means all", async () => {
  const c = srv.client();
  for (const s of [1, 2, 3, 4, -1, -2]) {
    const page = await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [s], Limit: 100 });
    const want = ORDER.filter((b) => b.Status === s);
    assert.ok(want.length > 0);
    assert.deepEqual(page.BackupSet!.map((b) => b.BackupId), want.map((b) => b.BackupId), `Status ${s}`);
    assert.ok(page.BackupSet!.every((b) => b.Status === s));
  }
  assert.equal((await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [] })).TotalCount, 45);
});

test("InstanceName filters by a case-insensitive substring of the instance's name", async () => {
  const c = srv.client();
  assert.equal((await c.DescribeInstanceBackups({ InstanceId: MAIN, InstanceName: "orders" })).TotalCount, 45);
  assert.equal((await c.DescribeInstanceBackups({ InstanceId: MAIN, InstanceName: "billing" })).TotalCount, 0);
});

test("numbers sent as strings are accepted", async () => {
  const page = await srv.client().DescribeInstanceBackups({ InstanceId: MAIN, Limit: "3", Offset: "1", Status: ["2"] } as never);
  assert.equal(page.BackupSet!.length, 3);
  assert.ok(page.BackupSet!.every((b) => b.Status === 2));
});

test("an instance with no backups lists nothing; an offset past the end gives an empty page with the total", async () => {
  assert.deepEqual((await srv.client().DescribeInstanceBackups({ InstanceId: SECOND })).BackupSet, []);
  const past = await srv.client().DescribeInstanceBackups({ InstanceId: MAIN, Offset: 1000 });
  assert.equal(past.TotalCount, 45);
  assert.deepEqual(past.BackupSet, []);
});

describe("isolation and permissions", () => {
  test("another account's instance does not exist for this caller, and vice versa", async () => {
    await expectSdkError(srv.client().DescribeInstanceBackups({ InstanceId: FOREIGN }), "ResourceNotFound.InstanceNotExists");
    await expectSdkError(srv.client(OTHER).DescribeInstanceBackups({ InstanceId: MAIN }), "ResourceNotFound.InstanceNotExists");
    const theirs = await srv.client(OTHER).DescribeInstanceBackups({ InstanceId: FOREIGN });
    assert.equal(theirs.TotalCount, 1);
  });
  test("an instance of another region does not exist in this region", async () => {
    await expectSdkError(srv.client({ region: "ap-guangzhou" }).DescribeInstanceBackups({ InstanceId: SHANGHAI }), "ResourceNotFound.InstanceNotExists");
    assert.equal((await srv.client({ region: "ap-shanghai" }).DescribeInstanceBackups({ InstanceId: SHANGHAI })).TotalCount, 1);
  });
  test("an unknown instance", async () => {
    const e = await expectSdkError(srv.client({ language: "en-US" }).DescribeInstanceBackups({ InstanceId: "crs-zzzzzzzz" }), "ResourceNotFound.InstanceNotExists");
    assert.match(e.message, /crs-zzzzzzzz/);
  });
  test("a policy limits actions and instances", async () => {
    assert.equal((await srv.client(LIMITED).DescribeInstanceBackups({ InstanceId: MAIN })).TotalCount, 45);
    const e = await expectSdkError(srv.client({ ...LIMITED, language: "en-US" }).DescribeInstanceBackups({ InstanceId: SECOND }), "UnauthorizedOperation.NoCAMAuthed");
    assert.match(e.message, /crs-aaaabbbb/);
    await expectSdkError(srv.client(NO_ACTION).DescribeInstanceBackups({ InstanceId: MAIN }), "UnauthorizedOperation.NoCAMAuthed");
  });
  test("temporary credentials need their session token, in v3 and v1", async () => {
    assert.equal((await srv.client(TEMP).DescribeInstanceBackups({ InstanceId: MAIN })).TotalCount, 45);
    assert.equal((await srv.client({ ...TEMP, signMethod: "HmacSHA256" }).DescribeInstanceBackups({ InstanceId: MAIN })).TotalCount, 45);
    await expectSdkError(srv.client({ ...TEMP, token: "wrong" }).DescribeInstanceBackups({ InstanceId: MAIN }), "AuthFailure.TokenFailure");
    await expectSdkError(srv.client({ ...TEMP, token: undefined }).DescribeInstanceBackups({ InstanceId: MAIN }), "AuthFailure.TokenFailure");
    await expectSdkError(srv.client({ ...TEMP, token: "wrong", signMethod: "HmacSHA1" }).DescribeInstanceBackups({ InstanceId: MAIN }), "AuthFailure.TokenFailure");
    await expectSdkError(srv.client({ token: "not-expected" }).DescribeInstanceBackups({ InstanceId: MAIN }), "AuthFailure.TokenFailure");
  });
});

describe("errors the SDK can provoke", () => {
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ["Limit 0", { InstanceId: MAIN, Limit: 0 }, "InvalidParameter.InvalidParameter", /Limit.*between 1 and 100/],
    ["Limit 101", { InstanceId: MAIN, Limit: 101 }, "InvalidParameter.InvalidParameter", /Limit.*between 1 and 100/],
    ["negative Offset", { InstanceId: MAIN, Offset: -1 }, "InvalidParameter.InvalidParameter", /Offset.*at least 0/],
    ["bad BeginTime", { InstanceId: MAIN, BeginTime: "2024-03-01T00:00:00" }, "InvalidParameter.InvalidParameter", /BeginTime/],
    ["impossible date", { InstanceId: MAIN, EndTime: "2024-02-30 00:00:00" }, "InvalidParameter.InvalidParameter", /EndTime/],
    ["begin after end", { InstanceId: MAIN, BeginTime: "2024-03-02 00:00:00", EndTime: "2024-03-01 00:00:00" }, "InvalidParameter.InvalidParameter", /BeginTime.*after.*EndTime/],
    ["unknown Status", { InstanceId: MAIN, Status: [7] }, "InvalidParameter.InvalidParameter", /Status/],
    ["missing InstanceId", { Limit: 5 }, "MissingParameter", /InstanceId/],
    ["unknown parameter", { InstanceId: MAIN, Foo: 1 }, "UnknownParameter", /Foo/],
    ["Limit not a number", { InstanceId: MAIN, Limit: "ten" }, "InvalidParameter", /Limit.*integer/],
    ["Limit fractional", { InstanceId: MAIN, Limit: 1.5 }, "InvalidParameter", /Limit.*integer/],
    ["InstanceId as an array", { InstanceId: [MAIN] }, "InvalidParameter", /InstanceId.*string/],
    ["Status not an array", { InstanceId: MAIN, Status: 2 }, "InvalidParameter", /Status.*array/],
  ];
  for (const [name, req, code, message] of cases) {
    test(`${name} -> ${code}`, async () => {
      const e = await expectSdkError(srv.client({ language: "en-US" }).DescribeInstanceBackups(req as never), code);
      assert.match(e.message, message);
    });
  }

  test("messages are zh-CN by default and en-US on request", async () => {
    const zh = await expectSdkError(srv.client().DescribeInstanceBackups({ InstanceId: MAIN, Limit: 0 }), "InvalidParameter.InvalidParameter");
    assert.match(zh.message, /业务参数错误/);
    const en = await expectSdkError(srv.client({ language: "en-US" }).DescribeInstanceBackups({ InstanceId: MAIN, Limit: 0 }), "InvalidParameter.InvalidParameter");
    assert.match(en.message, /^Invalid business parameter/);
  });

  test("unknown SecretId, wrong key", async () => {
    await expectSdkError(srv.client({ secretId: "AKIDnobody", secretKey: "x" }).DescribeInstanceBackups({ InstanceId: MAIN }), "AuthFailure.SecretIdNotFound");
    for (const signMethod of ["TC3-HMAC-SHA256", "HmacSHA1", "HmacSHA256"] as const) {
      await expectSdkError(srv.client({ secretKey: "wrong", signMethod }).DescribeInstanceBackups({ InstanceId: MAIN }), "AuthFailure.SignatureFailure");
    }
  });

  test("unknown action, other version, unknown region", async () => {
    await expectSdkError(srv.client().request("DescribeNothing", {}), "InvalidAction");
    const common = new CommonClient(`127.0.0.1:${srv.port}`, "2017-03-12", {
      credential: { secretId: KEY.secretId, secretKey: KEY.secretKey }, region: "ap-guangzhou", profile: { httpProfile: { protocol: "http://" } },
    });
    await expectSdkError(common.request("DescribeInstanceBackups", { InstanceId: MAIN }), "NoSuchVersion");
    await expectSdkError(srv.client({ region: "mars-north-1" }).DescribeInstanceBackups({ InstanceId: MAIN }), "UnsupportedRegion");
  });

  test("a finance region called on a non-finance host is refused with the host to use", async () => {
    const e = await expectSdkError(srv.client({ region: "ap-shanghai-fsi", language: "en-US" }).DescribeInstanceBackups({ InstanceId: FINANCE }), "UnsupportedRegion");
    assert.match(e.message, /redis\.ap-shanghai-fsi\.tencentcloudapi\.com/);
  });
});

test("the rate limit is per account and action, 20/s by default with a burst of 20", async () => {
  const limited = await startTestServer(SEED);
  try {
    const c = limited.client();
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => c.DescribeInstanceBackups({ InstanceId: MAIN, Limit: 1 })));
    const ok = results.filter((r) => r.status === "fulfilled").length;
    const limitedOnes = results.filter((r) => r.status === "rejected" && (r.reason as { code?: string }).code === "RequestLimitExceeded").length;
    // The bucket refills at 20/s while the calls are in flight, so a few more than 20 may pass.
    assert.ok(ok >= 20 && ok < 30, `ok=${ok}`);
    assert.equal(ok + limitedOnes, 30);
    // Another account, and another action of the same account, are unaffected.
    assert.equal((await limited.client(OTHER).DescribeInstanceBackups({ InstanceId: FOREIGN })).TotalCount, 1);
    await expectSdkError(c.request("DescribeNothing", {}), "InvalidAction");
  } finally {
    await limited.close();
  }
});
