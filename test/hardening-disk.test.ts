// A full disk under the data directory (catalogue and files on one small tmpfs): backups fail with a message and
// leave nothing behind; a backup is refused up front (ResourceInsufficient naming the disk, its free bytes and the
// watermark) when there is less free space than the watermark; a failure the catalogue cannot record for a full
// disk is recorded with the disk reserve's space, or else reported from memory at once (DescribeTaskInfo failed,
// the backup not listed at Status 1) and written as soon as space is back, so the next backup starts at once; and
// `serve` refuses to start on a full disk with a message that says what is wrong. Also, without a tmpfs: the
// watermark's 1.2x rule, and automatic backups skipped (log line, metric) rather than recorded.
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRedis, RedisProcess, waitFor } from "./support/redis";
import { send } from "./support/dataset";
import { expectSdkError, KEY as TEST_KEY, startTestServer, waitForTask } from "./support/server";
import { createLogger, memoryDestination } from "../src/log";
import { DEFAULTS } from "../src/app";
import { LocalTime } from "../src/protocol/time";
import { cleanEnv, cli, killServed, sdk, serve } from "./support/cli-process";

const ID = "AKIDdiskfull00000000000000000000001";
const KEY = "diskfullsecret000000000000000000001";
const env = cleanEnv({ CRS_SECRET_ID: ID, CRS_SECRET_KEY: KEY });

/** Mounts an 8 MiB tmpfs (we run as root in CI); undefined, with the reason, where that is not permitted. */
function mountTmpfs(): { dir: string } | { skip: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", dir], { stdio: "pipe" });
    return { dir };
  } catch (err) {
    fs.rmdirSync(dir);
    return { skip: `mounting a tmpfs is not permitted here (${String((err as { stderr?: Buffer }).stderr ?? err).trim()}); run as root to test a full disk` };
  }
}

/** Fills the file system holding `dir` to the last byte with a ballast file; returns its path. */
function fill(dir: string): string {
  const file = path.join(dir, `ballast-${crypto.randomBytes(3).toString("hex")}`);
  const fd = fs.openSync(file, "w");
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 1]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** Fills the file system holding `dir` so that about `leave` bytes stay free; returns the ballast's path. */
function fillLeaving(dir: string, leave: number): string {
  const file = fill(dir);
  fs.truncateSync(file, Math.max(0, fs.statSync(file).size - leave));
  return file;
}

/** A task's status as the catalogue holds it (read-only, beside the running server). */
function durableStatus(catalogFile: string, taskId: number): string | undefined {
  const db = new Database(catalogFile, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT status FROM tasks WHERE task_id = ?").get(taskId) as { status?: string } | undefined)?.status;
  } finally {
    db.close();
  }
}

/** The pids of a redis-server's child processes (the fork that sends a snapshot to its replicas). */
function snapshotChildren(r: RedisProcess): number[] {
  return fs.readFileSync(`/proc/${r.proc.pid}/task/${r.proc.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}

/** Ends the capture of a slow source: drops its replicas and SIGKILLs the snapshot child that feeds them. */
async function cutCapture(r: RedisProcess): Promise<void> {
  await send(r.endpoint, [["CLIENT", "KILL", "TYPE", "replica"]]);
  for (const child of snapshotChildren(r)) process.kill(child, "SIGKILL");
}

/** Files and folders under `dir`, recursively. */
function entriesUnder(dir: string): string[] {
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]) : [];
}

const mounted = mountTmpfs();
let big: RedisProcess;
let slow: RedisProcess;
let slow2: RedisProcess;

before(async () => {
  if ("skip" in mounted) return;
  // 12 MiB that neither LZF nor gzip can shrink: more than the whole disk.
  big = await startRedis(["--repl-diskless-sync-delay", "0"]);
  await send(big.endpoint, Array.from({ length: 96 }, (_, i) => ["SET", `r${i}`, crypto.randomBytes(128 << 10).toString("latin1")]));
  // A source that sends its keys one a second: its backup stays running for as long as the test needs.
  slow = await startRedis(["--repl-diskless-sync-delay", "0", "--rdb-key-save-delay", "1000000"]);
  await send(slow.endpoint, Array.from({ length: 60 }, (_, i) => ["SET", `s${i}`, `v${i}`]));
  slow2 = await startRedis(["--repl-diskless-sync-delay", "0", "--rdb-key-save-delay", "1000000"]);
  await send(slow2.endpoint, Array.from({ length: 60 }, (_, i) => ["SET", `t${i}`, `v${i}`]));
});

after(() => {
  killServed();
  big?.kill();
  slow?.kill();
  slow2?.kill();
  if ("dir" in mounted) {
    execFileSync("umount", ["-l", mounted.dir]);
    fs.rmdirSync(mounted.dir);
  }
});

test("a disk that fills up: refused up front, failures recorded through the reserve or reported from memory, the lock released, serve on a full disk", { skip: "skip" in mounted ? mounted.skip : false }, async () => {
  const disk = (mounted as { dir: string }).dir;
  const data = path.join(disk, "data");
  const catalogFile = path.join(data, "catalog.db");
  const reserve = path.join(data, "catalog.reserve");
  const seed = path.join(os.tmpdir(), `crs-disk-seed-${process.pid}.json`);
  fs.writeFileSync(seed, JSON.stringify({
    Instances: [
      { InstanceId: "crs-diskbig1", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${big.port}` },
      { InstanceId: "crs-diskslw1", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${slow.port}` },
      { InstanceId: "crs-diskslw2", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${slow2.port}` },
    ],
  }));
  // A watermark floor that fits the 8 MiB disk (the default is 64 MB), and the default 4 MB reserve.
  const MIN_FREE = 1 << 20;
  const server = await serve(["--data", data, "--seed", seed, "--min-free-space", "1MB"], env);
  const client = sdk(server.port, ID, KEY);
  assert.equal(fs.statSync(reserve).size, 4 << 20, "the server keeps a 4 MB reserve next to the catalogue");

  // 1. The backup itself fills the disk: failed with the reason, its partial file gone, nothing listed.
  const first = await client.ManualBackupInstance({ InstanceId: "crs-diskbig1" });
  const firstEnd = await waitForTask(client, first.TaskId!);
  assert.equal(firstEnd.Status, "failed");
  assert.match(firstEnd.TaskMessage!, /ENOSPC|no space left/i);
  assert.equal((await client.DescribeInstanceBackups({ InstanceId: "crs-diskbig1" })).TotalCount, 0);
  assert.deepEqual(entriesUnder(path.join(data, "files")), [], "no partial file, no empty backups/<id>/ folder");

  // 2. The reproduction: ~72 KB free. A backup is refused up front, naming the disk, its free bytes and the
  //    watermark; no task, no Status-1 record.
  let ballast = fillLeaving(disk, 72 << 10);
  const refused = await expectSdkError(client.ManualBackupInstance({ InstanceId: "crs-diskslw1" }), "ResourceInsufficient");
  assert.match(refused.message, new RegExp(`not enough free space for a backup: the backup storage file:${data}/files \\(.+\\) has \\d+ bytes free \\(\\d+(\\.\\d)? KB\\), below the watermark of ${MIN_FREE} bytes \\(1\\.0 MB: at least --min-free-space ${MIN_FREE} bytes; the instance has no backup yet\\)`));
  assert.ok(Number(/has (\d+) bytes free/.exec(refused.message)![1]) < 100 << 10, refused.message);
  assert.equal((await client.DescribeTaskList({ InstanceId: "crs-diskslw1" })).TotalCount, 0, "no task");
  assert.equal((await client.DescribeInstanceBackups({ InstanceId: "crs-diskslw1" })).TotalCount, 0, "no Status-1 record");
  fs.rmSync(ballast);

  // 3. Two backups running when the disk fills up to the last byte.
  const s1 = (await client.ManualBackupInstance({ InstanceId: "crs-diskslw1" })).TaskId!;
  const s2 = (await client.ManualBackupInstance({ InstanceId: "crs-diskslw2" })).TaskId!;
  for (const t of [s1, s2]) await waitFor(`task ${t} to run`, async () => (await client.DescribeTaskInfo({ TaskId: t })).Status === "running" || undefined, 10_000, 50);
  // "running" is said before the capture's SYNC reaches the source: cut only once each source has forked the
  // snapshot child that feeds us (a cut before that kills nothing, and the capture then runs its 60 s).
  for (const r of [slow, slow2]) await waitFor(`port ${r.port}'s snapshot child`, () => snapshotChildren(r).length > 0 || undefined, 10_000, 50);
  ballast = fill(disk);
  // Meanwhile a request that must write answers a precise code, not InternalError (here: refused up front).
  await expectSdkError(client.ManualBackupInstance({ InstanceId: "crs-diskbig1" }), "ResourceInsufficient");
  // The first one fails: the catalogue refuses its record, the reserve is released and the record goes through.
  await cutCapture(slow);
  const s1End = await waitForTask(client, s1, 10_000);
  assert.equal(s1End.Status, "failed");
  assert.doesNotMatch(s1End.TaskMessage!, /interrupted/);
  await waitFor("the reserve to be released", () => server.stdout().includes("released the disk reserve") || undefined, 10_000);
  assert.equal(fs.existsSync(reserve), false);
  assert.equal(durableStatus(catalogFile, s1), "failed", "recorded in the catalogue, not only in memory");
  assert.equal((await client.DescribeInstanceBackups({ InstanceId: "crs-diskslw1" })).TotalCount, 0, "nothing stays at Status 1");

  // 4. The disk fills up again (the reserve's space is taken too) and the second one fails: the catalogue cannot
  //    record it, yet the API reports what the node knows at once.
  const ballast2 = fill(disk);
  await cutCapture(slow2);
  const s2End = await waitForTask(client, s2, 10_000);
  assert.equal(s2End.Status, "failed");
  await waitFor("the failure to be kept in memory", () => server.stdout().includes("the task's failure is kept in memory") || undefined, 10_000);
  assert.equal(durableStatus(catalogFile, s2), "running", "the catalogue still has it running: the answer came from the node's memory");
  assert.equal((await client.DescribeTaskInfo({ TaskId: s2 })).Status, "failed");
  assert.deepEqual((await client.DescribeTaskList({ InstanceId: "crs-diskslw2" })).Tasks!.map((t) => [t.TaskId, t.Result]), [[s2, 4]]);
  const listed = await client.DescribeInstanceBackups({ InstanceId: "crs-diskslw2" });
  assert.deepEqual([listed.TotalCount, listed.BackupSet!.length], [0, 0], "the failed backup is not listed at Status 1");
  await expectSdkError(client.ManualBackupInstance({ InstanceId: "crs-diskslw2" }), "ResourceInsufficient");

  // 5. Space again: a backup asked at once starts (no InstanceLockedError) and succeeds; the kept failure is
  //    written with its own message; the reserve is made again.
  fs.rmSync(ballast);
  fs.rmSync(ballast2);
  await send(slow2.endpoint, [["CONFIG", "SET", "rdb-key-save-delay", "0"]]);
  const third = await client.ManualBackupInstance({ InstanceId: "crs-diskslw2" });
  assert.equal(durableStatus(catalogFile, s2), "failed");
  assert.equal((await client.DescribeTaskInfo({ TaskId: s2 })).TaskMessage, s2End.TaskMessage);
  const thirdEnd = await waitForTask(client, third.TaskId!);
  assert.equal(thirdEnd.Status, "succeed", thirdEnd.TaskMessage);
  assert.deepEqual((await client.DescribeInstanceBackups({ InstanceId: "crs-diskslw2" })).BackupSet!.map((b) => b.Status), [2]);
  await waitFor("the reserve to be made again", () => (fs.existsSync(reserve) && fs.statSync(reserve).size === 4 << 20) || undefined, 10_000, 100);
  assert.equal(await server.stop(), 0);

  // 6. `serve` on a full disk: a clear message and exit code 1, not a stack trace or a raw SQLITE_FULL.
  ballast = fill(disk);
  const refusedStart = cli(["serve", "--data", data, "--port", "0"], env, { timeoutMs: 20_000 });
  assert.equal(refusedStart.status, 1, refusedStart.stdout + refusedStart.stderr);
  assert.match(refusedStart.stderr, new RegExp(`crs-backup: no space left for the data directory ${data.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(.+\\); free some space and start again`));
  fs.rmSync(ballast);
  const again = await serve(["--data", data], env);
  assert.equal(await again.stop(), 0);
});

test("the watermark: 1.2x the last backup, at least the floor; automatic backups skipped with a log line and a metric", async () => {
  const shanghai = new LocalTime("Asia/Shanghai");
  const clock = { now: () => shanghai.parse("2024-06-03 00:10:00")! }; // inside the default 00:00-01:00 window
  const { stream, lines } = memoryDestination();
  const huge = 2 ** 50; // 1 PiB: more than any disk this runs on has free, times 1.2
  const srv = await startTestServer({
    Credentials: [{ SecretId: TEST_KEY.secretId, SecretKey: TEST_KEY.secretKey, Account: TEST_KEY.account }],
    Instances: [{ InstanceId: "crs-diskwm01", Region: "ap-guangzhou", Account: TEST_KEY.account, Redis: "redis://127.0.0.1:1" }],
    Backups: [{ InstanceId: "crs-diskwm01", BackupId: "0b7c1e5d-b012-11e8-941e-4846fb00c75d", StartTime: "2024-06-02 00:10:00", EndTime: "2024-06-02 00:20:00",
      BackupType: "1", Status: 2, BackupSize: huge }],
  }, { rateLimit: 0, clock, schedulerIntervalMs: 0, minFreeBytes: 0, autoBackups: true, logger: createLogger({ destination: stream, level: "debug", pretty: false }) });
  try {
    const c = srv.client({ language: "en-US" });
    const refused = await expectSdkError(c.ManualBackupInstance({ InstanceId: "crs-diskwm01" }), "ResourceInsufficient");
    assert.match(refused.message, new RegExp(`the backup storage file:${srv.dataDir}/data/files \\(.+\\) has \\d+ bytes free .*below the watermark of ${Math.ceil(huge * 1.2)} bytes \\(.+: 1\\.2x the instance's last backup of ${huge} bytes\\)`));
    assert.equal((await c.DescribeTaskList({ InstanceId: "crs-diskwm01" })).TotalCount, 0);
    assert.deepEqual((await c.DescribeInstanceBackups({ InstanceId: "crs-diskwm01" })).BackupSet!.map((b) => b.Status), [2]);

    // The window is open: each pass skips the backup (no task recorded) and tries again on the next one.
    for (let i = 0; i < 2; i++) assert.deepEqual((await srv.services.scheduler.tick()).started, []);
    assert.equal((await c.DescribeTaskList({ InstanceId: "crs-diskwm01" })).TotalCount, 0, "a skipped automatic backup records no task");
    const skipped = lines.map((l) => JSON.parse(l) as { msg: string; level: string; instanceId?: string; reason?: string })
      .filter((l) => l.msg.startsWith("automatic backup skipped: not enough free space"));
    assert.deepEqual(skipped.map((l) => [l.level, l.instanceId]), [["warn", "crs-diskwm01"], ["debug", "crs-diskwm01"]], "warned once per window, then at debug level");
    assert.match(skipped[0]!.reason!, /below the watermark/);
    const metrics = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
    assert.match(metrics, /crs_backup_backups_refused_total\{task="backup",reason="disk_space"\} 1\n/);
    assert.match(metrics, /crs_backup_backups_refused_total\{task="auto_backup",reason="disk_space"\} 2\n/);
  } finally {
    await srv.close();
  }
  // The default floor is 64 MB.
  assert.equal(DEFAULTS.minFreeBytes, 64 << 20);
});
