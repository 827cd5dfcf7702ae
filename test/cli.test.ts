// The crs-backup command as a user runs it: a real process, its output, its files and its signals.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { RedisClient, expectSdkError, waitForTask } from "./support/server";
import { freePort, RedisProcess, startRedis, waitFor } from "./support/redis";
import { dbsize, filesUnder, send } from "./support/dataset";
import { killServed, seededDir, serve } from "./support/cli-process";

const CLI = path.join(__dirname, "..", "src", "cli", "main.js");

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!("CRS_SECRET_ID" in extra)) delete env.CRS_SECRET_ID;
  if (!("CRS_SECRET_KEY" in extra)) delete env.CRS_SECRET_KEY;
  return env;
}

function client(port: number, secretId: string, secretKey: string) {
  return new RedisClient({ credential: { secretId, secretKey }, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${port}`, protocol: "http://" } } });
}

test("first start generates credentials, prints them once, keeps files owner-only and stops cleanly on SIGTERM", async () => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-cli-")), "data");
  const first = await serve(["--data", dir], cleanEnv());
  const id = /SecretId:\s+(AKID\w+)/.exec(first.out())?.[1];
  const key = /SecretKey:\s+(\w+)/.exec(first.out())?.[1];
  assert.ok(id && key, first.out());
  await expectSdkError(client(first.port, id, key).DescribeInstanceBackups({ InstanceId: "crs-00000000" }), "ResourceNotFound.InstanceNotExists");
  await waitFor("the request's log line", () => (/"action":"DescribeInstanceBackups","account":"1300000000","code":"ResourceNotFound.InstanceNotExists","ms":/.test(first.out()) ? true : undefined));
  assert.equal(first.out().split(key).length - 1, 1, "the secret key is printed exactly once");
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  for (const f of fs.readdirSync(dir)) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o077, 0, `${f} is owner-only`);
  // A second server on the same data directory is refused before it touches anything.
  const clash = spawnSync(process.execPath, [CLI, "serve", "--data", dir, "--port", String(await freePort())], { encoding: "utf8", env: cleanEnv(), timeout: 10_000 });
  assert.equal(clash.status, 1);
  assert.match(clash.stderr, /another crs-backup server \(pid \d+\) is using/);
  first.proc.kill("SIGTERM");
  assert.equal(await first.exit, 0);

  const second = await serve(["--data", dir], cleanEnv());
  assert.doesNotMatch(second.out(), /SecretKey/);
  await expectSdkError(client(second.port, id, key).DescribeInstanceBackups({ InstanceId: "crs-00000000" }), "ResourceNotFound.InstanceNotExists");
  second.proc.kill("SIGTERM");
  assert.equal(await second.exit, 0);
});

test("CRS_SECRET_ID / CRS_SECRET_KEY define the default account's key, and --seed loads fixtures", async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "crs-cli-"));
  const seed = path.join(base, "seed.json");
  fs.writeFileSync(seed, JSON.stringify({
    Instances: [{ InstanceId: "crs-5a4py64p", InstanceName: "demo", Region: "ap-guangzhou" }],
    Backups: [{ InstanceId: "crs-5a4py64p", BackupId: "2e4127f8-affe-11e8-941e-4846fb00c75d", StartTime: "2018-09-04 12:51:21", Remark: "测试使用" }],
  }));
  const s = await serve(["--data", path.join(base, "data"), "--seed", seed, "--tz", "UTC"], cleanEnv({ CRS_SECRET_ID: "AKIDfromenv", CRS_SECRET_KEY: "envkey" }));
  try {
    assert.doesNotMatch(s.out(), /SecretKey/);
    const r = await client(s.port, "AKIDfromenv", "envkey").DescribeInstanceBackups({ InstanceId: "crs-5a4py64p" });
    assert.equal(r.TotalCount, 1);
    assert.equal(r.BackupSet![0]!.Remark, "测试使用");
    assert.equal(r.BackupSet![0]!.StartTime, "2018-09-04 12:51:21");
    assert.equal(r.BackupSet![0]!.ExpireTime, "2018-09-11 12:51:21");
  } finally {
    s.proc.kill("SIGTERM");
    await s.exit;
  }
});

test("crs-backup seed is all or nothing, and names the entry and field that is wrong", () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "crs-cli-"));
  const data = path.join(base, "data");
  const run = (doc: unknown) => {
    const f = path.join(base, `seed-${Math.random()}.json`);
    fs.writeFileSync(f, typeof doc === "string" ? doc : JSON.stringify(doc));
    return spawnSync(process.execPath, [CLI, "seed", f, "--data", data], { encoding: "utf8", env: cleanEnv() });
  };
  const good = { Instances: [{ InstanceId: "crs-aaaaaaaa", Region: "ap-guangzhou" }], Backups: [{ InstanceId: "crs-aaaaaaaa", StartTime: "2024-01-01 00:00:00" }] };
  const bad = {
    Instances: [{ InstanceId: "crs-bbbbbbbb", Region: "ap-guangzhou" }],
    Backups: [{ InstanceId: "crs-bbbbbbbb" }, { InstanceId: "crs-bbbbbbbb", Status: 9 }],
  };
  const cases: Array<[unknown, RegExp]> = [
    [bad, /Backups\[1\]\.Status: must be one of 1, 2, 3, 4, -1, -2/],
    [{ Instances: [{ InstanceId: "crs-BAD", Region: "ap-guangzhou" }] }, /Instances\[0\]\.InstanceId: must be crs- followed by 8/],
    [{ Instances: [{ InstanceId: "crs-cccccccc", Region: "moon-1" }] }, /Instances\[0\]\.Region: "moon-1" is not a region/],
    [{ Instances: [{ InstanceId: "crs-cccccccc", Region: "ap-guangzhou", Redis: "http://x" }] }, /Instances\[0\]\.Redis: scheme must be redis:\/\//],
    [{ Backups: [{ InstanceId: "crs-dddddddd" }] }, /Backups\[0\]\.InstanceId: crs-dddddddd is neither/],
    [{ Backups: [{ InstanceId: "crs-aaaaaaaa", StartTime: "yesterday" }] }, /Backups\[0\]\.StartTime: must be a time like/],
    [{ Credentials: [{ SecretId: "AKIDx" }] }, /Credentials\[0\]\.SecretKey: is required/],
    [{ Credentials: [{ SecretId: "AKIDx", SecretKey: "k", Policy: { Actions: "all" } }] }, /Credentials\[0\]\.Policy\.Actions: must be an array of strings/],
    [{ Instances: [{ InstanceId: "crs-eeeeeeee", Region: "ap-guangzhou", Colour: "red" }] }, /Instances\[0\]\.Colour: is not a known field/],
    ["{not json", /not valid JSON/],
  ];
  const ok = run(good);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /1 instance\(s\), 1 backup\(s\)/);
  for (const [doc, message] of cases) {
    const r = run(doc);
    assert.equal(r.status, 1, `${JSON.stringify(doc)} should fail`);
    assert.match(r.stderr, message);
  }
  // Nothing of the failed files landed: the instance from the first bad file is absent.
  const check = run({ Backups: [{ InstanceId: "crs-bbbbbbbb" }] });
  assert.match(check.stderr, /crs-bbbbbbbb is neither/);
});

test("bad command-line options are refused with usage", () => {
  const r = spawnSync(process.execPath, [CLI, "serve", "--rate-limit", "lots"], { encoding: "utf8", env: cleanEnv() });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--rate-limit takes N or Action=N/);
  const tz = spawnSync(process.execPath, [CLI, "serve", "--tz", "Mars/Olympus"], { encoding: "utf8", env: cleanEnv() });
  assert.equal(tz.status, 2);
  assert.match(tz.stderr, /unknown time zone/);
});

describe("backups from the command line, and a crash in the middle of one", () => {
  let source: RedisProcess;
  let slow: RedisProcess;
  before(async () => {
    source = await startRedis(["--requirepass", "pw1", "--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"], { password: "pw1" });
    slow = await startRedis(["--repl-diskless-sync-delay", "0", "--rdb-key-save-delay", "100", "--enable-debug-command", "yes"]);
    await send(source.endpoint, [["DEBUG", "POPULATE", 20_000, "k", 100]]);
    await send(slow.endpoint, [["DEBUG", "POPULATE", 50_000, "s", 16]]);
  });
  after(() => {
    killServed(); // a failed assertion must not leave a serve process holding the run open
    source.kill();
    slow.kill();
  });

  test("instance add (password from the environment) / list (masked) / backup with progress / remove", () => {
    const data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-cli-")), "data");
    const cli = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [CLI, ...args, "--data", data], { encoding: "utf8", env: cleanEnv(env) });
    const add = cli(["instance", "add", "--id", "crs-cli00001", "--name", "cache", "--redis", `redis://127.0.0.1:${source.port}`], { CRS_REDIS_PASSWORD: "pw1" });
    assert.equal(add.status, 0, add.stderr);
    assert.match(add.stdout, /registered crs-cli00001 \(cache, ap-guangzhou, account 1300000000\) -> redis:\/\/:\*\*\*@127\.0\.0\.1:\d+, Redis 7\.0\.\d+, 1 shard/);
    const dup = cli(["instance", "add", "--id", "crs-cli00001", "--redis", `redis://127.0.0.1:${source.port}`]);
    assert.equal(dup.status, 1);
    assert.match(dup.stderr, /already registered/);
    const badpw = cli(["instance", "add", "--redis", `redis://:wrong@127.0.0.1:${source.port}`]);
    assert.equal(badpw.status, 1);
    assert.match(badpw.stderr, /WRONGPASS|invalid password/i);
    assert.doesNotMatch(badpw.stderr + badpw.stdout, /wrong@/);
    const list = cli(["instance", "list"]);
    assert.match(list.stdout, /crs-cli00001\s+cache\s+ap-guangzhou\s+1300000000\s+17\s+1\s+master\s+redis:\/\/:\*\*\*@127\.0\.0\.1/);
    assert.doesNotMatch(list.stdout, /pw1/);
    // A Sentinel URL (the data password from the environment, the Sentinels' in the query), backed up from a replica.
    const sentinel = cli(["instance", "add", "--id", "crs-cli00009", "--no-check", "--backup-source", "replica", "--redis", "redis-sentinel://h1:26379,h2:26380/mymaster?sentinelPassword=spw1"], { CRS_REDIS_PASSWORD: "dpw1" });
    assert.equal(sentinel.status, 0, sentinel.stderr);
    assert.match(sentinel.stdout, /-> redis-sentinel:\/\/:\*\*\*@h1:26379,h2:26380\/mymaster\?sentinelPassword=\*\*\*$/m);
    assert.match(cli(["instance", "list"]).stdout, /crs-cli00009\s+.*\s+replica\s+redis-sentinel:\/\/:\*\*\*@h1/);
    assert.doesNotMatch(cli(["instance", "list"]).stdout, /dpw1|spw1/);
    assert.equal(cli(["instance", "remove", "crs-cli00009"]).status, 0);
    const badSource = cli(["instance", "add", "--no-check", "--backup-source", "slave", "--redis", "redis://h:1"]);
    assert.equal(badSource.status, 2, badSource.stderr);
    assert.match(badSource.stderr, /--backup-source must be one of master, replica, prefer-replica, got slave/);

    const backup = cli(["backup", "crs-cli00001", "--remark", "from cli"]);
    assert.equal(backup.status, 0, backup.stderr);
    const backupId = backup.stdout.trim();
    assert.match(backupId, /^[0-9a-f-]{36}$/);
    assert.match(backup.stderr, /[\d.]+ (KB|MB)\s+[\d.]+ (B|KB|MB)\/s\s+[\d.]+s\s+shard 1\/1/);
    assert.ok(fs.existsSync(path.join(data, "files", "backups", backupId, "shard-0.rdb.gz")));

    const removed = cli(["instance", "remove", "crs-cli00001"]);
    assert.equal(removed.status, 0, removed.stderr);
    assert.match(removed.stdout, /1 backup\(s\) deleted/);
    assert.ok(!fs.existsSync(path.join(data, "files", "backups", backupId, "shard-0.rdb.gz")));
    assert.doesNotMatch(cli(["instance", "list"]).stdout, /crs-cli00001/);
  });

  test("backup delete and restore from the command line", async () => {
    const data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-cli-")), "data");
    const cli = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [CLI, ...args, "--data", data], { encoding: "utf8", env: cleanEnv(env) });
    const target = await startRedis(["--requirepass", "tpw"], { password: "tpw" });
    try {
      await send(target.endpoint, [["SET", "stale", "1"]]);
      assert.equal(cli(["instance", "add", "--id", "crs-cli00002", "--redis", `redis://127.0.0.1:${source.port}`], { CRS_REDIS_PASSWORD: "pw1" }).status, 0);
      assert.equal(cli(["instance", "add", "--id", "crs-cli00003", "--redis", `redis://:tpw@127.0.0.1:${target.port}`]).status, 0);
      const first = cli(["backup", "crs-cli00002"]).stdout.trim();
      const second = cli(["backup", "crs-cli00002"]).stdout.trim();
      const del = cli(["backup", "delete", first]);
      assert.equal(del.status, 0, del.stderr);
      assert.match(del.stdout, /deleted .* Status -2/);
      assert.ok(!fs.existsSync(path.join(data, "files", "backups", first)));
      const again = cli(["restore", first, "--instance", "crs-cli00003"]);
      assert.equal(again.status, 1);
      assert.match(again.stderr, /Status -2/);
      const restored = cli(["restore", second, "--instance", "crs-cli00003"]);
      assert.equal(restored.status, 0, restored.stderr);
      assert.match(restored.stdout, /restored .* into crs-cli00003: 20000 keys/);
      assert.equal(await dbsize(target.endpoint), 20_000);
    } finally {
      target.kill();
    }
  });

  test("the service killed with SIGKILL during a backup, then restarted: the task is failed and nothing is left half-done", async () => {
    const { data, seed } = seededDir("crs-cli-", { Instances: [{ InstanceId: "crs-kill0001", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${slow.port}` }] });
    const env = cleanEnv({ CRS_SECRET_ID: "AKIDkill", CRS_SECRET_KEY: "killkey" });
    const first = await serve(["--data", data, "--seed", seed], env);
    const { TaskId } = await client(first.port, "AKIDkill", "killkey").ManualBackupInstance({ InstanceId: "crs-kill0001" });
    // The capture's file: its spool file (--capture-mode spool, the default) or the storage's partial file.
    const partial = () => [...filesUnder(path.join(data, "files")).filter((f) => f.endsWith(".partial")), ...filesUnder(path.join(data, "spool")).filter((f) => f.endsWith(".spool"))];
    await waitFor("bytes on disk", () => partial().some((f) => fs.statSync(f).size > 0) || undefined, 20_000);
    first.proc.kill("SIGKILL");
    await first.exit;

    const second = await serve(["--data", data], env);
    try {
      assert.match(second.out(), /"recovered":1,"msg":"recovered tasks interrupted by a previous run"/);
      const c2 = client(second.port, "AKIDkill", "killkey");
      const task = await c2.DescribeTaskInfo({ TaskId: TaskId! });
      assert.equal(task.Status, "failed");
      assert.match(task.TaskMessage!, /interrupted/);
      assert.equal((await c2.DescribeInstanceBackups({ InstanceId: "crs-kill0001" })).TotalCount, 0);
      assert.deepEqual(partial(), []);
      // The instance works again afterwards.
      const again = await c2.ManualBackupInstance({ InstanceId: "crs-kill0001" });
      const done = await waitForTask(c2, again.TaskId!, 60_000);
      assert.equal(done.Status, "succeed", done.TaskMessage);
    } finally {
      second.proc.kill("SIGTERM");
      await second.exit;
    }
  });
});
