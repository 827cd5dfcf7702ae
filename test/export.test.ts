// Export and download through the API: the official SDK drives ManualBackupInstance -> DescribeBackupUrl
// (Status 2 -> 3 -> 4, observed through DescribeInstanceBackups while the export is held at a gate the test
// controls), then the links are fetched over real HTTP: the file is the captured RDB byte for byte and passes
// redis-check-rdb; ranges, forged and expired links, address restrictions (per call and per account), retired
// backups, failed exports and a restart with an export left half-done.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { pipeline, Readable, Transform } from "node:stream";
import { DEFAULTS, startServer } from "../src/app";
import type { Backup } from "../src/catalog/types";
import { parseRange } from "../src/downloads/handler";
import { restrictionAllows, DEFAULT_RESTRICTION } from "../src/downloads/restrictions";
import { silentLogger } from "../src/log";
import type { BlobStore } from "../src/storage/blob-store";
import { filesUnder, send, writeMixedDataset } from "./support/dataset";
import { redisCheckRdb, RedisProcess, startRedis } from "./support/redis";
import { expectSdkError, KEY, RedisClient, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";
import { OTHER } from "./fixtures";

const ID = { main: "crs-ex000001", second: "crs-ex000002", foreign: "crs-ex000003", fixture: "crs-ex000004" };
const HOUR = 3_600_000;

let src: RedisProcess;
let srv: TestServer;
let c: SdkClient;
/** Added to the server's clock (services.clock), to age links without waiting. */
let skew = 0;

before(async () => {
  src = await startRedis(["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"]);
  await writeMixedDataset(src.endpoint);
  await send(src.endpoint, [["DEBUG", "POPULATE", 20_000, "pop", 64]]);
  const url = `redis://127.0.0.1:${src.port}`;
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }, { SecretId: OTHER.secretId, SecretKey: OTHER.secretKey, Account: OTHER.account }],
    Instances: [
      { InstanceId: ID.main, InstanceName: "main", Region: "ap-guangzhou", Account: KEY.account, Redis: url },
      { InstanceId: ID.second, InstanceName: "second", Region: "ap-guangzhou", Account: KEY.account, Redis: url },
      { InstanceId: ID.foreign, InstanceName: "foreign", Region: "ap-guangzhou", Account: OTHER.account, Redis: url },
      { InstanceId: ID.fixture, InstanceName: "fixture", Region: "ap-guangzhou", Account: KEY.account },
    ],
    Backups: [
      { InstanceId: ID.fixture, BackupId: "fx-expired", Status: -1 },
      { InstanceId: ID.fixture, BackupId: "fx-deleted", Status: -2 },
      { InstanceId: ID.fixture, BackupId: "fx-kept", Status: 2 },
    ],
  }, { rateLimit: 0, schedulerIntervalMs: 0, clock: { now: () => Date.now() + skew } });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  await srv?.close();
  if (src) src.kill();
});

/** A fresh backup of `instanceId` (Status 2), as the catalogue holds it. */
async function takeBackup(instanceId = ID.main): Promise<Backup> {
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: instanceId });
  const t = await waitForTask(c, TaskId!);
  assert.equal(t.Status, "succeed", t.TaskMessage);
  const page = await c.DescribeInstanceBackups({ InstanceId: instanceId, Status: [2], Limit: 1 });
  const b = (await srv.services.catalog.backup(page.BackupSet![0]!.BackupId!))!;
  assert.equal(b.status, 2);
  assert.equal(b.files.length, 1);
  return b;
}

interface Fetched {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function fetchUrl(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? "GET", headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Streams a download to a file, hashing it on the way. */
function downloadTo(url: string, file: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const hash = crypto.createHash("sha256");
      let bytes = 0;
      const out = fs.createWriteStream(file);
      res.on("data", (d: Buffer) => {
        hash.update(d);
        bytes += d.length;
      });
      res.pipe(out);
      out.on("finish", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, sha256: hash.digest("hex"), bytes }));
      out.on("error", reject);
      res.on("error", reject);
    }).on("error", reject);
  });
}

function errorCode(f: Fetched): string {
  return /<Code>([^<]*)<\/Code>/.exec(f.body.toString("utf8"))?.[1] ?? "";
}

function filesDir(): string {
  return path.join(srv.dataDir, "data", "files");
}

function exportFiles(backupId: string): string[] {
  return filesUnder(path.join(filesDir(), "exports", backupId));
}

/** Holds store.openRead for one key prefix until released: the real store reads the real file, just later. */
function holdReads(store: BlobStore, prefix: string): { reached: Promise<void>; calls: () => number; release(): void; restore(): void } {
  const real = store.openRead.bind(store);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let reachedResolve!: () => void;
  const reached = new Promise<void>((r) => (reachedResolve = r));
  let calls = 0;
  store.openRead = async (key, opts) => {
    if (key.startsWith(prefix)) {
      calls++;
      reachedResolve();
      await gate;
    }
    return real(key, opts);
  };
  return { reached, calls: () => calls, release, restore: () => void delete (store as { openRead?: unknown }).openRead };
}

/** The backup exported by the first test, one of its links and its bytes. */
let backup: Backup;
let link: string;
let data: Buffer;

describe("DescribeBackupUrl", () => {

  test("exports a kept backup: Status 2 -> 3 (Locked 1) -> 4, one export for concurrent callers, and the file is the captured RDB", async () => {
    backup = await takeBackup();
    const id = backup.backupId;
    const hold = holdReads(srv.services.store, `backups/${id}/`);
    let first: ReturnType<SdkClient["DescribeBackupUrl"]>;
    let second: ReturnType<SdkClient["DescribeBackupUrl"]>;
    try {
      first = c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: id });
      await hold.reached;
      second = c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: id });
      // Held at the gate: the listing shows the export in progress.
      const during = await c.DescribeInstanceBackups({ InstanceId: ID.main, Status: [3] });
      assert.equal(during.TotalCount, 1);
      assert.equal(during.BackupSet![0]!.BackupId, id);
      assert.equal(during.BackupSet![0]!.Status, 3);
      assert.equal(during.BackupSet![0]!.Locked, 1);
      assert.equal((await c.DescribeBackupDetail({ InstanceId: ID.main, BackupId: id })).Locked, 1);
      assert.equal((await c.DescribeInstanceBackups({ InstanceId: ID.main, Status: [2] })).BackupSet!.some((b) => b.BackupId === id), false);
      // The second caller is waiting on the same export, not starting another.
      const tasks = await c.DescribeTaskList({ InstanceId: ID.main, TaskTypes: ["009"] });
      assert.equal(tasks.TotalCount, 1);
      assert.equal(tasks.Tasks![0]!.Result, 1);
      assert.deepEqual(exportFiles(id).filter((f) => !f.endsWith(".partial")), []);
      hold.release();
      const [a, b] = await Promise.all([first, second]);
      assert.equal(hold.calls(), 1, "the stored blob is read once");
      for (const r of [a, b]) {
        assert.equal(r.BackupInfos!.length, 1);
        const info = r.BackupInfos![0]!;
        assert.equal(info.FileName, `${ID.main}-${id}-shard-0.rdb`);
        assert.equal(info.FileSize, backup.files[0]!.bytes);
        assert.match(info.DownloadUrl!, new RegExp(`^http://127\\.0\\.0\\.1:${srv.port}/download/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+/${info.FileName}$`));
        assert.equal(info.InnerDownloadUrl, info.DownloadUrl);
        assert.deepEqual(r.DownloadUrl, [info.DownloadUrl]);
        assert.deepEqual(r.InnerDownloadUrl, [info.InnerDownloadUrl]);
        assert.deepEqual(r.Filenames, [info.FileName]);
      }
      link = a.BackupInfos![0]!.DownloadUrl!;
    } finally {
      hold.release();
      hold.restore();
    }
    const done = await c.DescribeInstanceBackups({ InstanceId: ID.main, Status: [4] });
    assert.equal(done.TotalCount, 1);
    assert.equal(done.BackupSet![0]!.BackupId, id);
    assert.equal(done.BackupSet![0]!.Locked, 0);
    const tasks = await c.DescribeTaskList({ InstanceId: ID.main, TaskTypes: ["009"] });
    assert.equal(tasks.TotalCount, 1);
    assert.equal(tasks.Tasks![0]!.Result, 2);

    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-dl-")), "dump.rdb");
    const got = await downloadTo(link, file);
    assert.equal(got.status, 200);
    assert.equal(got.headers["content-type"], "application/octet-stream");
    assert.equal(got.headers["accept-ranges"], "bytes");
    assert.equal(got.headers["content-length"], String(backup.files[0]!.bytes));
    assert.equal(got.headers["content-disposition"], `attachment; filename="${ID.main}-${id}-shard-0.rdb"`);
    assert.equal(got.bytes, backup.files[0]!.bytes);
    assert.equal(got.sha256, backup.files[0]!.sha256);
    const check = redisCheckRdb(file);
    assert.ok(check.ok, check.output);
    data = fs.readFileSync(file);
    assert.deepEqual(filesUnder(filesDir()).filter((f) => f.endsWith(".partial")), []);
  });

  test("an exported backup is answered at once with fresh links, without another export", async () => {
    const r = await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId });
    assert.equal(r.BackupInfos![0]!.FileSize, backup.files[0]!.bytes);
    assert.equal((await fetchUrl(r.BackupInfos![0]!.DownloadUrl!, { method: "HEAD" })).status, 200);
    assert.equal((await c.DescribeTaskList({ InstanceId: ID.main, TaskTypes: ["009"] })).TotalCount, 1);
  });

  test("Range: 206 with the exact bytes, 416 when it cannot be served; HEAD", async () => {
    const size = data.length;
    const cases: Array<[string, number, number]> = [["bytes=0-99", 0, 99], ["bytes=100-", 100, size - 1], ["bytes=-50", size - 50, size - 1], [`bytes=${size - 10}-${size * 2}`, size - 10, size - 1], ["bytes=9-9", 9, 9]];
    for (const [range, start, end] of cases) {
      const r = await fetchUrl(link, { headers: { Range: range } });
      assert.equal(r.status, 206, range);
      assert.equal(r.headers["content-range"], `bytes ${start}-${end}/${size}`, range);
      assert.equal(r.headers["content-length"], String(end - start + 1), range);
      assert.ok(r.body.equals(data.subarray(start, end + 1)), range);
    }
    for (const range of [`bytes=${size}-`, "bytes=5-2", "bytes=-0", "bytes=abc", "bytes=0-1,5-6", "items=0-1"]) {
      const r = await fetchUrl(link, { headers: { Range: range } });
      assert.equal(r.status, 416, range);
      assert.equal(r.headers["content-range"], `bytes */${size}`, range);
      assert.equal(errorCode(r), "InvalidRange");
    }
    const head = await fetchUrl(link, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], String(size));
    assert.equal(head.body.length, 0);
    assert.equal((await fetchUrl(link, { method: "POST" })).status, 405);
    // Reassembled from ranges, it is the same file.
    const half = Math.floor(size / 2);
    const a = await fetchUrl(link, { headers: { Range: `bytes=0-${half - 1}` } });
    const b = await fetchUrl(link, { headers: { Range: `bytes=${half}-` } });
    assert.equal(crypto.createHash("sha256").update(Buffer.concat([a.body, b.body])).digest("hex"), backup.files[0]!.sha256);
  });

  test("a forged or tampered link is refused (403), and an expired one with its own message", async () => {
    const u = new URL(link);
    const [, , token, name] = u.pathname.split("/");
    const [payload, sig] = token!.split(".");
    const flip = (s: string) => (s[0] === "A" ? "B" : "A") + s.slice(1);
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString()) as { s: number; e: number };
    const otherPayload = Buffer.from(JSON.stringify({ ...claims, e: claims.e + 100 * HOUR })).toString("base64url");
    for (const t of [`${payload}.${flip(sig!)}`, `${otherPayload}.${sig}`, "nonsense", `${payload}`, ""]) {
      const r = await fetchUrl(`${u.origin}/download/${t}/${name}`);
      assert.equal(r.status, 403, t);
      assert.equal(errorCode(r), "InvalidToken", t);
    }
    try {
      skew = 6 * HOUR - 60_000;
      assert.equal((await fetchUrl(link, { method: "HEAD" })).status, 200);
      skew = 6 * HOUR + 1000;
      const r = await fetchUrl(link);
      assert.equal(r.status, 403);
      assert.equal(errorCode(r), "ExpiredToken");
      assert.match(r.body.toString(), /expired at .*DescribeBackupUrl/);
      // A link issued now works for 6 hours from now.
      const fresh = (await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId })).BackupInfos![0]!.DownloadUrl!;
      assert.equal((await fetchUrl(fresh, { method: "HEAD" })).status, 200);
    } finally {
      skew = 0;
    }
  });

  test("LimitType per call: Customize In/NotIn by address and CIDR, LimitOnlyIntranet; bad entries are named", async () => {
    const get = async (params: Record<string, unknown>) => {
      const r = await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId, ...params });
      return fetchUrl(r.BackupInfos![0]!.DownloadUrl!);
    };
    const refused = await get({ LimitType: "Customize", IpComparisonSymbol: "In", LimitIp: ["10.1.2.3"] });
    assert.equal(refused.status, 403);
    assert.equal(errorCode(refused), "AccessDenied");
    assert.match(refused.body.toString(), /127\.0\.0\.1/);
    assert.equal((await get({ LimitType: "Customize", IpComparisonSymbol: "NotIn", LimitIp: ["127.0.0.1"] })).status, 403);
    const allowed = await get({ LimitType: "Customize", IpComparisonSymbol: "In", LimitIp: ["10.1.2.3", "127.0.0.0/8"] });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.body.length, data.length);
    assert.equal((await get({ LimitType: "Customize", IpComparisonSymbol: "NotIn", LimitIp: ["10.0.0.0/8"] })).status, 200);
    assert.equal((await get({ LimitType: "LimitOnlyIntranet" })).status, 200);
    // VPCs are accepted (and cannot be enforced); with no LimitIp to admit the caller, Customize refuses.
    assert.equal((await get({ LimitType: "Customize", VpcComparisonSymbol: "In", LimitVpc: [{ Region: "ap-guangzhou", VpcList: ["vpc-abc123"] }] })).status, 403);

    // The same through v1 signing and a flattened query string (LimitVpc.0.VpcList.0=...).
    const v1 = srv.client({ signMethod: "HmacSHA256", reqMethod: "GET" });
    const flat = await v1.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId, LimitType: "Customize", IpComparisonSymbol: "In", LimitIp: ["127.0.0.1/32"], LimitVpc: [{ Region: "ap-guangzhou", VpcList: ["vpc-a", "vpc-b"] }] });
    assert.equal((await fetchUrl(flat.BackupInfos![0]!.DownloadUrl!, { method: "HEAD" })).status, 200);
    const unknown = await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId, LimitType: "Customize", LimitVpc: [{ Region: "ap-guangzhou", VpcList: [], Vpc: "x" } as never] }), "UnknownParameter");
    assert.match(unknown.message, /LimitVpc\.0\.Vpc/);
    await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId, LimitType: "Customize", LimitVpc: [{ VpcList: ["vpc-a"] } as never] }), "MissingParameter");
    const bad = await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId, LimitType: "Customize", LimitIp: ["10.0.0.1", "10.0.0.300"] }), "InvalidParameterValue");
    assert.match(bad.message, /LimitIp\.1.*10\.0\.0\.300/);
    await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId, LimitType: "Everyone" }), "InvalidParameterValue");
    await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId, LimitType: "Customize", IpComparisonSymbol: "Maybe", LimitIp: ["1.2.3.4"] }), "InvalidParameterValue");
    await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId, LimitType: "Customize", LimitIp: ["1.2.3.4/33"] }), "InvalidParameterValue");
  });

  test("the account's restriction (Modify/DescribeBackupDownloadRestriction) applies to links issued after it", async () => {
    assert.deepEqual(pick(await c.DescribeBackupDownloadRestriction()), { LimitType: "NoLimit", VpcComparisonSymbol: "In", IpComparisonSymbol: "In", LimitVpc: [], LimitIp: [] });
    const before = (await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId })).BackupInfos![0]!.DownloadUrl!;
    let restricted = "";
    try {
      await c.ModifyBackupDownloadRestriction({ LimitType: "Customize", IpComparisonSymbol: "In", LimitIp: ["192.168.9.0/24", "fd00::/8"], VpcComparisonSymbol: "In", LimitVpc: [{ Region: "ap-guangzhou", VpcList: ["vpc-1", "vpc-2"] }] });
      assert.deepEqual(pick(await c.DescribeBackupDownloadRestriction()), {
        LimitType: "Customize", VpcComparisonSymbol: "In", IpComparisonSymbol: "In", LimitVpc: [{ Region: "ap-guangzhou", VpcList: ["vpc-1", "vpc-2"] }], LimitIp: ["192.168.9.0/24", "fd00::/8"],
      });
      // Per account and region.
      assert.equal((await srv.client({ region: "ap-shanghai" }).DescribeBackupDownloadRestriction()).LimitType, "NoLimit");
      assert.equal((await srv.client({ secretId: OTHER.secretId, secretKey: OTHER.secretKey }).DescribeBackupDownloadRestriction()).LimitType, "NoLimit");

      restricted = (await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId })).BackupInfos![0]!.DownloadUrl!;
      const r = await fetchUrl(restricted);
      assert.equal(r.status, 403);
      assert.equal(errorCode(r), "AccessDenied");
      assert.equal((await fetchUrl(before, { method: "HEAD" })).status, 200, "a link keeps the restriction it was issued with");
      const overridden = (await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId, LimitType: "NoLimit" })).BackupInfos![0]!.DownloadUrl!;
      assert.equal((await fetchUrl(overridden, { method: "HEAD" })).status, 200);

      const e = await expectSdkError(c.ModifyBackupDownloadRestriction({ LimitType: "Customize", LimitIp: ["300.1.1.1"] }), "InvalidParameterValue");
      assert.match(e.message, /LimitIp\.0/);
      await expectSdkError(c.ModifyBackupDownloadRestriction({ LimitType: "Customize", IpComparisonSymbol: "Out", LimitIp: ["1.1.1.1"] }), "InvalidParameterValue");
      await expectSdkError(c.ModifyBackupDownloadRestriction({ LimitType: "Open" }), "InvalidParameterValue");
      await expectSdkError(c.ModifyBackupDownloadRestriction({} as { LimitType: string }), "MissingParameter");
      await c.ModifyBackupDownloadRestriction({ LimitType: "Customize", IpComparisonSymbol: "NotIn", LimitIp: ["127.0.0.1"] });
      const notIn = (await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId })).BackupInfos![0]!.DownloadUrl!;
      assert.equal((await fetchUrl(notIn)).status, 403);
      await c.ModifyBackupDownloadRestriction({ LimitType: "LimitOnlyIntranet" });
      const intranet = (await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId })).BackupInfos![0]!.DownloadUrl!;
      assert.equal((await fetchUrl(intranet, { method: "HEAD" })).status, 200);
    } finally {
      await c.ModifyBackupDownloadRestriction({ LimitType: "NoLimit" });
    }
    assert.equal((await fetchUrl(restricted, { method: "HEAD" })).status, 403, "an old restricted link stays restricted");
    const open = (await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId })).BackupInfos![0]!.DownloadUrl!;
    assert.equal((await fetchUrl(open, { method: "HEAD" })).status, 200);
  });

  test("unknown, another instance's, in progress, expired and deleted backups are refused", async () => {
    await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: "00000000-0000-0000-0000-000000000000" }), "InvalidParameterValue.BackupNotExists");
    await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.second, BackupId: backup.backupId }), "InvalidParameterValue.BackupNotExists");
    await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.foreign, BackupId: backup.backupId }), "ResourceNotFound.InstanceNotExists");
    await expectSdkError(srv.client({ secretId: OTHER.secretId, secretKey: OTHER.secretKey }).DescribeBackupUrl({ InstanceId: ID.main, BackupId: backup.backupId }), "ResourceNotFound.InstanceNotExists");
    for (const [id, status] of [["fx-expired", "-1"], ["fx-deleted", "-2"]] as const) {
      const e = await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.fixture, BackupId: id }), "ResourceUnavailable.BackupStatusInvalid");
      assert.match(e.message, new RegExp(`Status ${status}`));
    }
    // A catalogue-only backup has no file to hand out.
    await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.fixture, BackupId: "fx-kept" }), "ResourceUnavailable.BackupStatusInvalid");
    // A backup being taken (Status 1): recorded as ManualBackupInstance records it.
    await srv.services.catalog.insertBackup({ ...backup, backupId: "in-progress-1", status: 1, files: [] });
    const e = await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: "in-progress-1" }), "ResourceUnavailable.BackupStatusInvalid");
    assert.match(e.message, /Status 1/);
    await srv.services.catalog.deleteBackupRecord("in-progress-1");
  });

  test("an expired backup: BackupStatusInvalid, its export files are gone and its old links answer 410", async () => {
    const b = await takeBackup(ID.second);
    const r = await c.DescribeBackupUrl({ InstanceId: ID.second, BackupId: b.backupId });
    const url = r.BackupInfos![0]!.DownloadUrl!;
    assert.equal((await fetchUrl(url, { method: "HEAD" })).status, 200);
    assert.equal(exportFiles(b.backupId).length, 1);
    await srv.services.backups.retire((await srv.services.catalog.backup(b.backupId))!, -1, KEY.account);
    const e = await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.second, BackupId: b.backupId }), "ResourceUnavailable.BackupStatusInvalid");
    assert.match(e.message, /Status -1/);
    const gone = await fetchUrl(url);
    assert.equal(gone.status, 410);
    assert.equal(errorCode(gone), "Gone");
    assert.match(gone.body.toString(), /Status -1/);
    assert.deepEqual(exportFiles(b.backupId), []);
  });
});

function pick(r: object): Record<string, unknown> {
  const { RequestId: _, ...rest } = r as Record<string, unknown>;
  return rest;
}

describe("a failed export leaves the backup as it was", () => {
  test("bytes that do not match the capture: FailedOperation.SystemError, Status 2, unlocked, no export file", async () => {
    const b = await takeBackup(ID.second);
    const real = b.files;
    await srv.services.catalog.updateBackup(b.backupId, { files: real.map((f) => ({ ...f, sha256: "0".repeat(64) })) });
    try {
      await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.second, BackupId: b.backupId }), "FailedOperation.SystemError");
    } finally {
      await srv.services.catalog.updateBackup(b.backupId, { files: real });
    }
    const after = (await srv.services.catalog.backup(b.backupId))!;
    assert.equal(after.status, 2);
    assert.equal(after.locked, 0);
    assert.deepEqual(exportFiles(b.backupId), []);
    assert.ok(srv.logs.some((l) => l.includes(b.backupId) && l.includes("task failed") && l.includes("does not match")));
    const failed = await c.DescribeTaskList({ InstanceId: ID.second, TaskTypes: ["009"], Result: [4] });
    assert.ok(failed.TotalCount! >= 1);
    // With the record intact the same backup exports fine.
    const ok = await c.DescribeBackupUrl({ InstanceId: ID.second, BackupId: b.backupId });
    assert.equal(ok.BackupInfos!.length, 1);
    assert.equal((await srv.services.catalog.backup(b.backupId))!.status, 4);
  });

  test("a read that breaks part-way: Status 2, unlocked, no export file, no temp file", async () => {
    const b = await takeBackup(ID.second);
    const store = srv.services.store;
    const real = store.openRead.bind(store);
    // The real stored file, cut off after 64 KiB with an I/O error.
    store.openRead = async (key, opts) => {
      const s = await real(key, opts);
      if (!key.startsWith(`backups/${b.backupId}/`)) return s;
      let seen = 0;
      const cut = new Transform({
        transform(chunk: Buffer, _e, cb) {
          seen += chunk.length;
          if (seen > 65_536) return cb(new Error("EIO: simulated read error"));
          cb(null, chunk);
        },
      });
      return pipeline(s, cut, () => undefined) as unknown as Readable;
    };
    try {
      await expectSdkError(c.DescribeBackupUrl({ InstanceId: ID.second, BackupId: b.backupId }), "FailedOperation.SystemError");
    } finally {
      delete (store as { openRead?: unknown }).openRead;
    }
    const after = (await srv.services.catalog.backup(b.backupId))!;
    assert.equal(after.status, 2);
    assert.equal(after.locked, 0);
    assert.deepEqual(exportFiles(b.backupId), []);
    assert.deepEqual(filesUnder(filesDir()).filter((f) => f.endsWith(".partial")), []);
    const listed = await c.DescribeInstanceBackups({ InstanceId: ID.second, Status: [2] });
    assert.ok(listed.BackupSet!.some((x) => x.BackupId === b.backupId && x.Locked === 0));
  });
});

describe("download restriction rules", () => {
  test("addresses and blocks, IPv4 and IPv6, mapped addresses", () => {
    const r = (LimitType: "NoLimit" | "LimitOnlyIntranet" | "Customize", IpComparisonSymbol: "In" | "NotIn" = "In", LimitIp: string[] = []) => ({ ...DEFAULT_RESTRICTION, LimitType, IpComparisonSymbol, LimitIp });
    assert.ok(restrictionAllows(r("NoLimit"), "8.8.8.8"));
    for (const a of ["127.0.0.1", "10.9.8.7", "172.16.0.1", "172.31.255.255", "192.168.1.1", "::1", "fd12::1", "::ffff:10.0.0.1"]) assert.ok(restrictionAllows(r("LimitOnlyIntranet"), a), a);
    for (const a of ["8.8.8.8", "172.32.0.1", "192.169.0.1", "2001:db8::1", "::ffff:8.8.8.8"]) assert.ok(!restrictionAllows(r("LimitOnlyIntranet"), a), a);
    assert.ok(restrictionAllows(r("Customize", "In", ["2001:db8::/32"]), "2001:db8::5"));
    assert.ok(!restrictionAllows(r("Customize", "In", ["2001:db8::/32"]), "2001:db9::5"));
    assert.ok(restrictionAllows(r("Customize", "In", ["203.0.113.7"]), "::ffff:203.0.113.7"));
    assert.ok(!restrictionAllows(r("Customize", "NotIn", ["203.0.113.0/24"]), "203.0.113.200"));
    assert.ok(restrictionAllows(r("Customize", "NotIn", ["203.0.113.0/24"]), "203.0.114.1"));
  });

  test("range grammar", () => {
    assert.deepEqual(parseRange("bytes=0-0", 10), { start: 0, end: 0 });
    assert.deepEqual(parseRange("bytes=-100", 10), { start: 0, end: 9 });
    assert.equal(parseRange("bytes=0-", 0), "invalid");
    assert.equal(parseRange(undefined, 10), undefined);
    // Overlapping ranges are one range; disjoint ones (a multipart answer) and other units are refused.
    assert.deepEqual(parseRange("bytes=0-3,2-5", 10), { start: 0, end: 5 });
    assert.equal(parseRange("bytes=0-1,5-6", 10), "invalid");
    assert.equal(parseRange("items=0-1", 10), "invalid");
    assert.deepEqual(parseRange("Bytes = 1-2", 10), { start: 1, end: 2 });
  });
});

describe("after a crash during an export", () => {
  test("the next start puts a Status 3 backup back to Status 2, unlocked, and removes its export files", async () => {
    const b = await takeBackup(ID.main);
    await c.DescribeBackupUrl({ InstanceId: ID.main, BackupId: b.backupId });
    assert.equal(exportFiles(b.backupId).length, 1);
    const dataDir = path.join(srv.dataDir, "data");
    // What a crash mid-export leaves: the record at Status 3 and Locked 1, an export file on disk.
    await srv.services.catalog.updateBackup(b.backupId, { status: 3, locked: 1 });
    await srv.close();
    const again = await startServer({ ...DEFAULTS, dataDir, port: 0, logger: silentLogger, rateLimit: 0, schedulerIntervalMs: 0 }, {});
    try {
      const client = new RedisClient({
        credential: { secretId: KEY.secretId, secretKey: KEY.secretKey }, region: "ap-guangzhou",
        profile: { httpProfile: { endpoint: `127.0.0.1:${again.port}`, protocol: "http://" } },
      });
      const listed = await client.DescribeInstanceBackups({ InstanceId: ID.main, Status: [2] });
      const row = listed.BackupSet!.find((x) => x.BackupId === b.backupId);
      assert.ok(row, "back at Status 2");
      assert.equal(row.Locked, 0);
      assert.deepEqual(exportFiles(b.backupId), []);
      // And it can be exported again.
      const r = await client.DescribeBackupUrl({ InstanceId: ID.main, BackupId: b.backupId });
      const got = await fetchUrl(r.BackupInfos![0]!.DownloadUrl!);
      assert.equal(crypto.createHash("sha256").update(got.body).digest("hex"), b.files[0]!.sha256);
      // Links signed before the restart still work: the signing secret is kept in the catalogue.
      const old = new URL(link);
      old.port = String(again.port);
      assert.equal((await fetchUrl(old.toString(), { method: "HEAD" })).status, 200);
    } finally {
      await again.close();
    }
  });
});
