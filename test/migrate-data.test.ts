// `crs-backup migrate-data`: an embedded installation with real backups copied into PostgreSQL + S3, files
// verified, the source left byte-for-byte as it was, a second run finding everything already there, and a
// server on the new catalogue and bucket serving the old backups and keys.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { send } from "./support/dataset";
import { freshDatabase, TestDatabase } from "./support/postgres";
import { filesUnder } from "./support/dataset";
import { RedisProcess, startRedis } from "./support/redis";
import { startS3rver, S3TestServer } from "./support/s3";
import { KEY, startTestServer, waitForTask } from "./support/server";

const CLI = path.join(__dirname, "..", "src", "cli", "main.js");
const ID = "crs-migr0001";

let db: TestDatabase;
let s3: S3TestServer;
let redis: RedisProcess;
let keyFile: string;

before(async () => {
  [db, s3, redis] = await Promise.all([freshDatabase("migrate"), startS3rver(), startRedis(["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"])]);
  await s3.createBucket("crs");
  await send(redis.endpoint, [["DEBUG", "POPULATE", 5000, "m", 32]]);
  keyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-migr-key-")), "key.json");
  fs.writeFileSync(keyFile, JSON.stringify(s3.credentials), { mode: 0o600 });
});

after(async () => {
  redis.kill();
  await s3.stop();
  await db.drop();
});

function fingerprint(dir: string): string {
  const h = crypto.createHash("sha256");
  for (const f of filesUnder(dir).sort()) h.update(f).update(fs.readFileSync(f));
  return h.digest("hex");
}

function get(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`HTTP ${res.statusCode}`))));
    }).on("error", reject);
  });
}

test("an embedded installation moves into PostgreSQL + S3, verified, resumable, the source untouched", async () => {
  // The source: an embedded server with two real backups, one of them exported.
  const seed = {
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [{ InstanceId: ID, InstanceName: "to-move", Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${redis.port}` }],
  };
  const src = await startTestServer(seed, { rateLimit: 0 });
  const c = src.client();
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID, Remark: `b${i}` });
    const done = await waitForTask(c, TaskId!, 30_000);
    assert.equal(done.Status, "succeed", done.TaskMessage);
  }
  for (const b of (await c.DescribeInstanceBackups({ InstanceId: ID })).BackupSet!) ids.push(b.BackupId!);
  await c.DescribeBackupUrl({ InstanceId: ID, BackupId: ids[0]! });
  const sha = new Map<string, string>();
  for (const id of ids) sha.set(id, (await src.services.catalog.backup(id))!.files[0]!.sha256);
  await src.close();
  const dataDir = path.join(src.dataDir, "data");
  const before = fingerprint(dataDir);

  const target = ["--catalog", db.url, "--storage", "s3://crs/moved", "--s3-endpoint", s3.endpoint, "--s3-path-style", "--s3-key-file", keyFile];
  const run = () => spawnSync(process.execPath, [CLI, "migrate-data", "--from", dataDir, ...target], { encoding: "utf8", timeout: 60_000 });
  const first = run();
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /2 backup\(s\) copied \(0 already there, 0 in progress left out\), 2 file\(s\) copied/);
  assert.match(first.stdout, /every file verified/);
  assert.equal(fingerprint(dataDir), before, "the source is left exactly as it was");
  const second = run();
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stdout, /0 backup\(s\) copied \(2 already there/);

  // A server on the new catalogue and bucket serves them, to the same key.
  const moved = await startTestServer({}, { rateLimit: 0, catalog: db.url, storage: "s3://crs/moved", s3: { endpoint: s3.endpoint, region: "us-east-1", pathStyle: true, keyFile } });
  try {
    const m = moved.client();
    const listed = await m.DescribeInstanceBackups({ InstanceId: ID });
    assert.deepEqual(listed.BackupSet!.map((b) => b.BackupId).sort(), [...ids].sort());
    assert.ok(listed.BackupSet!.every((b) => b.Status === 2), "an exported backup arrives kept (exports are re-made)");
    for (const id of ids) {
      const url = (await m.DescribeBackupUrl({ InstanceId: ID, BackupId: id })).BackupInfos![0]!.DownloadUrl!;
      const body = await get(url);
      assert.equal(crypto.createHash("sha256").update(body).digest("hex"), sha.get(id));
    }
  } finally {
    await moved.close();
  }
});
