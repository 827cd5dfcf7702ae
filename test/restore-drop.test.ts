// The explicit switch for what an older target cannot hold (issue 18): a Redis 8.6 data set with hash-field TTLs
// (HSETEX, HPEXPIRE) and a stream with XADD IDMP state, restored into Redis 7.2. Without the options the restore
// task refuses exactly those keys and its message names the options (RestoreInstance, which has no such
// parameter, and `crs-backup restore` alike); `crs-backup restore --drop-field-ttls --drop-stream-idmp` restores
// them, the message and the summary report what was dropped, and the rest of the data is value-equal.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { RespValue } from "../src/redis/client/resp";
import { assertSameData, send } from "./support/dataset";
import { CLI, cleanEnv } from "./support/cli-process";
import { RedisProcess } from "./support/redis";
import { KEY, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";
import { missing, startVersion, version } from "./support/versions";

const skip = missing(version("8.6")) ?? missing(version("7.2"));
const HOUR = 3_600_000;
const REFUSED = ["h:exp", "h:setex", "st:idmp"];

let source: RedisProcess;
let target: RedisProcess;
let data: string;
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args, "--data", data], { encoding: "utf8", env: cleanEnv(), timeout: 60_000 });

async function exists(...keys: string[]): Promise<number> {
  return Number((await send(target.endpoint, [["EXISTS", ...keys]]))[0]);
}

describe("restoring what the target cannot hold: refused, or dropped with an explicit option", { skip }, () => {
  before(async () => {
    [source, target] = await Promise.all([startVersion(version("8.6")), startVersion(version("7.2"))]);
    await send(source.endpoint, [
      ["SET", "s:plain", "v"], ["SET", "s:ttl", "w", "PX", 2 * HOUR], ["RPUSH", "l", "a", "b", "c"], ["SADD", "set", "x", "y"], ["ZADD", "z", 1, "a", 2.5, "b"],
      ["HSET", "h:plain", "a", 1, "b", 2],
      // 4 field TTLs on 2 keys
      ["HSETEX", "h:setex", "PX", HOUR, "FIELDS", 2, "s1", "x", "s2", "y"], ["HSET", "h:setex", "plain", "z"],
      ["HSET", "h:exp", "a", 1, "b", 2, "c", 3], ["HPEXPIRE", "h:exp", HOUR, "FIELDS", 2, "a", "b"],
      // a stream with IDMP state (one producer, one duplicate); no group, so XINFO GROUPS compares across versions
      ["XADD", "st:idmp", "*", "first", "0"], ["XCFGSET", "st:idmp", "IDMP-DURATION", 300, "IDMP-MAXSIZE", 50],
      ["XADD", "st:idmp", "IDMP", "p1", "i1", "*", "a", 1], ["XADD", "st:idmp", "IDMP", "p1", "i1", "*", "a", 2], ["XADD", "st:plain", "*", "k", "v"],
    ]);
    data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-rdrop-")), "data");
  });

  after(() => {
    source?.kill();
    target?.kill();
    if (data) fs.rmSync(path.dirname(data), { recursive: true, force: true });
  });

  test("RestoreInstance (no such parameter): the three keys refused precisely, the message names the options", async () => {
    const ids = { src: "crs-rdrop001", dst: "crs-rdrop002" };
    const srv: TestServer = await startTestServer({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
      Instances: [
        { InstanceId: ids.src, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${source.port}` },
        { InstanceId: ids.dst, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${target.port}` },
      ],
    }, { rateLimit: 0 });
    try {
      const c: SdkClient = srv.client({ language: "en-US" });
      const taken = await waitForTask(c, (await c.ManualBackupInstance({ InstanceId: ids.src })).TaskId!);
      assert.equal(taken.Status, "succeed", taken.TaskMessage);
      const { BackupSet } = await c.DescribeInstanceBackups({ InstanceId: ids.src });
      await send(target.endpoint, [["FLUSHALL"]]);
      const t = await waitForTask(c, (await c.RestoreInstance({ InstanceId: ids.dst, BackupId: BackupSet![0]!.BackupId! })).TaskId!);
      assert.equal(t.Status, "failed");
      assert.match(t.TaskMessage!, /commands \(.*\): 7 written, 0 skipped, 3 failed/);
      assert.match(t.TaskMessage!, /2 key\(s\) have hash field TTLs the target cannot hold \(--drop-field-ttls restores their fields without expiry\); 1 stream\(s\) have XADD IDMP state the target cannot hold \(--drop-stream-idmp restores them without it\): run `crs-backup restore --drop-field-ttls --drop-stream-idmp` to restore them anyway \(RestoreInstance has no such parameter\)/);
      // the first failure's own reason names its option too
      assert.match(t.TaskMessage!, /first: "(h:exp|h:setex|st:idmp)": .*cannot be kept on a target with RDB version 11; restore to Redis (7\.4|8\.6)\+.* or allow dropping (field TTLs|the IDMP state) \(`crs-backup restore --drop-(field-ttls|stream-idmp)`/);
      assert.equal(await exists(...REFUSED), 0, "no refused key is left half-written");
      assert.equal(await exists("s:plain", "h:plain", "st:plain"), 3);
    } finally {
      await srv.close();
    }
  });

  test("crs-backup restore: refused without the options; with them restored, the drops reported, the data value-equal", async () => {
    for (const [id, p] of [["crs-rdrop011", source], ["crs-rdrop012", target]] as const) {
      const added = cli("instance", "add", "--id", id, "--redis", `redis://127.0.0.1:${p.port}`);
      assert.equal(added.status, 0, added.stderr);
    }
    const taken = cli("backup", "crs-rdrop011");
    assert.equal(taken.status, 0, taken.stderr);
    const backupId = taken.stdout.trim();

    await send(target.endpoint, [["FLUSHALL"]]);
    const refused = cli("restore", backupId, "--instance", "crs-rdrop012");
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /3 failed/);
    assert.match(refused.stderr, /run `crs-backup restore --drop-field-ttls --drop-stream-idmp` to restore them anyway/);
    assert.equal(await exists(...REFUSED), 0);

    // Both paths of the command restore: RESTORE payloads re-encoded for 7.2 (auto) and plain commands.
    for (const mode of ["auto", "commands"]) {
      await send(target.endpoint, [["FLUSHALL"]]);
      const r = cli("restore", backupId, "--instance", "crs-rdrop012", "--mode", mode, "--drop-field-ttls", "--drop-stream-idmp");
      assert.equal(r.status, 0, `${mode}: ${r.stderr}`);
      assert.match(r.stdout, /10 keys written, 0 skipped, 0 failed \(commands\)/, mode);
      assert.match(r.stdout, /dropped {6}dropped as asked: 4 hash field TTL\(s\) on 2 key\(s\) \(--drop-field-ttls: those fields never expire now\), the XADD IDMP state of 1 stream\(s\) \(--drop-stream-idmp: their deduplication starts afresh\)/, mode);
      // the restore's own check: key by key (field TTLs aside, which the target cannot hold)
      assert.match(r.stdout, /verification {1}verified/, mode);
      // and ours: every key's type, value and TTL equal to the source's
      assert.equal(await assertSameData(source.endpoint, target.endpoint), 10, mode);
      const ttl = (await send(source.endpoint, [["HPTTL", "h:setex", "FIELDS", 1, "s1"]]))[0] as RespValue[];
      assert.ok(Number(ttl[0]) > 0, "the source keeps its field TTLs");
    }
  });

  test("crs-backup export --format resp for 7.2: the same options, the drops counted on standard error", async () => {
    const file = path.join(path.dirname(data), "dump.rdb");
    await send(source.endpoint, [["SAVE"]]);
    const dir = String(((await send(source.endpoint, [["CONFIG", "GET", "dir"]]))[0] as RespValue[])[1]);
    fs.copyFileSync(path.join(dir, "dump.rdb"), file);
    const refused = spawnSync(process.execPath, [CLI, "export", file, "--format", "resp", "--out", `${file}.resp`], { encoding: "utf8", env: cleanEnv() });
    assert.match(refused.stderr, /3 key\(s\) cannot be written as commands for that version/);
    const ok = spawnSync(process.execPath, [CLI, "export", file, "--format", "resp", "--out", `${file}.resp`, "--drop-field-ttls", "--drop-stream-idmp"], { encoding: "utf8", env: cleanEnv() });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, /dropped as asked: 4 hash field TTL\(s\) on 2 key\(s\)/);
    assert.doesNotMatch(ok.stderr, /cannot be written/);
  });
});
