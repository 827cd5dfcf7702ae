// Backups in an S3-compatible object store, end to end: a real backup of a live redis-server streamed into a real
// S3 server (s3rver), downloaded through our link (streamed, and redirected to a pre-signed URL) and restored into
// another redis-server, digest-equal; and a capture killed mid-stream that leaves no object, no upload and no
// listed backup.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { send, writeMixedDataset } from "./support/dataset";
import { freePort, RedisProcess, startRedis, waitFor } from "./support/redis";
import { startS3rver, S3TestServer } from "./support/s3";
import { KEY, RedisClient, startTestServer, TestServer, waitForTask } from "./support/server";
import { cleanEnv, cli, killServed, sdk, serve as serveCli } from "./support/cli-process";

const CLI = path.join(__dirname, "..", "src", "cli", "main.js");
const MAIN = "crs-s3000001";
const TARGET = "crs-s3000002";

let s3: S3TestServer;
let source: RedisProcess;
let target: RedisProcess;
let keyFile: string;
const redisServers: RedisProcess[] = [];

async function digest(r: RedisProcess): Promise<string> {
  const [d] = await send(r.endpoint, [["DEBUG", "DIGEST"]]);
  return String(d);
}

function get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on("error", reject);
  });
}

before(async () => {
  s3 = await startS3rver();
  await s3.createBucket("crs");
  keyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-s3key-")), "key.json");
  fs.writeFileSync(keyFile, JSON.stringify(s3.credentials), { mode: 0o600 });
  [source, target] = await Promise.all([
    startRedis(["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"]),
    startRedis(["--enable-debug-command", "yes", "--requirepass", "tpw"], { password: "tpw" }),
  ]);
  redisServers.push(source, target);
  await writeMixedDataset(source.endpoint);
  await send(source.endpoint, [["DEBUG", "POPULATE", 20_000, "p", 64]]);
});

after(async () => {
  for (const r of redisServers) r.kill();
  await s3.stop();
});

describe("a server whose files are in S3", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
      Instances: [
        { InstanceId: MAIN, InstanceName: "main", Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${source.port}` },
        { InstanceId: TARGET, InstanceName: "target", Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:tpw@127.0.0.1:${target.port}` },
      ],
    }, { rateLimit: 0, storage: "s3://crs/node-a", s3: { endpoint: s3.endpoint, region: "us-east-1", pathStyle: true, keyFile } });
  });
  after(() => srv.close());

  test("backup into the bucket, download (streamed and redirected) and restore: byte- and digest-equal", async () => {
    const c = srv.client({ language: "en-US" });
    const sourceDigest = await digest(source);
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: MAIN });
    const task = await waitForTask(c, TaskId!, 60_000);
    assert.equal(task.Status, "succeed", task.TaskMessage);
    const b = (await c.DescribeInstanceBackups({ InstanceId: MAIN, Status: [2] })).BackupSet![0]!;
    // The object is in the bucket, under the store's prefix; nothing was written to the local data directory.
    const objects: string[] = [];
    for await (const o of s3.store("crs", { prefix: "node-a" }).list(`backups/${b.BackupId}/`)) objects.push(o.key);
    assert.deepEqual(objects, [`backups/${b.BackupId}/shard-0.rdb.gz`]);
    assert.ok(!fs.existsSync(path.join(srv.dataDir, "data", "files", "backups")));
    const record = (await srv.services.catalog.backup(b.BackupId!))!;

    const url = (await c.DescribeBackupUrl({ InstanceId: MAIN, BackupId: b.BackupId! })).BackupInfos![0]!.DownloadUrl!;
    const streamed = await get(url);
    assert.equal(streamed.status, 200);
    assert.equal(crypto.createHash("sha256").update(streamed.body).digest("hex"), record.files[0]!.sha256);
    srv.services.config.downloadRedirect = true;
    try {
      const redirected = await get(url);
      assert.equal(redirected.status, 302);
      const location = redirected.headers.location!;
      assert.ok(location.startsWith(s3.endpoint), location);
      const direct = await get(location);
      assert.equal(direct.status, 200);
      assert.equal(crypto.createHash("sha256").update(direct.body).digest("hex"), record.files[0]!.sha256);
    } finally {
      srv.services.config.downloadRedirect = false;
    }

    const restore = await c.RestoreInstance({ InstanceId: TARGET, BackupId: b.BackupId!, Password: "tpw" });
    const done = await waitForTask(c, restore.TaskId!, 60_000);
    assert.equal(done.Status, "succeed", done.TaskMessage);
    assert.equal(await digest(target), sourceDigest, "the restored data set is the source's");
  });
});

test("a capture into S3 killed mid-stream leaves no object, no upload and no listed backup", async () => {
  const slow = await startRedis(["--repl-diskless-sync-delay", "0", "--rdb-key-save-delay", "20"]);
  redisServers.push(slow);
  // Random values do not compress: enough bytes reach S3 for multipart parts to exist before the kill.
  for (let batch = 0; batch < 4; batch++) {
    await send(slow.endpoint, Array.from({ length: 1000 }, (_, i) => ["SET", `big:${batch}:${i}`, crypto.randomBytes(6144).toString("latin1")]));
  }
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "crs-s3kill-"));
  const seed = path.join(base, "seed.json");
  fs.writeFileSync(seed, JSON.stringify({ Instances: [{ InstanceId: "crs-s3kill01", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${slow.port}` }] }));
  const env = { ...process.env, CRS_SECRET_ID: "AKIDs3kill", CRS_SECRET_KEY: "s3killkey", CRS_STORAGE: "s3://crs/node-k", CRS_S3_ENDPOINT: s3.endpoint, CRS_S3_PATH_STYLE: "true", CRS_S3_KEY_FILE: keyFile };
  const serve = async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [CLI, "serve", "--port", String(port), "--data", path.join(base, "data"), "--seed", seed, "--rate-limit", "0", "--auto-backups", "off"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exit = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    await waitFor("the server to listen", () => (out.includes("listening on") ? true : undefined), 20_000);
    const client = new RedisClient({ credential: { secretId: "AKIDs3kill", secretKey: "s3killkey" }, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${port}`, protocol: "http://" } } });
    return { proc, exit, client, out: () => out };
  };
  const first = await serve();
  const { TaskId } = await first.client.ManualBackupInstance({ InstanceId: "crs-s3kill01" });
  await waitFor("an upload in progress", async () => ((await s3.uploadsOnDisk("crs")).some((u) => u.key.startsWith("node-k/backups/")) ? true : undefined), 30_000, 50);
  first.proc.kill("SIGKILL");
  await first.exit;

  const second = await serve();
  try {
    const task = await waitFor("the task to be recovered", async () => {
      const t = await second.client.DescribeTaskInfo({ TaskId: TaskId! });
      return t.Status === "failed" ? t : undefined;
    }, 20_000, 100);
    assert.match(task.TaskMessage!, /interrupted/);
    assert.equal((await second.client.DescribeInstanceBackups({ InstanceId: "crs-s3kill01" })).TotalCount, 0);
    const left: string[] = [];
    for await (const o of s3.store("crs", { prefix: "node-k" }).list("backups/")) left.push(o.key);
    assert.deepEqual(left, [], "no object");
    assert.deepEqual((await s3.uploadsOnDisk("crs")).filter((u) => u.key.startsWith("node-k/")), [], "the killed multipart upload was aborted");
  } finally {
    second.proc.kill("SIGTERM");
    await second.exit;
  }
});

test("serve on s3rver as published (no ListMultipartUploads, ListParts, AbortMultipartUpload): starts, backs up, warns once, says so in /metrics and storage check", async () => {
  const plain = await startS3rver({ plain: true });
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "crs-s3plain-"));
  try {
    await plain.createBucket("plain");
    const seed = path.join(base, "seed.json");
    fs.writeFileSync(seed, JSON.stringify({ Instances: [{ InstanceId: "crs-s3plain1", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${source.port}` }] }));
    const env = cleanEnv({ CRS_SECRET_ID: "AKIDs3plain", CRS_SECRET_KEY: "s3plainkey", CRS_STORAGE: "s3://plain/node-p", CRS_S3_ENDPOINT: plain.endpoint, CRS_S3_PATH_STYLE: "true", CRS_S3_KEY_FILE: keyFile });
    const data = path.join(base, "data");
    const served = await serveCli(["--data", data, "--seed", seed, "--rate-limit", "0"], env);
    try {
      const client = sdk(served.port, "AKIDs3plain", "s3plainkey");
      const { TaskId } = await client.ManualBackupInstance({ InstanceId: "crs-s3plain1" });
      const task = await waitForTask(client, TaskId!);
      assert.equal(task.Status, "succeed", task.TaskMessage);
      const listed = await client.DescribeInstanceBackups({ InstanceId: "crs-s3plain1" });
      assert.equal(listed.TotalCount, 1);
      const metrics = await get(`http://127.0.0.1:${served.port}/metrics`);
      for (const op of ["ListMultipartUploads", "ListParts", "AbortMultipartUpload"]) {
        assert.match(metrics.body.toString(), new RegExp(`^crs_backup_storage_capability\\{operation="${op}"\\} 0$`, "m"));
      }
      const out = served.out();
      for (const op of ["ListMultipartUploads", "ListParts", "AbortMultipartUpload"]) {
        assert.equal(out.split(`does not implement ${op}`).length - 1, 1, `one warning for ${op}:\n${out}`);
      }
      assert.match(out, /does not implement ListMultipartUploads: incomplete multipart uploads .* not swept: their parts keep taking \(billed\) space/);
    } finally {
      await served.stop();
    }
    const check = cli(["storage", "check", "--data", data], env);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /capability ListMultipartUploads: not implemented by the store: .*not swept/);
    assert.match(check.stdout, /capability AbortMultipartUpload: not implemented by the store/);
    const json = cli(["storage", "check", "--data", data, "--output", "json"], env);
    assert.equal(json.status, 0, json.stderr);
    const caps = (JSON.parse(json.stdout) as { capabilities: Array<{ operation: string; supported: boolean }> }).capabilities;
    assert.deepEqual(caps.map((c) => [c.operation, c.supported]), [["ListMultipartUploads", false], ["ListParts", false], ["AbortMultipartUpload", false]]);
  } finally {
    killServed();
    await plain.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
});
