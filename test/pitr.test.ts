// Point-in-time recovery, end to end: second-level backup switched on through the official SDK, a real master
// streamed while a writer records when each write was sent and acknowledged (SET, MULTI/EXEC, EVAL, EXPIRE,
// another database, deletions), then `crs-backup restore --at` into a second instance and every write checked:
// acknowledged before the second ends -> there, sent after it -> not there, a transaction or script never half.
// `CLIENT KILL TYPE replica` in the middle: the stream continues (PSYNC, no new base) and leaves no gap.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { RespConnection, RespValue } from "../src/redis/client/resp";
import { LocalTime } from "../src/protocol/time";
import { send } from "./support/dataset";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { KEY, SdkClient, seedCredentials, seedInstance, startTestServer, TestServer } from "./support/server";
import { runCli } from "./support/cli-process";

const DEBUG = ["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"];
const OTHER = { secretId: "AKIDpitrother00000000000000000001", secretKey: "pitrothersecret00000000000000001", account: "1300000777" };
const ID = { source: "crs-pitr0001", target: "crs-pitr0002", foreign: "crs-pitr0003", catalogOnly: "crs-pitr0004" };
/** Writes acknowledged this close before the end of the second may have arrived after it: either outcome. */
const ARRIVAL_MARGIN_MS = 200;

let master: RedisProcess;
let target: RedisProcess;
let srv: TestServer;
let seed: object;
let c: SdkClient;
const tz = new LocalTime("Asia/Shanghai");

/** One write of the writer and how to tell, from a restored data set, whether it is in it. */
interface Op {
  sent: number;
  acked: number;
  /** Commands that read its effect back. */
  reads: Array<Array<string | number>>;
  /** From the replies to `reads`: true (in), false (not in), or a string saying what is wrong (half applied). */
  judge(replies: RespValue[]): boolean | string;
}

const text = (v: RespValue): string | null => (v === null ? null : Buffer.isBuffer(v) ? v.toString() : String(v));

function both(a: RespValue, b: RespValue, ea: string, eb: string): boolean | string {
  const x = text(a) === ea;
  const y = text(b) === eb;
  if (x && y) return true;
  if (text(a) === null && text(b) === null) return false;
  return `half applied: ${text(a)} / ${text(b)}`;
}

/** Runs one write of kind i % 7 on `conn`, recording its times. */
async function write(conn: RespConnection, i: number): Promise<Op> {
  const sent = Date.now();
  let reads: Op["reads"];
  let judge: Op["judge"];
  switch (i % 7) {
    case 0:
      await conn.command("SET", `s:${i}`, `v${i}`);
      reads = [["GET", `s:${i}`]];
      judge = ([v]) => (text(v!) === `v${i}` ? true : text(v!) === null ? false : `unexpected ${text(v!)}`);
      break;
    case 1:
      await conn.command("MULTI");
      await conn.command("SET", `m:${i}`, "a");
      await conn.command("INCRBY", `c:${i}`, 7);
      await conn.command("EXEC");
      reads = [["GET", `m:${i}`], ["GET", `c:${i}`]];
      judge = ([a, b]) => both(a!, b!, "a", "7");
      break;
    case 2:
      await conn.command("EVAL", "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 1", 2, `e1:${i}`, `e2:${i}`, `lua${i}`);
      reads = [["GET", `e1:${i}`], ["GET", `e2:${i}`]];
      judge = ([a, b]) => both(a!, b!, `lua${i}`, `lua${i}`);
      break;
    case 3:
      await conn.command("SELECT", 1);
      await conn.command("SET", `d1:${i}`, "one");
      await conn.command("SELECT", 0);
      reads = [["SELECT", 1], ["GET", `d1:${i}`], ["SELECT", 0]];
      judge = ([, v]) => (text(v!) === "one" ? true : text(v!) === null ? false : `unexpected ${text(v!)}`);
      break;
    case 4:
      await conn.command("SET", `x:${i}`, "ttl", "EX", 100_000);
      reads = [["TTL", `x:${i}`]];
      judge = ([t]) => (Number(t) > 0 ? true : Number(t) === -2 ? false : `TTL ${String(t)}`);
      break;
    case 5:
      await conn.command("EXPIRE", `base:${i}`, 100_000);
      reads = [["TTL", `base:${i}`]];
      judge = ([t]) => (Number(t) > 0 ? true : Number(t) === -1 ? false : `TTL ${String(t)}`);
      break;
    default:
      await conn.command("DEL", `base:${i}`);
      reads = [["EXISTS", `base:${i}`]];
      judge = ([n]) => Number(n) === 0;
  }
  return { sent, acked: Date.now(), reads, judge };
}

/** Writes for `ms`, starting at op number `from`; returns the ops. */
/** Writes for `ms` (or until `more()` says stop), recording when each write was sent and acknowledged. */
async function writeFor(ms: number, from: number, during?: (elapsed: number) => Promise<void>, more: () => boolean = () => true): Promise<Op[]> {
  const conn = await RespConnection.connect(master.endpoint);
  const ops: Op[] = [];
  const t0 = Date.now();
  let i = from;
  let hooked = false;
  try {
    while (Date.now() - t0 < ms && more()) {
      ops.push(await write(conn, i++));
      if (!hooked && during && Date.now() - t0 > ms / 2) {
        hooked = true;
        await during(Date.now() - t0);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    conn.close();
  }
  return ops;
}

const cliAt = (args: string[]) => runCli([...args, "--data", path.join(srv.dataDir, "data")]);

/** Waits until the stream covers second `sec` (DescribeSecondLevelBackupInfo names a base for it). */
async function covered(sec: number): Promise<string> {
  return waitFor(`second ${sec} covered`, async () => {
    const r = await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: sec });
    return r.BackupId || undefined;
  }, 20_000, 200);
}

/** Restores the target to second `sec` and checks every op against it. */
async function restoreAndCheck(ops: Op[], sec: number): Promise<{ inside: number; outside: number; either: number }> {
  await covered(sec);
  const r = await cliAt(["restore", "--instance", ID.target, "--from", ID.source, "--at", tz.format(sec * 1000)]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /restored crs-pitr0002 to .* base [0-9a-f-]{36} \+ \d+ unit\(s\)/);
  const cutoff = (sec + 1) * 1000;
  const replies = await send(target.endpoint, ops.flatMap((o) => o.reads));
  let at = 0;
  const tally = { inside: 0, outside: 0, either: 0 };
  for (const [n, op] of ops.entries()) {
    const got = op.judge(replies.slice(at, at + op.reads.length));
    at += op.reads.length;
    assert.notEqual(typeof got, "string", `op ${n}: ${String(got)}`);
    if (op.acked < cutoff - ARRIVAL_MARGIN_MS) {
      assert.equal(got, true, `op ${n} (kind ${n % 7}) acknowledged at ${op.acked}, before the cut ${cutoff}, is missing`);
      tally.inside++;
    } else if (op.sent >= cutoff) {
      assert.equal(got, false, `op ${n} (kind ${n % 7}) sent at ${op.sent}, after the cut ${cutoff}, is in the restore`);
      tally.outside++;
    } else tally.either++;
  }
  return tally;
}

before(async () => {
  [master, target] = await Promise.all([startRedis(DEBUG), startRedis(DEBUG)]);
  await send(master.endpoint, Array.from({ length: 20_000 }, (_, i) => ["SET", `base:${i}`, `b${i}`]));
  await send(target.endpoint, [["SET", "stale", "x"]]);
  seed = {
    Credentials: seedCredentials(KEY, OTHER),
    Instances: [
      seedInstance(ID.source, "source", KEY, master.port),
      seedInstance(ID.target, "target", KEY, target.port),
      seedInstance(ID.foreign, "foreign", OTHER, master.port),
      seedInstance(ID.catalogOnly, "fixture", KEY),
    ],
  };
  srv = await startTestServer(seed, { rateLimit: 0 });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  await srv?.close();
  master?.kill();
  target?.kill();
});

test("ModifyInstanceBackupMode switches second-level backup on; DescribeInstances shows it; the stream takes a base", async () => {
  const before = (await c.DescribeInstances({ InstanceId: ID.source })).InstanceSet![0]!;
  assert.equal(before.BackupMode, "NormalLevelBackup");
  const { TaskId } = await c.ModifyInstanceBackupMode({ InstanceId: ID.source, BackupMode: "SecondLevelBackup" });
  assert.equal(typeof TaskId, "number");
  const task = await c.DescribeTaskInfo({ TaskId: TaskId! });
  assert.equal(task.Status, "succeed");
  assert.equal(task.TaskType, "FLOW_MODIFY_BACKUP_MODE");
  assert.equal((await c.DescribeInstances({ InstanceId: ID.source })).InstanceSet![0]!.BackupMode, "SecondLevelBackup");
  const base = await waitFor("the stream's base", async () => {
    const page = await c.DescribeInstanceBackups({ InstanceId: ID.source, Status: [2] });
    return page.BackupSet!.find((b) => b.Remark === "second-level backup base");
  }, 20_000, 200);
  assert.equal(base.BackupType, "1");
  const info = await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: Math.floor(Date.now() / 1000) - 1 });
  assert.ok(info.StartTimestamp! <= Math.floor(Date.now() / 1000));
  assert.deepEqual(info.MissingTimestamps, []);
});

test("restore --at a second: every write acknowledged before it is there, none sent after it, no transaction or script split", async () => {
  const ops = await writeFor(4000, 0);
  const t0 = ops[0]!.sent;
  const sec = Math.floor(t0 / 1000) + 2;
  const tally = await restoreAndCheck(ops, sec);
  assert.ok(tally.inside > 50 && tally.outside > 50, JSON.stringify(tally));
  // The target's own key is gone: the base replaced its data set.
  assert.equal(text((await send(target.endpoint, [["GET", "stale"]]))[0]!), null);
  // Acknowledgements report the durable offset: WAIT 1 on the master returns once a write is stored.
  const [, acked] = await send(master.endpoint, [["SET", "wait:1", "v"], ["WAIT", 1, 5000]]);
  assert.equal(Number(acked), 1);
});

test("CLIENT KILL TYPE replica: the stream continues from its durable offset (no new base), and a second after it restores exactly", async () => {
  const baseCount = async () => (await c.DescribeInstanceBackups({ InstanceId: ID.source, Status: [2] })).BackupSet!.filter((b) => b.Remark === "second-level backup base").length;
  assert.equal(await baseCount(), 1);
  let killedAt = 0;
  const ops = await writeFor(5000, 5000, async () => {
    killedAt = Date.now();
    const [n] = await send(master.endpoint, [["CLIENT", "KILL", "TYPE", "replica"]]);
    assert.equal(Number(n), 1);
  });
  const sec = Math.floor(killedAt / 1000) + 1;
  const tally = await restoreAndCheck(ops, sec);
  assert.ok(tally.inside > 50 && tally.outside > 50, JSON.stringify(tally));
  assert.equal(await baseCount(), 1, "a PSYNC continue takes no new base");
  const info = await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: sec });
  const gap = (info.MissingTimestamps ?? []).reduce((n, g) => n + g.EndTimeStamp! - g.StartTimeStamp! + 1, 0);
  assert.ok(gap <= 3, `gap of ${gap} s after the replica link was killed: ${JSON.stringify(info.MissingTimestamps)}`);
});

test("the service stopped while writes go on, then started again: the outage is in MissingTimestamps, as long as it was, and a later second restores exactly", async () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // Writes go on until 4 s after the restart, however long the restart takes on a loaded machine.
  let stopAt = Infinity;
  const writing = writeFor(120_000, 10_000, undefined, () => Date.now() < stopAt);
  await sleep(2000);
  const dataDir = srv.dataDir;
  await srv.close();
  const stoppedAt = Date.now();
  await sleep(3000);
  srv = await startTestServer(seed, { rateLimit: 0 }, dataDir);
  c = srv.client({ language: "en-US" });
  const restartedAt = Date.now();
  stopAt = restartedAt + 4000;
  const ops = await writing;
  const sec = Math.floor(restartedAt / 1000) + 2;
  const tally = await restoreAndCheck(ops, sec);
  assert.ok(tally.inside > 50 && tally.outside > 50, JSON.stringify(tally));
  const info = await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: sec });
  const gaps = info.MissingTimestamps ?? [];
  assert.equal(gaps.length, 1, JSON.stringify(gaps));
  const g = gaps[0]!;
  assert.ok(g.StartTimeStamp! >= Math.floor(stoppedAt / 1000) - 1 && g.EndTimeStamp! <= Math.floor(restartedAt / 1000) + 1, `${JSON.stringify(g)} vs down ${stoppedAt}..${restartedAt}`);
  assert.ok(g.EndTimeStamp! - g.StartTimeStamp! + 1 >= Math.floor((restartedAt - stoppedAt) / 1000) - 1, JSON.stringify(g));
  // A second inside the outage has no base to offer.
  const inside = await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: g.StartTimeStamp! + 1 });
  assert.equal(inside.BackupId, "");
  // The operator's view says the same.
  const st = await cliAt(["pitr", "status", ID.source, "--output", "json"]);
  assert.equal(st.code, 0, st.out);
  const status = JSON.parse(st.out) as { mode: string; bases: unknown[]; missing: string[]; durableOffset: number; node: string };
  assert.equal(status.mode, "SecondLevelBackup");
  assert.equal(status.bases.length, 1);
  assert.equal(status.missing.length, 1);
  assert.ok(status.durableOffset > 0 && status.node.length > 0, st.out);
});

test("refusals: bad mode, a catalogue-only instance, another account's instance, mode off, a future second", async () => {
  const code = async (p: Promise<unknown>) => p.then(() => "ok", (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`);
  assert.match(await code(c.ModifyInstanceBackupMode({ InstanceId: ID.source, BackupMode: "Hourly" })), /^InvalidParameter\.NotSupported: .*BackupMode/);
  assert.match(await code(c.ModifyInstanceBackupMode({ InstanceId: ID.catalogOnly, BackupMode: "SecondLevelBackup" })), /^FailedOperation\.UnSupportError/);
  assert.match(await code(c.ModifyInstanceBackupMode({ InstanceId: ID.foreign, BackupMode: "SecondLevelBackup" })), /^ResourceNotFound\.InstanceNotExists/);
  assert.match(await code(c.DescribeSecondLevelBackupInfo({ InstanceId: ID.foreign, BackupTimestamp: 1 })), /^ResourceNotFound\.InstanceNotExists/);
  assert.match(await code(c.DescribeSecondLevelBackupInfo({ InstanceId: ID.target, BackupTimestamp: Math.floor(Date.now() / 1000) })), /^FailedOperation\.UnSupportError/);
  assert.match(await code(c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: Math.floor(Date.now() / 1000) + 3600 })), /^InvalidParameter\.InvalidParameter: .*BackupTimestamp/);
  assert.match(await code(c.ModifyInstanceBackupMode({ InstanceId: ID.source } as never)), /^MissingParameter/);
});
