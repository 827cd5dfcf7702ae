// Encrypted backups end to end, against real redis-server processes and the official SDK: a server with a keyring
// and --encrypt-backups on takes a backup whose stored bytes hold neither the RDB magic nor a known value; the SDK
// sees Encrypted true with KmsKeyId and KeyAlgorithm; the download link serves the captured RDB byte for byte; a
// restore is digest-equal; a flipped stored byte is detected; key rotation re-wraps without touching the file, a
// key still in use cannot be retired, and an old backup restores after rotation; a missing key is named.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { filesUnder, send, writeMixedDataset } from "./support/dataset";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { KEY, RedisClient, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";
import { makePki } from "./support/tls";
import { cleanEnv, cli } from "./support/cli-process";
import { readKeyringDoc, writeKeyring } from "../src/storage/keys/keyring";

const MAIN = "crs-enc00001";
const PLAIN = "crs-enc00002";
const TARGET = "crs-enc00003";
const KNOWN = "known-plaintext-value-91c4e2f7";

let source: RedisProcess;
let target: RedisProcess;
let srv: TestServer;
let c: SdkClient;
let keyring: string;
let filesDir: string;
let dataDir: string;

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (b: Buffer) => chunks.push(b));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    }).on("error", reject);
  });
}

const sha = (b: Buffer): string => crypto.createHash("sha256").update(b).digest("hex");

const storedFiles = (): string[] => filesUnder(filesDir);

async function digest(r: RedisProcess): Promise<string> {
  const [d] = await send(r.endpoint, [["DEBUG", "DIGEST"]]);
  return String(d);
}

const taskDone = (taskId: number) => waitForTask(c, taskId, 120_000);

async function backup(instanceId: string): Promise<string> {
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: instanceId });
  const t = await taskDone(TaskId!);
  assert.equal(t.Status, "succeed", t.TaskMessage);
  return (await srv.services.catalog.backup((await c.DescribeInstanceBackups({ InstanceId: instanceId, Status: [2, 4] })).BackupSet![0]!.BackupId!))!.backupId;
}

async function restore(backupId: string): Promise<{ Status?: string; TaskMessage?: string }> {
  await send(target.endpoint, [["FLUSHALL"]]);
  const { TaskId } = await c.RestoreInstance({ InstanceId: TARGET, BackupId: backupId, Password: "tpw" });
  return taskDone(TaskId!);
}

const crs = (args: string[], keys = keyring) => cli([...args, "--data", dataDir, "--encryption-keys", keys], cleanEnv());

before(async () => {
  [source, target] = await Promise.all([
    startRedis(["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"]),
    startRedis(["--enable-debug-command", "yes", "--requirepass", "tpw"], { password: "tpw" }),
  ]);
  await writeMixedDataset(source.endpoint);
  await send(source.endpoint, [["SET", "secret:known", KNOWN], ["DEBUG", "POPULATE", 20_000, "p", 64]]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-enckeys-"));
  keyring = path.join(dir, "keys.json");
  writeKeyring(keyring, { active: "k1", keys: { k1: crypto.randomBytes(32).toString("base64") } });
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [
      { InstanceId: MAIN, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${source.port}`, AutoBackup: false },
      { InstanceId: PLAIN, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${source.port}`, AutoBackup: false, EncryptBackups: false },
      { InstanceId: TARGET, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:tpw@127.0.0.1:${target.port}`, AutoBackup: false },
    ],
  }, { rateLimit: 0, encryptionKeys: keyring, encryptBackups: true });
  c = srv.client({ language: "en-US" });
  dataDir = path.join(srv.dataDir, "data");
  filesDir = path.join(dataDir, "files");
});

after(async () => {
  await srv?.close();
  source?.kill();
  target?.kill();
});

describe("an encrypted backup", () => {
  let id: string;

  test("the SDK sees Encrypted true, KmsKeyId and KeyAlgorithm; a plain instance's backup has none of them", async () => {
    id = await backup(MAIN);
    const listed = (await c.DescribeInstanceBackups({ InstanceId: MAIN })).BackupSet![0]!;
    assert.equal(listed.Encrypted, true);
    const detail = await c.DescribeBackupDetail({ InstanceId: MAIN, BackupId: id });
    assert.equal(detail.Encrypted, true);
    assert.equal(detail.KmsKeyId, "k1");
    assert.equal(detail.KeyAlgorithm, "AES-256-GCM");
    assert.equal(detail.DecryptKey, undefined, "no DecryptKey unless --download-encrypted, TLS and the policy allow it");
    // The data-set digest, computed from the stored (encrypted) file after the transfer, is attached.
    const digested = await waitFor("the backup's digest", async () => (await srv.services.catalog.backup(id))!.files[0]!.digest, 60_000, 100);
    assert.match(digested, /^[0-9a-f]{40}$/);
    assert.equal(digested, await digest(source));
    const plainId = await backup(PLAIN);
    assert.equal((await c.DescribeInstanceBackups({ InstanceId: PLAIN })).BackupSet![0]!.Encrypted, false);
    const plainDetail = await c.DescribeBackupDetail({ InstanceId: PLAIN, BackupId: plainId }) as Record<string, unknown>;
    assert.equal(plainDetail.Encrypted, false);
    assert.ok(!("KmsKeyId" in plainDetail) && !("KeyAlgorithm" in plainDetail) && !("DecryptKey" in plainDetail));
  });

  test("no plaintext in storage: neither the RDB magic nor a known value in any stored byte (exports included)", async () => {
    const url = (await c.DescribeBackupUrl({ InstanceId: MAIN, BackupId: id })).BackupInfos![0]!.DownloadUrl!;
    assert.equal((await get(url)).status, 200);
    const files = storedFiles().filter((f) => f.includes(id));
    assert.equal(files.length, 2, `the shard and its export: ${files.join(", ")}`);
    for (const f of files) {
      const bytes = fs.readFileSync(f);
      assert.ok(bytes.length > 100_000);
      assert.equal(bytes.indexOf("REDIS"), -1, `${f} holds the RDB magic`);
      assert.equal(bytes.indexOf(KNOWN), -1, `${f} holds the known value`);
    }
  });

  test("the download is byte-identical to the RDB the source sent (whole and by range), checked against the record", async () => {
    const record = (await srv.services.catalog.backup(id))!;
    const info = (await c.DescribeBackupUrl({ InstanceId: MAIN, BackupId: id })).BackupInfos![0]!;
    assert.equal(info.FileSize, record.files[0]!.bytes);
    const whole = await get(info.DownloadUrl!);
    assert.equal(whole.status, 200);
    assert.equal(whole.body.length, record.files[0]!.bytes);
    assert.equal(sha(whole.body), record.files[0]!.sha256);
    assert.equal(whole.body.subarray(0, 5).toString(), "REDIS");
    assert.ok(whole.body.indexOf(KNOWN) > 0);
    const part = await get(info.DownloadUrl!, { Range: "bytes=65000-140000" });
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, whole.body.subarray(65000, 140001));
  });

  test("restore, verify, inspect, export and storage check work on it; the restore is digest-equal", async () => {
    const done = await restore(id);
    assert.equal(done.Status, "succeed", done.TaskMessage);
    assert.equal(await digest(target), await digest(source));
    const verify = crs(["verify", id]);
    assert.equal(verify.status, 0, verify.stderr + verify.stdout);
    const inspect = crs(["inspect", id, "--format", "json"]);
    assert.equal(inspect.status, 0, inspect.stderr);
    assert.match(inspect.stdout, /secret:known|"keys"/);
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-encout-")), "x.rdb");
    const exported = crs(["export", id, "--format", "rdb", "--out", out]);
    assert.equal(exported.status, 0, exported.stderr);
    assert.equal(sha(fs.readFileSync(out)), (await srv.services.catalog.backup(id))!.files[0]!.sha256);
    const check = crs(["storage", "check", "--dry-run"]);
    assert.equal(check.status, 0, check.stderr + check.stdout);
  });

  test("a flipped byte in storage is detected by verify and by a restore", async () => {
    const file = storedFiles().find((f) => f.includes(id) && f.endsWith(".rdb.gz"))!;
    const original = fs.readFileSync(file);
    const bad = Buffer.from(original);
    bad[Math.floor(bad.length / 2)]! ^= 0x10;
    fs.writeFileSync(file, bad);
    try {
      const verify = crs(["verify", id]);
      assert.equal(verify.status, 1);
      assert.match(verify.stdout + verify.stderr, /failed authentication at chunk \d+/);
      const done = await restore(id);
      assert.equal(done.Status, "failed");
      assert.match(done.TaskMessage!, /failed authentication|altered/);
    } finally {
      fs.writeFileSync(file, original);
    }
  });

  test("rotation: a key still wrapping a live backup cannot be retired; re-wrapped without touching the file; the old backup restores", async () => {
    const file = storedFiles().find((f) => f.includes(id) && f.endsWith(".rdb.gz"))!;
    const before = sha(fs.readFileSync(file));
    const mtime = fs.statSync(file).mtimeMs;
    // A second key made active by hand (as an operator distributing a keyring to several nodes does).
    const doc = readKeyringDoc(keyring);
    writeKeyring(keyring, { active: "k2", keys: { ...doc.keys, k2: crypto.randomBytes(32).toString("base64") } });
    const refused = crs(["key-retire", "k1"]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /cannot retire "k1": it still wraps \d+ live backup\(s\) \(.*re-wrap them first/);
    const active = crs(["key-retire", "k2"]);
    assert.match(active.stderr, /it is the active key/);
    const rotated = crs(["key-rotation", "--output", "json"]);
    assert.equal(rotated.status, 0, rotated.stderr);
    const report = JSON.parse(rotated.stdout) as { active: string; added: string; rewrapped: number };
    assert.equal(report.active, "k3");
    assert.ok(report.rewrapped >= 1);
    assert.equal((await c.DescribeBackupDetail({ InstanceId: MAIN, BackupId: id })).KmsKeyId, "k3");
    for (const k of ["k1", "k2"]) assert.equal(crs(["key-retire", k]).status, 0);
    assert.deepEqual(Object.keys(readKeyringDoc(keyring).keys), ["k3"]);
    assert.equal(sha(fs.readFileSync(file)), before, "the stored file is untouched");
    assert.equal(fs.statSync(file).mtimeMs, mtime);
    const done = await restore(id);
    assert.equal(done.Status, "succeed", done.TaskMessage);
    assert.equal(await digest(target), await digest(source));
  });

  test("a missing key: verify, export and restore fail with a message naming the key id", async () => {
    const other = path.join(path.dirname(keyring), "other.json");
    writeKeyring(other, { active: "k9", keys: { k9: crypto.randomBytes(32).toString("base64") } });
    for (const args of [["verify", id], ["export", id, "--format", "json", "--out", path.join(path.dirname(keyring), "x.jsonl")]]) {
      const r = crs(args, other);
      assert.equal(r.status, 1);
      assert.match(r.stderr + r.stdout, /encrypted with master key "k3", which is not in the keyring/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    }
    // The running server reads its keyring again when it changes: without k3 the restore fails, naming it.
    const saved = readKeyringDoc(keyring);
    writeKeyring(keyring, readKeyringDoc(other));
    try {
      const done = await restore(id);
      assert.equal(done.Status, "failed");
      assert.match(done.TaskMessage!, /master key "k3"/);
    } finally {
      writeKeyring(keyring, saved);
    }
  });

  test("--download-encrypted: the link serves the encrypted file; DecryptKey only over TLS; crs-backup decrypt gives the RDB", async () => {
    srv.services.config.downloadEncrypted = true;
    try {
      const record = (await srv.services.catalog.backup(id))!;
      const info = (await c.DescribeBackupUrl({ InstanceId: MAIN, BackupId: id })).BackupInfos![0]!;
      assert.match(info.FileName!, /\.rdb\.enc$/);
      const enc = await get(info.DownloadUrl!);
      assert.equal(enc.status, 200);
      assert.equal(enc.body.length, info.FileSize);
      assert.equal(enc.body.indexOf("REDIS"), -1);
      // Plain HTTP: no DecryptKey.
      assert.equal((await c.DescribeBackupDetail({ InstanceId: MAIN, BackupId: id })).DecryptKey, undefined);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-encdl-"));
      const file = path.join(dir, info.FileName!);
      fs.writeFileSync(file, enc.body);
      // Our CLI with the keyring (what DecryptKey gives over TLS is the same data key; see tls-encryption below).
      const r = crs(["decrypt", file, "--backup", id]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(sha(fs.readFileSync(file.slice(0, -4))), record.files[0]!.sha256);
      const wrong = cli(["decrypt", file, "--key", crypto.randomBytes(32).toString("base64"), "--out", path.join(dir, "w.rdb")], cleanEnv());
      assert.equal(wrong.status, 1);
      assert.match(wrong.stderr, /failed authentication/);
      assert.ok(!fs.existsSync(path.join(dir, "w.rdb")) && !fs.existsSync(path.join(dir, "w.rdb.partial")));
    } finally {
      srv.services.config.downloadEncrypted = false;
    }
  });
});

describe("DecryptKey over TLS", () => {
  const LIMITED = { secretId: "AKIDenclimited00000000000000000001", secretKey: "enclimitedsecret0000000000000001" };
  let tls: TestServer;
  let agent: https.Agent;
  const client = (cred: { secretId: string; secretKey: string }) => new RedisClient({
    credential: cred, region: "ap-guangzhou", profile: { language: "en-US", httpProfile: { endpoint: `127.0.0.1:${tls.port}`, agent } },
  });
  before(async () => {
    const pki = makePki();
    tls = await startTestServer({
      Credentials: [
        { SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account },
        { SecretId: LIMITED.secretId, SecretKey: LIMITED.secretKey, Account: KEY.account, Policy: { Actions: ["DescribeBackupDetail", "ManualBackupInstance", "DescribeTaskInfo", "DescribeInstanceBackups"] } },
      ],
      Instances: [{ InstanceId: MAIN, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${source.port}`, AutoBackup: false }],
    }, { rateLimit: 0, encryptionKeys: keyring, encryptBackups: true, downloadEncrypted: true, tlsCert: pki.cert, tlsKey: pki.key });
    agent = new https.Agent({ ca: pki.ca });
  });
  after(async () => {
    agent?.destroy();
    await tls?.close();
  });

  test("given to a key whose policy allows DescribeBackupDecryptKey, never to one whose policy does not; it decrypts the download", async () => {
    const root = client(KEY);
    const { TaskId } = await root.ManualBackupInstance({ InstanceId: MAIN });
    await waitFor("the backup", async () => ((await root.DescribeTaskInfo({ TaskId: TaskId! })).Status === "succeed" ? true : undefined), 120_000, 50);
    const b = (await root.DescribeInstanceBackups({ InstanceId: MAIN })).BackupSet![0]!;
    const detail = await root.DescribeBackupDetail({ InstanceId: MAIN, BackupId: b.BackupId! });
    assert.equal(detail.Encrypted, true);
    assert.match(detail.DecryptKey ?? "", /^[A-Za-z0-9+/]{43}=$/);
    assert.equal((await client(LIMITED).DescribeBackupDetail({ InstanceId: MAIN, BackupId: b.BackupId! })).DecryptKey, undefined);
    const info = (await root.DescribeBackupUrl({ InstanceId: MAIN, BackupId: b.BackupId! })).BackupInfos![0]!;
    const body = await new Promise<Buffer>((resolve, reject) => {
      https.get(info.DownloadUrl!, { agent }, (res) => {
        const parts: Buffer[] = [];
        res.on("data", (x: Buffer) => parts.push(x));
        res.on("end", () => resolve(Buffer.concat(parts)));
      }).on("error", reject);
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-enctls-"));
    const file = path.join(dir, info.FileName!);
    fs.writeFileSync(file, body);
    const r = cli(["decrypt", file], cleanEnv({ CRS_DECRYPT_KEY: detail.DecryptKey! }));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(sha(fs.readFileSync(file.slice(0, -4))), (await tls.services.catalog.backup(b.BackupId!))!.files[0]!.sha256);
  });
});
