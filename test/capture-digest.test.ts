// The data-set digest of a backup, computed after the transfer (issue 16): the backup succeeds as soon as its
// file is stored, the digest is computed from the stored file by the low-priority digest worker and attached to
// the backup, and the backup task's message says so. A restore that needs it meanwhile waits for it; a backup
// retired meanwhile is not given one back. Real redis-server processes, the official SDK, the real server.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import { RedisEndpoint, RespValue } from "../src/redis/client/resp";
import { DIGEST_PENDING } from "../src/jobs/digests";
import { dbsize, send, writeMixedDataset } from "./support/dataset";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { KEY, SdkClient, startTestServer, TestServer } from "./support/server";

const DEBUG = ["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"];
const servers: RedisProcess[] = [];
let srv: TestServer;
let c: SdkClient;
let source: RedisProcess;
let target: RedisProcess;
const ids = { source: "crs-dig00001", target: "crs-dig00002" };

const str = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : String(v));
const digestOf = async (ep: RedisEndpoint): Promise<string> => str((await send(ep, [["DEBUG", "DIGEST"]]))[0]!);

before(async () => {
  [source, target] = await Promise.all([startRedis(DEBUG), startRedis(DEBUG)]);
  servers.push(source, target);
  await writeMixedDataset(source.endpoint);
  await send(source.endpoint, [["DEBUG", "POPULATE", 20_000, "pop", 32]]);
  const inst = (id: string, p: RedisProcess) => ({ InstanceId: id, InstanceName: id, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${p.port}` });
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [inst(ids.source, source), inst(ids.target, target)],
  }, { rateLimit: 0 });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  await srv?.close();
  for (const r of servers) r.kill();
});

interface TaskEnd { Status?: string; TaskMessage?: string }
const settled = (taskId: number): Promise<TaskEnd> =>
  waitFor(`task ${taskId}`, async () => {
    const t = await c.DescribeTaskInfo({ TaskId: taskId });
    return t.Status === "succeed" || t.Status === "failed" ? t : undefined;
  }, 60_000, 50);

/** A gate the test opens: digests wait at it (BackupDigests.hold). */
function gate(): { hold: (id: string) => Promise<void>; open(): void; reached: Promise<string> } {
  let open!: () => void;
  let reached!: (id: string) => void;
  const opened = new Promise<void>((r) => (open = r));
  const reachedP = new Promise<string>((r) => (reached = r));
  return { hold: async (id) => (reached(id), opened), open, reached: reachedP };
}

async function backup(): Promise<{ taskId: number; backupId: string; task: TaskEnd }> {
  const { TaskId } = await c.ManualBackupInstance({ InstanceId: ids.source, StorageDays: 7 });
  const task = await settled(TaskId!);
  assert.equal(task.Status, "succeed", task.TaskMessage);
  const backupId = (await c.DescribeInstanceBackups({ InstanceId: ids.source, Limit: 1 })).BackupSet![0]!.BackupId!;
  return { taskId: TaskId!, backupId, task };
}

describe("the backup's digest, after the transfer", { concurrency: 1 }, () => {
  test("the backup succeeds first; the digest of the stored file is attached after, and the task says so", async () => {
    const digests = srv.services.digests!;
    const g = gate();
    digests.hold = g.hold;
    try {
      const { taskId, backupId, task } = await backup();
      // Succeeded while its digest had not even started: the transfer does not wait for it.
      assert.equal(await g.reached, backupId);
      assert.ok(task.TaskMessage!.endsWith(`; ${DIGEST_PENDING}`), task.TaskMessage);
      assert.equal((await srv.services.catalog.backup(backupId))!.files[0]!.digest, undefined);
      g.open();
      const done = await waitFor("the digest's note", async () => {
        const t = await c.DescribeTaskInfo({ TaskId: taskId });
        return /data-set digest [0-9a-f]{40} computed from the stored file/.test(t.TaskMessage ?? "") ? t : undefined;
      }, 30_000, 50);
      const expected = await digestOf(source.endpoint);
      assert.match(done.TaskMessage!, new RegExp(`^\\d+ bytes in 1 shard\\(s\\); spooled [\\d.]+ KB in [\\d.]+ s, link closed; stored in [\\d.]+ s; data-set digest ${expected} computed from the stored file in \\d+ ms, attached \\d+ ms after the transfer$`));
      const file = (await srv.services.catalog.backup(backupId))!.files[0]!;
      assert.equal(file.digest, expected);
      const keyspace = str((await send(source.endpoint, [["INFO", "keyspace"]]))[0]!);
      assert.equal(file.keys, [...keyspace.matchAll(/keys=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0), "every database's keys");
      assert.ok(srv.logs.some((l) => l.includes('"msg":"backup digest attached"') && l.includes(expected)));
    } finally {
      digests.hold = undefined;
    }
  });

  test("the digest worker runs at the lowest CPU priority, in its own process", async () => {
    const { digestWorkerPids } = await import("../src/redis/rdb");
    const g = gate();
    srv.services.digests!.hold = g.hold;
    try {
      const { taskId } = await backup();
      await g.reached;
      g.open();
      // While it digests (or idles, for 30 s after), its process is there with nice 19 on every thread.
      const pid = await waitFor("a digest worker", () => digestWorkerPids()[0], 10_000, 5);
      assert.notEqual(pid, process.pid);
      assert.equal(os.getPriority(pid), 19);
      await waitFor("the digest's note", async () => /data-set digest [0-9a-f]{40}/.test((await c.DescribeTaskInfo({ TaskId: taskId })).TaskMessage ?? "") || undefined, 30_000, 50);
    } finally {
      srv.services.digests!.hold = undefined;
    }
  });

  test("a restore started while the digest is pending waits for it and verifies against it", async () => {
    const digests = srv.services.digests!;
    const g = gate();
    digests.hold = g.hold;
    try {
      const { taskId: backupTask, backupId } = await backup();
      await g.reached;
      await send(target.endpoint, [["FLUSHALL"]]);
      const TaskId = (await c.RestoreInstance({ InstanceId: ids.target, BackupId: backupId, Password: "" })).TaskId!;
      // The load completes, then the restore waits for the digest this node is computing.
      const keys = await dbsize(source.endpoint);
      await waitFor("the target loaded", async () => ((await dbsize(target.endpoint)) === keys ? true : undefined), 30_000, 20);
      const waiting = Date.now() + 1_000;
      while (Date.now() < waiting) {
        assert.equal((await c.DescribeTaskInfo({ TaskId })).Status, "running", "the restore waits while the digest is held");
        await new Promise((r) => setTimeout(r, 100));
      }
      g.open();
      const t = await settled(TaskId);
      const expected = await digestOf(source.endpoint);
      assert.equal(t.Status, "succeed", t.TaskMessage);
      assert.match(t.TaskMessage!, new RegExp(`verified equal \\(digest ${expected}\\)`));
      assert.equal(await digestOf(target.endpoint), expected);
      await waitFor("the digest attached", async () => ((await srv.services.catalog.backup(backupId))!.files[0]!.digest === expected ? true : undefined), 30_000, 50);
      assert.match((await c.DescribeTaskInfo({ TaskId: backupTask })).TaskMessage!, new RegExp(`data-set digest ${expected}`));
    } finally {
      digests.hold = undefined;
    }
  });

  test("a backup retired before its digest is ready gets none: the conditional write leaves the record as retired", async () => {
    const digests = srv.services.digests!;
    const g = gate();
    digests.hold = g.hold;
    try {
      const { taskId, backupId } = await backup();
      await g.reached;
      const b = (await srv.services.catalog.backup(backupId))!;
      assert.equal(await srv.services.backups.retire(b, -2, KEY.account), true);
      g.open();
      const t = await waitFor("the digest's note", async () => {
        const m = (await c.DescribeTaskInfo({ TaskId: taskId })).TaskMessage ?? "";
        return m.includes(DIGEST_PENDING) ? undefined : m;
      }, 30_000, 50);
      assert.match(t, /; it was retired before its data-set digest was ready, so it has none$/);
      const after = (await srv.services.catalog.backup(backupId))!;
      assert.equal(after.status, -2);
      assert.deepEqual(after.files, []);
    } finally {
      digests.hold = undefined;
    }
  });
});
