// `crs-backup restore` with the options only the command line has: --mode, --db, --match, --type,
// --replace/--no-replace, and the summary it prints. A real process on its own data directory.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { RedisEndpoint, RespValue } from "../src/redis/client/resp";
import { send } from "./support/dataset";
import { RedisProcess, startRedis } from "./support/redis";

const CLI = path.join(__dirname, "..", "src", "cli", "main.js");
const DEBUG = ["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"];

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.CRS_SECRET_ID;
  delete env.CRS_SECRET_KEY;
  return env;
}

let data: string;
let source: RedisProcess;
let target: RedisProcess;
let backupId: string;
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args, "--data", data], { encoding: "utf8", env: cleanEnv(), timeout: 60_000 });

async function get(ep: RedisEndpoint, key: string, db = 0): Promise<string | null> {
  const [, v] = await send(ep, [["SELECT", db], ["GET", key]]);
  return v === null ? null : Buffer.isBuffer(v) ? v.toString() : String(v);
}

async function keys(ep: RedisEndpoint, pattern: string): Promise<string[]> {
  const [v] = await send(ep, [["KEYS", pattern]]);
  return (v as RespValue[]).map(String).sort();
}

before(async () => {
  data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-rcli-")), "data");
  [source, target] = await Promise.all([startRedis(DEBUG), startRedis(DEBUG)]);
  const writes: Array<Array<string | number>> = [];
  for (let i = 1; i <= 50; i++) writes.push(["SET", `user:${i}`, `backup-${i}`]);
  for (let i = 1; i <= 10; i++) writes.push(["HSET", `user:h:${i}`, "name", `n${i}`, "age", i]);
  for (let i = 1; i <= 20; i++) writes.push(["SET", `other:${i}`, `o${i}`]);
  writes.push(["SELECT", 2], ["SET", "user:db2", "in db 2"]);
  await send(source.endpoint, writes);
  await send(target.endpoint, [["SET", "user:1", "kept"], ["SET", "unrelated", "x"]]);
  for (const [id, p] of [["crs-rcli0001", source], ["crs-rcli0002", target]] as const) {
    const added = cli("instance", "add", "--id", id, "--redis", `redis://127.0.0.1:${p.port}`);
    assert.equal(added.status, 0, added.stderr);
  }
  const taken = cli("backup", "crs-rcli0001");
  assert.equal(taken.status, 0, taken.stderr);
  backupId = taken.stdout.trim();
});

after(() => {
  source?.kill();
  target?.kill();
});

describe("crs-backup restore", () => {
  test("--mode commands --match 'user:*' --no-replace: matching keys written, existing ones kept and counted", async () => {
    const r = cli("restore", backupId, "--instance", "crs-rcli0002", "--mode", "commands", "--match", "user:*", "--no-replace");
    assert.equal(r.status, 0, r.stderr);
    // 49 + 10 hashes + user:db2 written; user:1 existed; the 20 other:* keys not selected
    assert.match(r.stdout, new RegExp(`^restored ${backupId} into crs-rcli0002: 60 keys written, 1 skipped, 0 failed \\(commands\\)$`, "m"));
    assert.match(r.stdout, /^ {2}path {9}commands \(asked for\)$/m);
    assert.match(r.stdout, /^ {2}not selected 20$/m);
    assert.match(r.stdout, /^ {2}bytes {8}[\d.]+ (B|KB)$/m);
    assert.match(r.stdout, /^ {2}time {9}[\d.]+ s$/m);
    assert.match(r.stdout, /^ {2}verification not verified \(1 existing keys were kept, as asked\)$/m);
    assert.equal(await get(target.endpoint, "user:1"), "kept");
    assert.equal(await get(target.endpoint, "user:2"), "backup-2");
    assert.equal(await get(target.endpoint, "user:db2", 2), "in db 2");
    assert.deepEqual(await keys(target.endpoint, "other:*"), []);
    assert.equal(await get(target.endpoint, "unrelated"), "x", "keys the backup does not have stay");
  });

  test("--db 0 --type string --match 'other:*' (auto, replace): the command path, verified key by key", async () => {
    const r = cli("restore", backupId, "--instance", "crs-rcli0002", "--db", "0", "--type", "string", "--match", "other:*");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /: 20 keys written, 0 skipped, 0 failed \(commands\)$/m);
    assert.match(r.stdout, /^ {2}path {9}commands \(keys are selected \(--db\/--match\/--type\)\)$/m);
    assert.match(r.stdout, /^ {2}verification verified equal key by key \(20 keys; \d+ other keys on the target\)$/m);
    assert.equal((await keys(target.endpoint, "other:*")).length, 20);
  });

  test("--replace (the default): existing keys take the backup's value", async () => {
    const r = cli("restore", backupId, "--instance", "crs-rcli0002", "--mode", "commands", "--match", "user:*", "--type", "string,hash");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /: 61 keys written, 0 skipped, 0 failed \(commands\)$/m);
    assert.match(r.stdout, /^ {2}verification verified equal key by key \(61 keys; \d+ other keys on the target\)$/m);
    assert.equal(await get(target.endpoint, "user:1"), "backup-1");
  });

  test("impossible or malformed options are refused before anything is queued", () => {
    const repl = cli("restore", backupId, "--instance", "crs-rcli0002", "--mode", "replication", "--match", "user:*");
    assert.equal(repl.status, 2);
    assert.match(repl.stderr, /replication replaces the whole data set, but keys are selected/);
    const type = cli("restore", backupId, "--instance", "crs-rcli0002", "--type", "bogus");
    assert.equal(type.status, 2);
    assert.match(type.stderr, /--type takes string, list, set, zset, hash, stream, module, got "bogus"/);
    const mode = cli("restore", backupId, "--instance", "crs-rcli0002", "--mode", "fast");
    assert.equal(mode.status, 2);
    assert.match(mode.stderr, /--mode must be one of auto, replication, commands/);
    // nothing was locked or queued by the refusals: a plain restore still runs (replication, the whole set)
    const whole = cli("restore", backupId, "--instance", "crs-rcli0002");
    assert.equal(whole.status, 0, whole.stderr);
    assert.match(whole.stdout, /: 81 keys loaded \(replication\)$/m);
    assert.match(whole.stdout, /^ {2}verification verified equal \(digest [0-9a-f]{40}\)$/m);
  });
});
