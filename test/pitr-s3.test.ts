// Second-level backup on two nodes sharing one PostgreSQL catalogue and one S3 bucket (s3rver): exactly one node
// streams (stream_config.owner); SIGKILL of that node while writes go on, the other takes the stream over within
// the lease, from the durable offset (`PSYNC`, no new base); a second after the takeover restores with every
// acknowledged write, and DescribeSecondLevelBackupInfo shows at most the takeover gap. The S3 commit bound
// (--stream-commit-s3) sets the group-commit interval: the stored segments are that far apart. A clone of that
// second (CloneInstances on PostgreSQL + S3, by the survivor) holds the same writes as the restore.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freshDatabase, TestDatabase } from "./support/postgres";
import { freePort, RedisProcess, startRedis, waitFor } from "./support/redis";
import { startS3rver, S3TestServer } from "./support/s3";
import { SdkClient, waitForTask } from "./support/server";
import { processesIn } from "../src/instances/local";
import { runCli, sdk, serve, Served } from "./support/cli-process";
import { checkAtCut, writeStandalone } from "./support/pitr";
import { LocalTime } from "../src/protocol/time";

const KEY = { secretId: "AKIDpitrs3000000000000000000001", secretKey: "pitrs3secret" };
const LEASE_S = 3;
const COMMIT_S3_S = 2;
const ID = { source: "crs-ps3src01", target: "crs-ps3tgt01" };
const tz = new LocalTime("Asia/Shanghai");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Node extends Served {
  client: SdkClient;
}

let db: TestDatabase;
let s3: S3TestServer;
let master: RedisProcess;
let target: RedisProcess;
let base: string;
let clonePorts: string;
const nodes: Node[] = [];

function storageArgs(): string[] {
  return ["--catalog", db.url, "--storage", "s3://crs/pitr", "--s3-endpoint", s3.endpoint, "--s3-path-style", "--s3-key-file", path.join(base, "s3key.json")];
}

async function startNode(i: number): Promise<Node> {
  const env = { ...process.env, CRS_SECRET_ID: "", CRS_SECRET_KEY: "" };
  const node = await serve(["--data", path.join(base, `node-${i}`), "--seed", path.join(base, "seed.json"), ...storageArgs(),
    "--lease-seconds", String(LEASE_S), "--stream-commit-s3", String(COMMIT_S3_S), "--rate-limit", "0", "--clone-ports", clonePorts], env, { timeoutMs: 30_000 });
  return { ...node, client: sdk(node.port, KEY.secretId, KEY.secretKey, "en-US") };
}

async function query<T extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<T[]> {
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    return (await admin.query<T>(sql, args)).rows;
  } finally {
    await admin.end();
  }
}

before(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), "crs-pitr-s3-"));
  const p = Math.min(await freePort(), 65000);
  clonePorts = `${p}-${p + 5}`;
  [db, s3, master, target] = await Promise.all([freshDatabase("pitrs3"), startS3rver(), startRedis(["--repl-diskless-sync-delay", "0"]), startRedis(["--repl-diskless-sync-delay", "0"])]);
  await s3.createBucket("crs");
  fs.writeFileSync(path.join(base, "s3key.json"), JSON.stringify(s3.credentials), { mode: 0o600 });
  fs.writeFileSync(path.join(base, "seed.json"), JSON.stringify({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey }],
    Instances: [
      { InstanceId: ID.source, Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${master.port}` },
      { InstanceId: ID.target, Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${target.port}` },
    ],
  }));
  nodes.push(await startNode(1)); // it migrates the new database
  nodes.push(await startNode(2));
});

after(async () => {
  for (const n of nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill("SIGKILL");
  await Promise.all(nodes.map((n) => n.exit));
  for (const i of [1, 2]) {
    const dir = path.join(base, `node-${i}`, "instances");
    for (const id of fs.existsSync(dir) ? fs.readdirSync(dir) : []) for (const pid of processesIn(path.join(dir, id))) process.kill(pid, "SIGKILL");
  }
  master?.kill();
  target?.kill();
  await s3?.stop();
  await db?.drop();
});

test("two nodes on PostgreSQL + S3: the streaming node SIGKILLed, the other takes the stream over within the lease with no lost write", async () => {
  await nodes[0]!.client.ModifyInstanceBackupMode({ InstanceId: ID.source, BackupMode: "SecondLevelBackup" });
  const describe = (sec: number) => nodes[1]!.client.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: sec });
  await waitFor("the stream on", async () => (await describe(Math.floor(Date.now() / 1000) - 1)).BackupId || undefined, 30_000, 200);
  let stop = false;
  const writing = writeStandalone(master.endpoint, "w:", () => !stop);
  await sleep(2500);
  const [{ owner }] = await query<{ owner: string }>("SELECT owner FROM stream_config WHERE instance_id = $1", [ID.source]) as [{ owner: string }];
  const victim = nodes.find((n) => n.proc.pid === Number(owner.split(":")[2]));
  assert.ok(victim, `the owner ${owner} is one of our nodes`);
  const survivor = nodes.find((n) => n !== victim)!;
  const killedAt = Date.now();
  victim.proc.kill("SIGKILL");
  await victim.exit;
  const newOwner = await waitFor("the other node to take the stream over", async () => {
    const [r] = await query<{ owner: string | null; status: string }>("SELECT owner, status FROM stream_config WHERE instance_id = $1", [ID.source]);
    return r?.owner && r.owner !== owner && r.status.startsWith("streaming") ? r.owner : undefined;
  }, (LEASE_S + 10) * 1000, 100);
  const tookMs = Date.now() - killedAt;
  assert.ok(tookMs < (LEASE_S + 4) * 1000, `taken over ${tookMs} ms after the kill (lease ${LEASE_S} s)`);
  assert.equal(Number(newOwner.split(":")[2]), survivor.proc.pid);
  const takenAt = Date.now();
  await sleep(4000);
  stop = true;
  const ops = await writing;
  // A second after the takeover: every write acknowledged before it is there, none sent after it.
  const sec = Math.floor(takenAt / 1000) + 2;
  await waitFor(`second ${sec} covered`, async () => (await describe(sec)).BackupId || undefined, 30_000, 200);
  const r = await runCli(["restore", "--data", path.join(base, "cli"), ...storageArgs(), "--instance", ID.target, "--from", ID.source, "--at", tz.format(sec * 1000)]);
  assert.equal(r.code, 0, r.out);
  const tally = await checkAtCut(target.endpoint, ops, (sec + 1) * 1000);
  assert.ok(tally.inside > 200 && tally.outside > 50, JSON.stringify(tally));
  // One base: the survivor continued the stream with PSYNC from the durable offset in the catalogue.
  assert.equal((await query("SELECT backup_id FROM stream_bases WHERE instance_id = $1", [ID.source])).length, 1);
  // At most the takeover gap is missing (the lease plus a commit interval), nothing else.
  const gaps = (await describe(sec)).MissingTimestamps ?? [];
  const gapSeconds = gaps.reduce((n, g) => n + g.EndTimeStamp! - g.StartTimeStamp! + 1, 0);
  assert.ok(gapSeconds <= LEASE_S + COMMIT_S3_S + 3, `gap of ${gapSeconds} s: ${JSON.stringify(gaps)}`);
  assert.ok(gaps.every((g) => g.StartTimeStamp! >= Math.floor(killedAt / 1000) - COMMIT_S3_S - 1), JSON.stringify(gaps));
  // The S3 commit bound: segments with data are committed about COMMIT_S3_S apart (not every second).
  const segs = await query<{ from_ms: string; to_ms: string }>("SELECT from_ms, to_ms FROM stream_segments WHERE instance_id = $1 AND blob_key IS NOT NULL ORDER BY segment_id", [ID.source]);
  const spans = segs.slice(1).map((s) => Number(s.to_ms) - Number(s.from_ms));
  assert.ok(spans.length >= 2, `${segs.length} segments`);
  const median = [...spans].sort((a, b) => a - b)[Math.floor(spans.length / 2)]!;
  // The bound is on a write's wait, commit included: commits start a commit's duration (and a margin) sooner.
  assert.ok(median > 1300 && median <= COMMIT_S3_S * 1000 + 300, `median segment span ${median} ms`);

  // A clone of that second on PostgreSQL + S3, made by the survivor: the same writes as the restore.
  const out = await survivor.client.CloneInstances({
    InstanceId: ID.source, BackupId: (await describe(sec)).BackupId!, GoodsNum: 1, ZoneId: 100003, BillingMode: 0, Period: 1, SecurityGroupIdList: [], NoAuth: true,
    CloneTime: tz.format(sec * 1000),
  });
  const t = await waitForTask(survivor.client, Number(out.DealId), 120_000);
  assert.equal(t.Status, "succeed", t.TaskMessage);
  const clone = (await survivor.client.DescribeInstances({ InstanceId: out.InstanceIds![0]! })).InstanceSet![0]!;
  assert.equal(clone.Status, 2);
  const inClone = await checkAtCut({ host: "127.0.0.1", port: clone.Port! }, ops, (sec + 1) * 1000);
  assert.deepEqual(inClone, tally);
  const [row] = await query<{ state: string }>("SELECT state FROM provisioned_instances WHERE instance_id = $1", [clone.InstanceId]);
  assert.equal(row?.state, "ready");
});
