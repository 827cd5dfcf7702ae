// Second-level backup under failure, with the service as a real child process (`crs-backup serve`, local
// storage, SQLite): SIGKILL of the service while writes go on, then a restart — the outage is reported in
// MissingTimestamps, a second before it and one after it restore exactly; the master and the service SIGKILLed
// in the same instant — the newest restorable second is within the 1 s commit bound (at whole-second
// granularity) of the kill and holds every write acknowledged before its end.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { cleanEnv, killServed, runCli, sdk, seededDir, serve, Served } from "./support/cli-process";
import type { SdkClient } from "./support/server";
import { AckedWrite, checkAtCut, writeStandalone } from "./support/pitr";
import { LocalTime } from "../src/protocol/time";

const KEY = { secretId: "AKIDpitrfail00000000000000000001", secretKey: "pitrfailsecret000000000000000001", account: "1300000901" };
const ID = { killed: "crs-pfail001", together: "crs-pfail002", target: "crs-pfail003" };
const DEBUG = ["--repl-diskless-sync-delay", "0"];
const LEASE_S = 3;
const tz = new LocalTime("Asia/Shanghai");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let master: RedisProcess;
let master2: RedisProcess;
let target: RedisProcess;
let dirs: { data: string; seed: string };
let node: Served;
let c: SdkClient;

async function startNode(): Promise<void> {
  node = await serve(["--data", dirs.data, "--seed", dirs.seed, "--lease-seconds", String(LEASE_S), "--rate-limit", "0"], cleanEnv());
  c = sdk(node.port, KEY.secretId, KEY.secretKey);
}

/** SIGKILL of the serving process (no shutdown of any kind), waited for. */
async function killNode(): Promise<void> {
  node.proc.kill("SIGKILL");
  await node.exit;
  assert.equal(node.signal(), "SIGKILL");
}

async function covered(id: string, sec: number): Promise<string> {
  return waitFor(`second ${sec} of ${id} covered`, async () => (await c.DescribeSecondLevelBackupInfo({ InstanceId: id, BackupTimestamp: sec })).BackupId || undefined, 30_000, 200);
}

/** Waits until the second before now is restorable (the stream is on and stored up to now). */
async function streaming(id: string): Promise<void> {
  await waitFor(`${id} streaming`, async () => (await c.DescribeSecondLevelBackupInfo({ InstanceId: id, BackupTimestamp: Math.floor(Date.now() / 1000) - 1 })).BackupId || undefined, 30_000, 200);
}

async function restore(from: string, sec: number): Promise<string> {
  const r = await runCli(["restore", "--data", dirs.data, "--instance", ID.target, "--from", from, "--at", tz.format(sec * 1000)]);
  assert.equal(r.code, 0, r.out);
  return r.out;
}

before(async () => {
  [master, master2, target] = await Promise.all([startRedis(DEBUG), startRedis(DEBUG), startRedis(DEBUG)]);
  const url = (p: RedisProcess) => `redis://127.0.0.1:${p.port}`;
  dirs = seededDir("crs-pitr-failures-", {
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [
      { InstanceId: ID.killed, Region: "ap-guangzhou", Account: KEY.account, Redis: url(master) },
      { InstanceId: ID.together, Region: "ap-guangzhou", Account: KEY.account, Redis: url(master2) },
      { InstanceId: ID.target, Region: "ap-guangzhou", Account: KEY.account, Redis: url(target) },
    ],
  });
  await startNode();
});

after(async () => {
  killServed();
  for (const r of [master, master2, target]) r?.kill();
});

test("SIGKILL of the service while writes go on, restart: the outage is in MissingTimestamps, seconds before and after it restore exactly", async () => {
  await c.ModifyInstanceBackupMode({ InstanceId: ID.killed, BackupMode: "SecondLevelBackup" });
  await streaming(ID.killed);
  let stopAt = Infinity;
  const writing = writeStandalone(master.endpoint, "k:", () => Date.now() < stopAt);
  // Long enough that the second checked before the outage (its start - 2, and the start may be up to 2 s before
  // the kill) already holds writes.
  await sleep(6000);
  const killedAt = Date.now();
  await killNode();
  await sleep(3000);
  await startNode();
  const restartedAt = Date.now();
  // Writes go on until the restarted node has streamed for a few seconds.
  await streaming(ID.killed);
  stopAt = Date.now() + 3000;
  const ops: AckedWrite[] = await writing;
  // The outage: one hole, between the last commit before the kill and the first sample after the restart.
  const now = Math.floor(Date.now() / 1000);
  const info = await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.killed, BackupTimestamp: now - 1 });
  const gaps = info.MissingTimestamps ?? [];
  assert.equal(gaps.length, 1, JSON.stringify(gaps));
  const g = gaps[0]!;
  assert.ok(g.StartTimeStamp! >= Math.floor(killedAt / 1000) - 2 && g.StartTimeStamp! <= Math.floor(killedAt / 1000) + 1, `${JSON.stringify(g)} vs killed at ${killedAt}`);
  assert.ok(g.EndTimeStamp! >= Math.floor(restartedAt / 1000) - 1 && g.EndTimeStamp! <= Math.floor(restartedAt / 1000) + LEASE_S + 2, `${JSON.stringify(g)} vs restarted at ${restartedAt}`);
  assert.equal((await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.killed, BackupTimestamp: g.StartTimeStamp! + 1 })).BackupId, "");
  // A second inside the outage is refused by the restore, with the reason.
  const refused = await runCli(["restore", "--data", dirs.data, "--instance", ID.target, "--from", ID.killed, "--at", tz.format((g.StartTimeStamp! + 1) * 1000)]);
  assert.equal(refused.code, 1, refused.out);
  assert.match(refused.out, /gap/);
  // A second before the kill and one after the outage: exact.
  for (const sec of [g.StartTimeStamp! - 2, g.EndTimeStamp! + 2]) {
    await covered(ID.killed, sec);
    await restore(ID.killed, sec);
    const tally = await checkAtCut(target.endpoint, ops, (sec + 1) * 1000);
    assert.ok(tally.inside > 50 && tally.outside > 50, `${sec}: ${JSON.stringify(tally)}`);
  }
});

test("master and service SIGKILLed together: the newest restorable second is within the 1 s bound of the kill and holds every write acknowledged before its end", async () => {
  await c.ModifyInstanceBackupMode({ InstanceId: ID.together, BackupMode: "SecondLevelBackup" });
  await streaming(ID.together);
  let stop = false;
  const writing = writeStandalone(master2.endpoint, "t:", () => !stop);
  await sleep(3000);
  const killedAt = Date.now();
  master2.proc.kill("SIGKILL");
  node.proc.kill("SIGKILL");
  await node.exit;
  stop = true;
  const ops = await writing;
  assert.ok(ops.filter((o) => o.acked !== undefined).length > 200, `${ops.length} writes`);
  await startNode();
  // The newest second a restore accepts (the master is gone: nothing more will be stored for it).
  let newest = -1;
  for (let sec = Math.floor(killedAt / 1000); sec > Math.floor(killedAt / 1000) - 5; sec--) {
    if ((await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.together, BackupTimestamp: sec })).BackupId) {
      newest = sec;
      break;
    }
  }
  // Group commit every second (local storage): what was acknowledged 1 s before the kill was stored, so the
  // newest restorable second ends no earlier than the start of the second holding kill - 1 s (- 300 ms slack
  // for the commit's own fsync).
  const cutoff = (newest + 1) * 1000;
  assert.ok(cutoff >= Math.floor((killedAt - 1300) / 1000) * 1000, `newest restorable second ${newest} (cut ${cutoff}), killed at ${killedAt}`);
  await restore(ID.together, newest);
  const tally = await checkAtCut(target.endpoint, ops, cutoff);
  assert.ok(tally.inside > 100, JSON.stringify(tally));
});
