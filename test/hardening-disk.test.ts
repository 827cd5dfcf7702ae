// A full disk under the data directory (catalogue and files on one small tmpfs): backups fail with a message and
// leave nothing behind, a failure the catalogue cannot record at once is recorded when it can (it once left a
// backup at Status 1 and its instance locked for good), the API answers ResourceInsufficient instead of
// InternalError, and `serve` refuses to start with a message that says what is wrong.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRedis, RedisProcess, waitFor } from "./support/redis";
import { send } from "./support/dataset";
import { expectSdkError } from "./support/server";
import { cleanEnv, cli, killServed, sdk, serve, taskEnd } from "./support/cli-process";

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

/** Files and folders under `dir`, recursively. */
function entriesUnder(dir: string): string[] {
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]) : [];
}

const mounted = mountTmpfs();
let big: RedisProcess;
let slow: RedisProcess;

before(async () => {
  if ("skip" in mounted) return;
  // 12 MiB that neither LZF nor gzip can shrink: more than the whole disk.
  big = await startRedis(["--repl-diskless-sync-delay", "0"]);
  await send(big.endpoint, Array.from({ length: 96 }, (_, i) => ["SET", `r${i}`, crypto.randomBytes(128 << 10).toString("latin1")]));
  // A source that sends its keys one a second: its backup stays running for as long as the test needs.
  slow = await startRedis(["--repl-diskless-sync-delay", "0", "--rdb-key-save-delay", "1000000"]);
  await send(slow.endpoint, Array.from({ length: 60 }, (_, i) => ["SET", `s${i}`, `v${i}`]));
});

after(() => {
  killServed();
  big?.kill();
  slow?.kill();
  if ("dir" in mounted) {
    execFileSync("umount", ["-l", mounted.dir]);
    fs.rmdirSync(mounted.dir);
  }
});

test("a backup onto a disk that fills up, a failure that cannot be recorded at once, ResourceInsufficient, and serve on a full disk", { skip: "skip" in mounted ? mounted.skip : false }, async () => {
  const disk = (mounted as { dir: string }).dir;
  const data = path.join(disk, "data");
  const seed = path.join(os.tmpdir(), `crs-disk-seed-${process.pid}.json`);
  fs.writeFileSync(seed, JSON.stringify({
    Instances: [
      { InstanceId: "crs-diskbig1", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${big.port}` },
      { InstanceId: "crs-diskslw1", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${slow.port}` },
    ],
  }));
  const server = await serve(["--data", data, "--seed", seed, "--lease-seconds", "2"], env);
  const client = sdk(server.port, ID, KEY);

  // 1. The backup itself fills the disk: failed with the reason, its partial file gone, nothing listed.
  const first = await client.ManualBackupInstance({ InstanceId: "crs-diskbig1" });
  const firstEnd = await taskEnd(client, first.TaskId!);
  assert.equal(firstEnd.Status, "failed");
  assert.match(firstEnd.TaskMessage!, /ENOSPC|no space left/i);
  assert.equal((await client.DescribeInstanceBackups({ InstanceId: "crs-diskbig1" })).TotalCount, 0);
  assert.deepEqual(entriesUnder(path.join(data, "files")), [], "no partial file, no empty backups/<id>/ folder");

  // 2. The disk fills up while a backup runs, so its failure cannot be written to the catalogue.
  const second = await client.ManualBackupInstance({ InstanceId: "crs-diskslw1" });
  await waitFor("the backup to run", async () => (await client.DescribeTaskInfo({ TaskId: second.TaskId! })).Status === "running" || undefined, 10_000, 50);
  let ballast = fill(disk);
  // Meanwhile a request that must write answers a precise code, not InternalError.
  await expectSdkError(client.ManualBackupInstance({ InstanceId: "crs-diskbig1" }), "ResourceInsufficient");
  // The source drops the capture, and its snapshot child (which would go on sending a key a second) is ended.
  await send(slow.endpoint, [["CLIENT", "KILL", "TYPE", "replica"]]);
  for (const child of fs.readFileSync(`/proc/${slow.proc.pid}/task/${slow.proc.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) process.kill(Number(child), "SIGKILL");
  await waitFor("the failure's recording to be refused", () => server.stdout().includes("recording the task's outcome failed; retrying") || undefined, 20_000);
  await waitFor("the runner to give up within the lease", () => server.stdout().includes("giving up recording the task's outcome") || undefined, 20_000);
  // What the defect left for good: the task running and the backup at Status 1 (reads still work).
  assert.equal((await client.DescribeTaskInfo({ TaskId: second.TaskId! })).Status, "running");
  assert.deepEqual((await client.DescribeInstanceBackups({ InstanceId: "crs-diskslw1" })).BackupSet!.map((b) => b.Status), [1]);
  fs.rmSync(ballast);
  // Space again: the lapsed lease is recovered and the failure recorded, with its own reason.
  const secondEnd = await taskEnd(client, second.TaskId!, 20_000);
  assert.equal(secondEnd.Status, "failed");
  assert.match(secondEnd.TaskMessage!, /\(recorded late: the catalogue refused writes until after the task's lease lapsed\)/);
  assert.equal((await client.DescribeInstanceBackups({ InstanceId: "crs-diskslw1" })).TotalCount, 0, "nothing stays at Status 1");

  // 3. The instance is not locked: the next backup works.
  await send(slow.endpoint, [["CONFIG", "SET", "rdb-key-save-delay", "0"]]);
  const third = await client.ManualBackupInstance({ InstanceId: "crs-diskslw1" });
  const thirdEnd = await taskEnd(client, third.TaskId!);
  assert.equal(thirdEnd.Status, "succeed", thirdEnd.TaskMessage);
  assert.deepEqual((await client.DescribeInstanceBackups({ InstanceId: "crs-diskslw1" })).BackupSet!.map((b) => b.Status), [2]);
  assert.equal(await server.stop(), 0);

  // 4. `serve` on a full disk: a clear message and exit code 1, not a stack trace or a raw SQLITE_FULL.
  ballast = fill(disk);
  const refused = cli(["serve", "--data", data, "--port", "0"], env, { timeoutMs: 20_000 });
  assert.equal(refused.status, 1, refused.stdout + refused.stderr);
  assert.match(refused.stderr, new RegExp(`crs-backup: no space left for the data directory ${data.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(.+\\); free some space and start again`));
  fs.rmSync(ballast);
  const again = await serve(["--data", data], env);
  assert.equal(await again.stop(), 0);
});
