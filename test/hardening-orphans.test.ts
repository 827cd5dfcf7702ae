// Files no record points to: a `serve` killed between committing a backup's shard file and recording it left a
// complete file behind for good (and failed captures left empty backups/<id>/ folders). Recovery now removes
// every blob under an unfinished backup's prefix, start-up reconciles storage with the catalogue, and
// `crs-backup storage check` reports (and removes) orphans and reports missing files.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { startRedis, RedisProcess, waitFor } from "./support/redis";
import { send } from "./support/dataset";
import { cleanEnv, cli, killServed, sdk, seededDir, serve } from "./support/cli-process";
import { waitForTask } from "./support/server";

const ID = "AKIDorphans000000000000000000000001";
const KEY = "orphansecret000000000000000000000001";

let source: RedisProcess;

before(async () => {
  source = await startRedis(["--repl-diskless-sync-delay", "0"]);
  await send(source.endpoint, Array.from({ length: 200 }, (_, i) => ["SET", `k${i}`, `v${i}`]));
});

after(() => {
  killServed();
  source?.kill();
});

/** Files and folders under `dir`, recursively, as paths relative to it. */
function entriesUnder(dir: string): string[] {
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).sort() : [];
}

test("a crash between a shard file's commit and its record leaves no orphan; storage check reports orphans and missing files", async () => {
  const { data, seed } = seededDir("crs-orphans-", { Instances: [{ InstanceId: "crs-orphan01", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${source.port}` }] });
  const files = path.join(data, "files");
  const env = (crashAt?: string) => cleanEnv({ CRS_SECRET_ID: ID, CRS_SECRET_KEY: KEY, ...(crashAt ? { CRS_TEST_CRASH_AT: crashAt } : {}) });

  // 1. Killed right after the shard file was renamed into place, before the catalogue heard of it.
  const first = await serve(["--data", data, "--seed", seed], env("backup-shard-committed"));
  const { TaskId } = await sdk(first.port, ID, KEY).ManualBackupInstance({ InstanceId: "crs-orphan01" });
  assert.equal(await first.exit, null, "killed at the crash point");
  const left = entriesUnder(files).filter((f) => f.endsWith(".rdb.gz"));
  assert.equal(left.length, 1, `the complete shard file is there: ${left.join(", ")}`);

  // 2. Restarted: the task failed, no backup at Status 1, the file and its folder gone.
  const second = await serve(["--data", data], env());
  const client = sdk(second.port, ID, KEY);
  const task = await client.DescribeTaskInfo({ TaskId: TaskId! });
  assert.equal(task.Status, "failed");
  assert.match(task.TaskMessage!, /^interrupted: the node running it \(serve:.*\) stopped/);
  assert.equal((await client.DescribeInstanceBackups({ InstanceId: "crs-orphan01" })).TotalCount, 0);
  assert.deepEqual(entriesUnder(path.join(files, "backups")), [], "no orphan file and no empty folder");

  // A good backup, for the checks below.
  const made = await client.ManualBackupInstance({ InstanceId: "crs-orphan01" });
  assert.equal((await waitForTask(client, made.TaskId!)).Status, "succeed");
  const good = (await client.DescribeInstanceBackups({ InstanceId: "crs-orphan01" })).BackupSet![0]!.BackupId!;
  const goodKey = `backups/${good}/shard-0.rdb.gz`;
  assert.equal(await second.stop(), 0);

  // 3. storage check: planted orphans (a backup nobody knows, an export of a backup that is not exported).
  const stray = crypto.randomUUID();
  const orphans = [`backups/${stray}/shard-0.rdb.gz`, `exports/${good}/shard-0.rdb`];
  const plant = () => {
    for (const key of orphans) {
      fs.mkdirSync(path.dirname(path.join(files, key)), { recursive: true });
      fs.writeFileSync(path.join(files, key), "not a backup anyone recorded");
    }
  };
  plant();
  const check = (...args: string[]) => cli(["storage", "check", "--data", data, ...args], env());

  const dry = check("--dry-run");
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /^3 file\(s\) checked; 2 orphan\(s\) \(not removed: --dry-run\); 0 missing; 0 with the wrong size; 0 backup\(s\) in progress left alone$/m);
  for (const key of orphans) {
    assert.match(dry.stdout, new RegExp(`^orphan   ${key}$`, "m"));
    assert.ok(fs.existsSync(path.join(files, key)), `${key} is left by --dry-run`);
  }

  const removed = check("--output", "json");
  assert.equal(removed.status, 0, removed.stderr);
  const report = JSON.parse(removed.stdout) as { orphans: string[]; missing: string[]; removed: number; blobs: number };
  assert.deepEqual({ ...report, orphans: [...report.orphans].sort() }, { blobs: 3, orphans: [...orphans].sort(), missing: [], sizeMismatch: [], inProgress: 0, removed: 2 });
  assert.deepEqual(entriesUnder(files), ["backups", `backups/${good}`, `backups/${good}/shard-0.rdb.gz`], "the orphans and their folders are gone, the good file kept");

  // 4. A catalogued file missing from storage: reported, exit code 1 (never "repaired").
  fs.rmSync(path.join(files, goodKey));
  const missing = check();
  assert.equal(missing.status, 1);
  assert.match(missing.stdout, /0 orphan\(s\), 0 removed; 1 missing;/);
  assert.match(missing.stdout, new RegExp(`^missing  ${goodKey}$`, "m"));
  const missingJson = check("--output", "json", "--dry-run");
  assert.equal(missingJson.status, 1);
  assert.deepEqual((JSON.parse(missingJson.stdout) as { missing: string[] }).missing, [goodKey]);

  // 5. serve reconciles at start too: a planted orphan is removed in the background.
  plant();
  const third = await serve(["--data", data], env());
  await waitFor("the start-up reconciliation", () => third.stdout().includes("removed files no backup accounts for") || undefined, 10_000);
  for (const key of orphans) assert.ok(!fs.existsSync(path.join(files, key)), `${key} removed at start`);
  assert.ok(!fs.existsSync(path.join(files, "backups", stray)), "and its folder");
  assert.equal(await third.stop(), 0);
});
