// The life of a second-level backup stream over time (issue 17 items 1, 5, 6): scheduled bases (here every 4 s,
// `--pitr-base-every`) taken through a second replica connection while the stream goes on, each proved against
// the previous base in a scratch redis-server (a pass, and a deliberately broken replay caught); a restore from
// a scheduled base (inside a segment) exact; /metrics and `pitr status` showing lag, durable offset, stored
// bytes, gaps and the proof; retention retiring old bases and deleting old segments (row, then blob; an unlisted
// blob swept) with DescribeSecondLevelBackupInfo agreeing.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import path from "node:path";
import { RespConnection } from "../src/redis/client/resp";
import { LocalTime } from "../src/protocol/time";
import { reclaimStream } from "../src/jobs/stream-retention";
import type { StreamBase } from "../src/catalog/types";
import { send } from "./support/dataset";
import { parsePrometheus } from "./support/prom";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { KEY, SdkClient, startTestServer, TestServer } from "./support/server";
import { runCli } from "./support/cli-process";

const DEBUG = ["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"];
const ID = { source: "crs-pitl0001", target: "crs-pitl0002" };
const BASE_EVERY_MS = 4000;
const tz = new LocalTime("Asia/Shanghai");

let master: RedisProcess;
let target: RedisProcess;
let srv: TestServer;
let c: SdkClient;
let writing: Promise<number> | undefined;
let stopWriting = false;

/** Writes that all change the data set (unique keys, a counter, a list): a dropped unit always shows in the digest. */
async function writer(): Promise<number> {
  const conn = await RespConnection.connect(master.endpoint);
  let i = 0;
  try {
    while (!stopWriting) {
      if (i % 3 === 0) await conn.command("SET", `w:${i}`, `v${i}`);
      else if (i % 3 === 1) await conn.command("INCR", "counter");
      else {
        await conn.command("MULTI");
        await conn.command("RPUSH", "list", String(i));
        await conn.command("SET", `m:${i}`, "x");
        await conn.command("EXEC");
      }
      i++;
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    conn.close();
  }
  return i;
}

const cliAt = (args: string[]) => runCli([...args, "--data", path.join(srv.dataDir, "data")]);

function scrape(): Promise<ReturnType<typeof parsePrometheus>> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port: srv.port, path: "/metrics" }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => resolve(parsePrometheus(Buffer.concat(chunks).toString("utf8"))));
    }).on("error", reject);
  });
}

const bases = () => srv.services.catalog.streamBases(ID.source, 0);

/** Waits for a base after `after` whose proof has been recorded. */
async function provedBaseAfter(after: number): Promise<StreamBase> {
  return waitFor(`a proved base after ${after}`, async () => (await bases()).find((b) => b.takenAt > after && b.proof), 60_000, 200);
}

async function digest(p: RedisProcess): Promise<string> {
  return String((await send(p.endpoint, [["DEBUG", "DIGEST"]]))[0]);
}

before(async () => {
  [master, target] = await Promise.all([startRedis(DEBUG), startRedis(DEBUG)]);
  await send(master.endpoint, Array.from({ length: 500 }, (_, i) => ["SET", `base:${i}`, `b${i}`]));
  const url = (p: RedisProcess) => `redis://127.0.0.1:${p.port}`;
  const seed = {
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: [
      { InstanceId: ID.source, InstanceName: "source", Region: "ap-guangzhou", Account: KEY.account, Redis: url(master) },
      { InstanceId: ID.target, InstanceName: "target", Region: "ap-guangzhou", Account: KEY.account, Redis: url(target) },
    ],
  };
  srv = await startTestServer(seed, { rateLimit: 0, pitrBaseEveryMs: BASE_EVERY_MS, schedulerIntervalMs: 0 });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  stopWriting = true;
  await writing?.catch(() => undefined);
  delete process.env.CRS_TEST_FLAGS;
  await srv?.close();
  master?.kill();
  target?.kill();
});

test("a scheduled base is taken through a second connection while the stream goes on, and its proof passes", async () => {
  await c.ModifyInstanceBackupMode({ InstanceId: ID.source, BackupMode: "SecondLevelBackup" });
  const first = await waitFor("the stream's first base", async () => (await bases())[0], 20_000, 100);
  writing = writer();
  const second = await provedBaseAfter(first.takenAt);
  assert.equal(second.proof!.ok, true, second.proof!.detail);
  assert.equal(second.proof!.previous, first.backupId);
  assert.ok(second.proof!.units > 10, JSON.stringify(second.proof));
  assert.match(second.proof!.detail, /the stream is complete/);
  assert.equal(second.replid, first.replid);
  assert.ok(second.offset > first.offset, "the scheduled base lies further in the stream");
  assert.ok(second.takenAt - first.takenAt >= BASE_EVERY_MS - 100, `${second.takenAt - first.takenAt} ms between bases`);
  // The stream itself never reconnected: the base came through a second connection.
  const session = srv.services.streams.session(ID.source)!;
  assert.equal(session.reconnects, 0);
  assert.equal(session.bases, 1, "only the first base came from the stream's own link");
  const backup = (await srv.services.catalog.backup(second.backupId))!;
  assert.equal(backup.remark, "second-level backup base");
  assert.equal(backup.status, 2);
  // The planner picks the newest base before the cut: a second after the scheduled base starts from it.
  const sec = Math.floor(second.takenAt / 1000) + 2;
  const named = await waitFor(`second ${sec} covered`, async () => (await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: sec })).BackupId || undefined, 20_000, 200);
  const newerBefore = (await bases()).filter((b) => b.takenAt < (sec + 1) * 1000).at(-1)!;
  assert.equal(named, newerBefore.backupId);
  assert.notEqual(named, first.backupId);
});

test("/metrics: stream up, lag, durable offset, stored bytes, no gaps, the proof passed", async () => {
  const session = srv.services.streams.session(ID.source)!;
  const m = await waitFor("stream metrics", async () => {
    const x = await scrape();
    return x.get("crs_backup_stream_proof_ok", { instance_id: ID.source }) !== undefined && x.get("crs_backup_stream_lag_seconds", { instance_id: ID.source }) !== undefined ? x : undefined;
  }, 20_000, 300);
  const v = (name: string) => m.get(name, { instance_id: ID.source });
  assert.equal(v("crs_backup_stream_enabled"), 1);
  assert.equal(v("crs_backup_stream_up"), 1);
  assert.equal(v("crs_backup_stream_proof_ok"), 1);
  assert.ok(Math.abs(v("crs_backup_stream_proof_timestamp_seconds")! - Date.now() / 1000) < 120);
  assert.ok(v("crs_backup_stream_lag_seconds")! < 5, `lag ${v("crs_backup_stream_lag_seconds")} s`);
  assert.ok(v("crs_backup_stream_lag_bytes")! >= 0 && v("crs_backup_stream_lag_bytes")! < 1_000_000, `lag ${v("crs_backup_stream_lag_bytes")} bytes`);
  assert.ok(v("crs_backup_stream_durable_offset")! > 0 && v("crs_backup_stream_durable_offset")! <= session.durableOffset!);
  const stats = await srv.services.catalog.streamStats(ID.source, 0);
  assert.ok(stats.bytes > 0);
  assert.ok(v("crs_backup_stream_stored_bytes")! > 0 && v("crs_backup_stream_stored_bytes")! <= stats.bytes);
  assert.equal(v("crs_backup_stream_gaps"), 0);
  assert.equal(v("crs_backup_stream_gap_seconds"), 0);
  assert.ok(v("crs_backup_stream_restorable_from_timestamp_seconds")! <= Date.now() / 1000);
});

test("a broken replay (one unit dropped by a test hook) fails the proof, names the first difference, and shows in /metrics and pitr status", async () => {
  const since = (await bases()).at(-1)!.takenAt;
  process.env.CRS_TEST_FLAGS = "stream-proof-drop-unit";
  let broken: StreamBase;
  try {
    broken = await provedBaseAfter(since);
  } finally {
    delete process.env.CRS_TEST_FLAGS;
  }
  assert.equal(broken.proof!.ok, false, broken.proof!.detail);
  assert.notEqual(broken.proof!.ran, false, broken.proof!.detail);
  assert.match(broken.proof!.detail, /gives digest [0-9a-f]{40}, the base .* has [0-9a-f]{40}/);
  assert.match(broken.proof!.detail, /first difference: db 0 key "(w:\d+|counter|list|m:\d+)"|the replay has \d+ key/);
  const m = await waitFor("proof_ok 0", async () => {
    const x = await scrape();
    return x.get("crs_backup_stream_proof_ok", { instance_id: ID.source }) === 0 ? x : undefined;
  }, 20_000, 300);
  assert.ok(m);
  const st = await cliAt(["pitr", "status", ID.source, "--output", "json"]);
  assert.equal(st.code, 0, st.out);
  const status = JSON.parse(st.out) as { lastProof: string; lastProofDetail: string; bases: Array<{ backupId: string; proof?: string }>; lagBytes?: number; retentionDays: number };
  const latest = status.bases.filter((b) => b.proof).at(-1)!;
  // The status may already show a newer (passing) proof: the broken base's own entry says FAILED either way.
  assert.equal(status.bases.find((b) => b.backupId === broken.backupId)?.proof, "FAILED", st.out);
  assert.ok(latest);
  assert.equal(status.retentionDays, 7);
  assert.equal(typeof status.lagBytes, "number", st.out);
  // The next proof, without the hook, passes again (the stream itself was complete all along).
  const next = await provedBaseAfter(broken.takenAt);
  assert.equal(next.proof!.ok, true, next.proof!.detail);
});

test("a restore to a second after a scheduled base (which lies inside a segment) is exact", async () => {
  // No new base while this runs (the schedule's option object is the session's own), so the base of the second
  // below is one taken while the writer ran: the restore replays units from inside a segment.
  const schedule = srv.services.streams.o.bases!;
  schedule.everyMs = 3_600_000;
  try {
    await srv.services.streams.session(ID.source)!.maybeBase(); // a base in progress ends first
    const last = (await bases()).at(-1)!;
    await waitFor("the stream to move past the last base", async () => (await srv.services.catalog.lastStreamSegment(ID.source, 0))!.endOffset > last.offset + 1000 || undefined, 20_000, 100);
    stopWriting = true;
    const writes = await writing!;
    assert.ok(writes > 100, `${writes} writes`);
    const expected = await digest(master);
    const sec = Math.floor(Date.now() / 1000) + 1;
    const named = await waitFor(`second ${sec} covered`, async () => (await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: sec })).BackupId || undefined, 20_000, 200);
    assert.equal(named, last.backupId);
    const segments = await srv.services.catalog.streamSegments(ID.source, 0);
    assert.ok(segments.some((x) => x.startOffset < last.offset && last.offset < x.endOffset) || segments.some((x) => x.startOffset === last.offset), "the base's offset is in the stored stream");
    const r = await cliAt(["restore", "--instance", ID.target, "--from", ID.source, "--at", tz.format(sec * 1000)]);
    assert.equal(r.code, 0, r.out);
    const units = Number(/\+ (\d+) unit\(s\)/.exec(r.out)?.[1]);
    assert.ok(units > 0, r.out);
    assert.equal(await digest(target), expected, r.out);
  } finally {
    schedule.everyMs = BASE_EVERY_MS;
  }
});

test("retention: bases older than the anchor retired, segments before it deleted (row, then blob), an unlisted blob swept; DescribeSecondLevelBackupInfo agrees", async () => {
  const { catalog, store, backups, logger, clock } = srv.services;
  // Default retention (7 days) reclaims nothing and keeps the bases from expiring.
  const tick = await srv.services.scheduler.tick();
  const mine = tick.streams!.find((x) => x.instanceId === ID.source)!;
  assert.deepEqual([mine.basesRetired.length, mine.segmentsDeleted], [0, 0]);
  for (const b of await bases()) assert.ok((await catalog.backup(b.backupId))!.expireTime! >= clock.now() + 86_400_000 - 60_000);
  const before = await bases();
  assert.ok(before.length >= 4, `${before.length} bases`);
  const anchor = before[2]!;
  const segmentsBefore = await catalog.streamSegments(ID.source, 0);
  // An unlisted blob left by a crash between a segment's blob and its row (at the very start of the stream).
  const orphan = `streams/${ID.source}/shard-0/${"1".padStart(16, "0")}-2.seg.gz`;
  const w = store.createWriter(orphan, { compress: true });
  w.write(Buffer.from("orphan"));
  await w.commit();
  assert.ok(await store.stat(orphan));
  // A retention whose horizon falls just after the third base: it is the anchor, the first two go.
  const config = (await catalog.streamConfig(ID.source))!;
  const now = clock.now();
  const r = await reclaimStream({ catalog, store, backups, logger }, config, now, now - anchor.takenAt - 1);
  assert.deepEqual(r.basesRetired.sort(), [before[0]!.backupId, before[1]!.backupId].sort());
  assert.ok(r.segmentsDeleted > 0 && r.bytesReclaimed > 0, JSON.stringify(r));
  assert.equal(r.blobsSwept, 1);
  assert.equal(await store.stat(orphan), undefined);
  for (const id of r.basesRetired) {
    const b = (await catalog.backup(id))!;
    assert.equal(b.status, -1);
    assert.deepEqual(b.files, []);
  }
  // (A newer base may have been taken meanwhile: the schedule goes on.)
  assert.deepEqual((await bases()).filter((b) => b.takenAt <= before.at(-1)!.takenAt).map((b) => b.backupId), before.slice(2).map((b) => b.backupId));
  // Every listed segment has its blob; every deleted one's blob is gone.
  const after = await catalog.streamSegments(ID.source, 0);
  assert.equal(after.length, segmentsBefore.length - r.segmentsDeleted);
  for (const s of after) if (s.key) assert.ok(await store.stat(s.key), `listed segment ${s.key} has its blob`);
  const kept = new Set(after.map((s) => s.segmentId));
  for (const s of segmentsBefore) if (!kept.has(s.segmentId) && s.key) assert.equal(await store.stat(s.key), undefined, `deleted segment ${s.key}'s blob is gone`);
  // The API: a second before the anchor has no backup data; one after it starts from the anchor.
  const old = Math.floor(before[0]!.takenAt / 1000) + 2;
  const gone = await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: old });
  assert.equal(gone.BackupId, "");
  assert.ok((gone.MissingTimestamps ?? []).some((g) => g.StartTimeStamp! <= old && old <= g.EndTimeStamp!), JSON.stringify(gone.MissingTimestamps));
  const fresh = Math.floor(anchor.takenAt / 1000) + 2;
  if ((before[3]!.takenAt) > (fresh + 1) * 1000) {
    assert.equal((await c.DescribeSecondLevelBackupInfo({ InstanceId: ID.source, BackupTimestamp: fresh })).BackupId, anchor.backupId);
  }
  // The same pass again finds nothing more to do.
  const again = await reclaimStream({ catalog, store, backups, logger }, config, now, now - anchor.takenAt - 1);
  assert.deepEqual([again.basesRetired.length, again.segmentsDeleted, again.blobsSwept], [0, 0, 0]);
});
