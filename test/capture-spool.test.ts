// The spool (docs/storage.md "The spool"): a capture writes the raw snapshot to DATA/spool, closes the replication
// link, then checks, compresses, hashes, encrypts and stores it. Against real redis-server processes and a real
// `serve` (killed with SIGKILL at the moments that matter): the spool file is owner-only and, for an encrypted
// backup, unreadable; a crash while spooling or while storing leaves the task failed, no spool file, no partial
// file, no backup at Status 1, and no Redis with us as its replica; a full spool disk falls back to the direct path.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { startRedis, RedisProcess, waitFor } from "./support/redis";
import { filesUnder, send } from "./support/dataset";
import { cleanEnv, killServed, sdk, seededDir, serve } from "./support/cli-process";
import { waitForTask } from "./support/server";
import { writeKeyring } from "../src/storage/keys/keyring";

const ID = "AKIDspool00000000000000000000000001";
const KEY = "spoolsecret00000000000000000000001";
const MARKER = "plain-text-marker-that-must-not-be-on-disk";

let source: RedisProcess;

before(async () => {
  source = await startRedis(["--repl-diskless-sync-delay", "0"]);
  await send(source.endpoint, Array.from({ length: 400 }, (_, i) => ["SET", `k${i}`, `${MARKER}:${i}`]));
});

after(() => {
  killServed();
  source?.kill();
});

const env = (extra: Record<string, string> = {}) => cleanEnv({ CRS_SECRET_ID: ID, CRS_SECRET_KEY: KEY, ...extra });

function setup(prefix: string): { data: string; seed: string; spool: string; files: string; keys: string } {
  const { data, base, seed } = seededDir(prefix, { Instances: [{ InstanceId: "crs-spool001", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${source.port}` }] });
  const keys = path.join(base, "keys.json");
  writeKeyring(keys, { active: "k1", keys: { k1: crypto.randomBytes(32).toString("base64") } });
  return { data, seed, spool: path.join(data, "spool"), files: path.join(data, "files"), keys };
}

/** The replicas `source` has (a capture in progress is one): CLIENT LIST TYPE replica. */
async function replicas(): Promise<number> {
  const [list] = await send(source.endpoint, [["CLIENT", "LIST", "TYPE", "replica"]]);
  return String(list).split("\n").filter((l) => l.trim()).length;
}

const spoolFiles = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);

async function afterCrash(data: string, spool: string, files: string, keys: string, taskId: number): Promise<void> {
  await send(source.endpoint, [["CONFIG", "SET", "rdb-key-save-delay", "0"]]);
  await waitFor("no replica left on the source", async () => ((await replicas()) === 0) || undefined, 20_000);
  const again = await serve(["--data", data, "--encryption-keys", keys, "--encrypt-backups", "on"], env());
  const client = sdk(again.port, ID, KEY);
  const task = await client.DescribeTaskInfo({ TaskId: taskId });
  assert.equal(task.Status, "failed");
  assert.match(task.TaskMessage!, /^interrupted: the node running it \(serve:.*\) stopped/);
  assert.equal((await client.DescribeInstanceBackups({ InstanceId: "crs-spool001" })).TotalCount, 0, "no backup at Status 1 or otherwise");
  assert.deepEqual(spoolFiles(spool), [], "the spool file was removed by the recovery");
  assert.deepEqual(filesUnder(files).filter((f) => f.includes("backups/")), [], "no partial or orphan file in storage");
  // And the next backup works.
  const { TaskId } = await client.ManualBackupInstance({ InstanceId: "crs-spool001" });
  const ok = await waitForTask(client, TaskId!);
  assert.equal(ok.Status, "succeed", ok.TaskMessage);
  assert.match(ok.TaskMessage!, /spooled [\d.]+ KB in [\d.]+ s, link closed; stored in [\d.]+ s/);
  assert.deepEqual(spoolFiles(spool), []);
  assert.equal(await again.stop(), 0);
}

test("SIGKILL while spooling: the spool file of an encrypted backup is owner-only and unreadable; recovery fails the task and removes it", async () => {
  const { data, seed, spool, files, keys } = setup("crs-spool-a-");
  const first = await serve(["--data", data, "--seed", seed, "--encryption-keys", keys, "--encrypt-backups", "on"], env());
  // A slow master: 400 keys at 20 ms each (sent in 16 KB pipe chunks), so the spool is seen growing.
  await send(source.endpoint, [["CONFIG", "SET", "rdb-key-save-delay", "20000"]]);
  const { TaskId } = await sdk(first.port, ID, KEY).ManualBackupInstance({ InstanceId: "crs-spool001" });
  const file = await waitFor("the spool to grow", () => {
    const name = spoolFiles(spool)[0];
    return name && fs.statSync(path.join(spool, name)).size > 4096 ? path.join(spool, name) : undefined;
  }, 20_000);
  assert.equal(fs.statSync(spool).mode & 0o777, 0o700);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.match(path.basename(file), /^[0-9a-f-]{36}\.shard-0\.[0-9a-f]{12}\.spool$/);
  const bytes = fs.readFileSync(file);
  assert.ok(!bytes.includes(Buffer.from("REDIS")), "no RDB magic: the spool is encrypted");
  assert.ok(!bytes.includes(Buffer.from(MARKER)), "no value in clear");
  assert.equal(await replicas(), 1, "the capture is the source's replica while it spools");
  first.proc.kill("SIGKILL");
  assert.equal(await first.exit, null);
  assert.ok(fs.existsSync(file), "the kill left the spool file");
  await afterCrash(data, spool, files, keys, TaskId!);
});

test("SIGKILL while the spooled snapshot is being stored: the link was already closed; recovery fails the task, removes the spool and the partial file", async () => {
  const { data, seed, spool, files, keys } = setup("crs-spool-b-");
  const first = await serve(["--data", data, "--seed", seed, "--encryption-keys", keys, "--encrypt-backups", "on"], env({ CRS_TEST_CRASH_AT: "backup-spool-storing" }));
  const { TaskId } = await sdk(first.port, ID, KEY).ManualBackupInstance({ InstanceId: "crs-spool001" });
  assert.equal(await first.exit, null, "killed at the crash point");
  assert.equal(spoolFiles(spool).length, 1, "the kill left the spool file");
  await afterCrash(data, spool, files, keys, TaskId!);
});

test("the spool disk too full for the snapshot: streamed directly, said in the task; --capture-mode direct never spools", async () => {
  const { data, seed, spool } = setup("crs-spool-c-");
  const full = await serve(["--data", data, "--seed", seed], env({ CRS_TEST_FLAGS: "spool-disk-full" }));
  const client = sdk(full.port, ID, KEY);
  const { TaskId } = await client.ManualBackupInstance({ InstanceId: "crs-spool001" });
  const task = await waitForTask(client, TaskId!);
  assert.equal(task.Status, "succeed", task.TaskMessage);
  assert.match(task.TaskMessage!, /shard 1 streamed directly to storage, not spooled: the spool .*spool has 0 B free, less than 1\.2x the snapshot's estimated [\d.]+ [KM]B \(the server's used_memory\)/);
  assert.doesNotMatch(task.TaskMessage!, /link closed/);
  assert.equal(await full.stop(), 0);

  const direct = await serve(["--data", data, "--capture-mode", "direct"], env());
  const c2 = sdk(direct.port, ID, KEY);
  const second = await waitForTask(c2, (await c2.ManualBackupInstance({ InstanceId: "crs-spool001" })).TaskId!);
  assert.equal(second.Status, "succeed", second.TaskMessage);
  assert.doesNotMatch(second.TaskMessage!, /spool/);
  assert.deepEqual(spoolFiles(spool), []);
  assert.equal((await c2.DescribeInstanceBackups({ InstanceId: "crs-spool001" })).TotalCount, 2);
  assert.equal(await direct.stop(), 0);
});
