// A `crs-backup serve` process killed (SIGKILL) at each phase of a RestoreInstance, then started again: the
// target Redis must be a master again (it was left a read-only replica of a port that no longer existed), the
// task must tell what really happened to the target, the backup must be unlocked and a new restore must work.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { catalogFile } from "../src/config";
import { openCatalog } from "../src/catalog/open";
import { RedisReplyError, RespConnection, RedisEndpoint } from "../src/redis/client/resp";
import { parseInfo } from "../src/redis/restore/target";
import { startRedis, RedisProcess } from "./support/redis";
import { dbsize, send } from "./support/dataset";
import { cleanEnv, killServed, sdk, seededDir, serve, Served } from "./support/cli-process";
import { waitForTask } from "./support/server";

const ID = "AKIDrecovery0000000000000000000001";
const KEY = "recoverysecret0000000000000000001";
const KEYS = 20_000;

let source: RedisProcess;
let target: RedisProcess;

before(async () => {
  // DEBUG is enabled on both so the data sets' digests can be compared (and recorded as the backup's).
  source = await startRedis(["--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes"]);
  target = await startRedis(["--requirepass", "tpw", "--enable-debug-command", "yes"], { password: "tpw" });
  await send(source.endpoint, [["DEBUG", "POPULATE", KEYS, "k", 64]]);
});

after(() => {
  killServed();
  source?.kill();
  target?.kill();
});

async function replication(ep: RedisEndpoint): Promise<Map<string, string>> {
  const [reply] = await send(ep, [["INFO", "replication"]]);
  return parseInfo(reply!);
}

async function digest(ep: RedisEndpoint): Promise<string> {
  const [reply] = await send(ep, [["DEBUG", "DIGEST"]]);
  return String(reply);
}

/** A write as a client would send it: an error reply (READONLY) rejects. */
async function write(ep: RedisEndpoint, key: string): Promise<void> {
  const c = await RespConnection.connect(ep);
  try {
    const r = await c.command("SET", key, "1");
    if (r instanceof RedisReplyError) throw r;
  } finally {
    c.close();
  }
}

test("SIGKILL of the service in every phase of a restore: the target is a master again and the task tells what happened", async () => {
  const { data, seed } = seededDir("crs-recovery-", {
    Instances: [
      { InstanceId: "crs-rsource1", InstanceName: "source", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${source.port}` },
      { InstanceId: "crs-rtarget1", InstanceName: "target", Region: "ap-guangzhou", Redis: `redis://:tpw@127.0.0.1:${target.port}` },
    ],
  });
  const start = (crashAt?: string): Promise<Served> =>
    serve(["--data", data, "--seed", seed, "--lease-seconds", "5"], cleanEnv({ CRS_SECRET_ID: ID, CRS_SECRET_KEY: KEY, ...(crashAt ? { CRS_TEST_CRASH_AT: crashAt } : {}) }));

  // A backup of the source to restore from.
  let server = await start("restore-loaded");
  let client = sdk(server.port, ID, KEY);
  const made = await client.ManualBackupInstance({ InstanceId: "crs-rsource1" });
  assert.equal((await waitForTask(client, made.TaskId!)).Status, "succeed");
  const backupId = (await client.DescribeInstanceBackups({ InstanceId: "crs-rsource1" })).BackupSet![0]!.BackupId!;
  const sourceDigest = await digest(source.endpoint);

  /** Starts a restore on `server` (which crashes at its CRS_TEST_CRASH_AT) and checks the state it leaves. */
  const crashingRestore = async (): Promise<number> => {
    await send(target.endpoint, [["FLUSHALL"], ["SET", "stale", "1"]]);
    const { TaskId } = await client.RestoreInstance({ InstanceId: "crs-rtarget1", BackupId: backupId, Password: "tpw" });
    assert.equal(await server.exit, null, `the service was killed at its crash point:\n${server.out()}`);
    // What the defect left behind: a replica of an endpoint that died with the service, refusing writes.
    const repl = await replication(target.endpoint);
    assert.equal(repl.get("role"), "slave");
    assert.equal(repl.get("master_host"), "127.0.0.1");
    await assert.rejects(write(target.endpoint, "probe"), /READONLY/);
    return TaskId!;
  };

  /** After a restart: the target is a master taking writes, the backup unlocked; returns the task's end. */
  const recovered = async (taskId: number): Promise<{ Status?: string; TaskMessage?: string }> => {
    assert.match(server.out(), /"recovered":1,"msg":"recovered tasks interrupted by a previous run"/);
    assert.equal((await replication(target.endpoint)).get("role"), "master");
    await write(target.endpoint, "after-recovery");
    const backup = (await client.DescribeInstanceBackups({ InstanceId: "crs-rsource1" })).BackupSet![0]!;
    assert.equal(backup.Locked, 0);
    assert.equal(backup.Status, 2);
    const task = await client.DescribeTaskInfo({ TaskId: taskId });
    assert.ok(task.Status === "succeed" || task.Status === "failed", `task ${taskId} ended: ${task.Status}`);
    assert.match(task.TaskMessage!, /^interrupted: the node running it \(serve:.*a previous run of this server\) stopped; /);
    return task;
  };

  const restartWith = async (crashAt?: string) => {
    server = await start(crashAt);
    client = sdk(server.port, ID, KEY);
  };

  // 1. Killed once the target had loaded everything, before REPLICAOF NO ONE; the backup has no digest recorded
  //    (as backups captured by older versions, or whose digest was still being computed after the transfer when
  //    their node died, have none): the recovery computes it from the stored file, finds the target holds the
  //    backup, so the task succeeded, and the digest is attached to the backup for next time.
  let taskId = await crashingRestore();
  const withoutDigest = await openCatalog(catalogFile(data));
  const old = (await withoutDigest.backup(backupId))!;
  await withoutDigest.updateBackup(backupId, { files: old.files.map(({ digest: _d, ...f }) => f) });
  await withoutDigest.close();
  await restartWith("restore-replicaof-sent");
  let task = await recovered(taskId);
  assert.equal(task.Status, "succeed", task.TaskMessage);
  assert.match(task.TaskMessage!, /the target was switched back to master \(REPLICAOF NO ONE\); its data set is verified equal to the backup \(digest [0-9a-f]{40}\)/);
  assert.equal(await dbsize(target.endpoint), KEYS + 1); // the backup's keys, and the write just made
  {
    const reopened = await openCatalog(catalogFile(data));
    try {
      assert.equal((await reopened.backup(backupId))!.files[0]!.digest, sourceDigest, "the digest computed by the recovery is attached");
    } finally {
      await reopened.close();
    }
  }

  // 2. Killed right after REPLICAOF <us>: the target never connected back and keeps its own data.
  taskId = await crashingRestore();
  // From here on the backup carries the digest of its data set again (as every capture records it), so recovery
  // can tell a complete load from an incomplete one. Written while no server runs.
  const catalog = await openCatalog(catalogFile(data));
  const b = (await catalog.backup(backupId))!;
  await catalog.updateBackup(backupId, { files: b.files.map((f) => ({ ...f, digest: sourceDigest })) });
  await catalog.close();
  await restartWith("restore-transfer");
  task = await recovered(taskId);
  assert.equal(task.Status, "failed");
  assert.match(task.TaskMessage!, /switched back to master \(REPLICAOF NO ONE\); its data set differs from the backup .*: the load did not complete/);
  assert.equal(await dbsize(target.endpoint), 2); // "stale" and the write

  // 3. Killed half-way through the transfer: a disk-loading target discards the partial payload.
  taskId = await crashingRestore();
  await restartWith("restore-loaded");
  task = await recovered(taskId);
  assert.equal(task.Status, "failed");
  assert.match(task.TaskMessage!, /its data set differs from the backup/);
  assert.equal(await dbsize(target.endpoint), 2);

  // 4. Killed after the load, with a digest: the target verifiably holds the backup, so the restore succeeded.
  taskId = await crashingRestore();
  await restartWith("restore-payload-sent");
  task = await recovered(taskId);
  assert.equal(task.Status, "succeed", task.TaskMessage);
  assert.match(task.TaskMessage!, /switched back to master \(REPLICAOF NO ONE\); its data set is verified equal to the backup/);

  // 5. Killed once every byte was written: whether the target got them all depends on the kernel; the outcome
  //    reported must be the real one either way.
  taskId = await crashingRestore();
  await restartWith();
  task = await recovered(taskId);
  await send(target.endpoint, [["DEL", "after-recovery"]]);
  const holdsBackup = (await digest(target.endpoint)) === sourceDigest;
  assert.equal(task.Status, holdsBackup ? "succeed" : "failed", `${task.TaskMessage} (target holds the backup: ${holdsBackup})`);

  // And the target takes a new restore.
  await send(target.endpoint, [["SET", "stale", "1"]]);
  const again = await client.RestoreInstance({ InstanceId: "crs-rtarget1", BackupId: backupId, Password: "tpw" });
  const done = await waitForTask(client, again.TaskId!);
  assert.equal(done.Status, "succeed", done.TaskMessage);
  assert.equal(await digest(target.endpoint), sourceDigest);
  assert.equal((await replication(target.endpoint)).get("role"), "master");
  assert.equal(await server.stop(), 0);
});
