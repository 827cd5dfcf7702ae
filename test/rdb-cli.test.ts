// What is inside a backup, from the command line and without a Redis: `verify` (size, SHA-256, full parse,
// digest), `inspect` (backup or file), `export` as the RDB itself, JSON lines, and a RESP stream that
// `redis-cli --pipe` loads into an empty server digest-equal to the source.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { send, writeMixedDataset } from "./support/dataset";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { KEY, startTestServer, TestServer, waitForTask } from "./support/server";

const CLI = path.join(__dirname, "..", "src", "cli", "main.js");
const ID = "crs-rdbcli01";
let source: RedisProcess;
let empty: RedisProcess;
let srv: TestServer;
let backupId: string;
let sourceDigest: string;

/** Keys in every database (DBSIZE counts only the selected one). */
async function allDbKeys(): Promise<number> {
  const info = String((await send(source.endpoint, [["INFO", "keyspace"]]))[0]);
  return [...info.matchAll(/keys=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args, "--data", path.join(srv.dataDir, "data")], { encoding: "utf8", maxBuffer: 64 << 20, timeout: 60_000 });

before(async () => {
  [source, empty] = await Promise.all([
    startRedis(["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"]),
    startRedis(["--enable-debug-command", "yes"]),
  ]);
  await writeMixedDataset(source.endpoint);
  await send(source.endpoint, [["DEBUG", "POPULATE", 3000, "p", 24]]);
  sourceDigest = String((await send(source.endpoint, [["DEBUG", "DIGEST"]]))[0]);
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [{ InstanceId: ID, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${source.port}` }],
  }, { rateLimit: 0 });
  const c = srv.client();
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID });
  const done = await waitForTask(c, TaskId!, 30_000);
  assert.equal(done.Status, "succeed", done.TaskMessage);
  backupId = (await c.DescribeInstanceBackups({ InstanceId: ID })).BackupSet![0]!.BackupId!;
  // Its data-set digest is computed from the stored file after the transfer; verify compares against it.
  await waitFor("the backup's digest", async () => (await srv.services.catalog.backup(backupId))!.files[0]!.digest, 60_000, 50);
});

after(async () => {
  await srv.close();
  source.kill();
  empty.kill();
});

test("verify: size, SHA-256, a full parse with the CRC, and the digest recorded at capture", async () => {
  const ok = cli(["verify", backupId]);
  assert.equal(ok.status, 0, ok.stderr + ok.stdout);
  assert.match(ok.stdout, new RegExp(`digest ${sourceDigest} equal to the capture's`));
  assert.match(ok.stdout, /verified \(1 shard/);
  // A record that disagrees with the data is found out.
  const b = (await srv.services.catalog.backup(backupId))!;
  await srv.services.catalog.updateBackup(backupId, { files: [{ ...b.files[0]!, digest: "0".repeat(40) }] });
  try {
    const bad = cli(["verify", backupId]);
    assert.equal(bad.status, 1);
    assert.match(bad.stdout, /DIGEST MISMATCH/);
  } finally {
    await srv.services.catalog.updateBackup(backupId, { files: b.files });
  }
  // Bytes damaged at rest fail the SHA-256 check.
  const stored = path.join(srv.dataDir, "data", "files", b.files[0]!.key);
  const original = fs.readFileSync(stored);
  const damaged = Buffer.from(original);
  damaged[damaged.length - 20] ^= 0xff;
  fs.writeFileSync(stored, damaged);
  try {
    const broken = cli(["verify", backupId]);
    assert.equal(broken.status, 1);
    assert.match(broken.stdout, /shard 0: FAILED/);
  } finally {
    fs.writeFileSync(stored, original);
  }
});

test("inspect: a backup and a file, as a table and as JSON", async () => {
  const json = cli(["inspect", backupId, "--format", "json", "--top", "3"]);
  assert.equal(json.status, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { keys: number; expiring: number; biggest: unknown[]; dbs: Record<string, { keys: number }> };
  const total = await allDbKeys();
  assert.equal(report.keys, total);
  assert.ok(report.expiring >= 1);
  assert.equal(report.biggest.length, 3);
  assert.ok(Object.keys(report.dbs).length >= 2, "several databases");
  const table = cli(["inspect", backupId]);
  assert.match(table.stdout, new RegExp(`${total} keys`));
  const rdbFile = path.join(srv.dataDir, "export.rdb");
  assert.equal(cli(["export", backupId, "--format", "rdb", "--out", rdbFile]).status, 0);
  assert.equal(crypto.createHash("sha256").update(fs.readFileSync(rdbFile)).digest("hex"), (await srv.services.catalog.backup(backupId))!.files[0]!.sha256);
  const fromFile = spawnSync(process.execPath, [CLI, "inspect", rdbFile], { encoding: "utf8" });
  assert.equal(fromFile.status, 0, fromFile.stderr);
  assert.match(fromFile.stdout, new RegExp(`${total} keys`));
});

test("export: JSON lines, one per key; RESP that redis-cli --pipe loads digest-equal", async () => {
  const json = cli(["export", backupId, "--format", "json"]);
  assert.equal(json.status, 0, json.stderr);
  const lines = json.stdout.trim().split("\n");
  assert.equal(lines.length, await allDbKeys());
  for (const l of lines.slice(0, 50)) assert.ok(typeof (JSON.parse(l) as { key?: unknown }).key === "string");
  const respFile = path.join(srv.dataDir, "export.resp");
  const resp = cli(["export", backupId, "--format", "resp", "--out", respFile, "--target-version", "7.0"]);
  assert.equal(resp.status, 0, resp.stderr);
  execFileSync("sh", ["-c", `redis-cli -p ${empty.port} --pipe < '${respFile}'`], { stdio: "pipe" });
  assert.equal(String((await send(empty.endpoint, [["DEBUG", "DIGEST"]]))[0]), sourceDigest);
});
