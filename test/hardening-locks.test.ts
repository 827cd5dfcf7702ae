// Who owns a data directory and its tasks. A `crs-backup backup` (CLI) running when a `serve` starts on the same
// data directory once had its task marked failed and its record deleted by that server's start-up recovery; a
// stale server.pid holding the PID of an unrelated live process once blocked start-up for good.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRedis, RedisProcess, waitFor } from "./support/redis";
import { send } from "./support/dataset";
import { CLI, cleanEnv, cli, killServed, sdk, seededDir, serve } from "./support/cli-process";

const ID = "AKIDlocks00000000000000000000000001";
const KEY = "lockssecret0000000000000000000000001";
const env = cleanEnv({ CRS_SECRET_ID: ID, CRS_SECRET_KEY: KEY });

let slow: RedisProcess;
const children: ChildProcess[] = [];

before(async () => {
  // 150 keys at 20 ms each: a backup of about 3 s.
  slow = await startRedis(["--repl-diskless-sync-delay", "0", "--rdb-key-save-delay", "20000"]);
  await send(slow.endpoint, Array.from({ length: 150 }, (_, i) => ["SET", `k${i}`, "x".repeat(2000)]));
});

after(() => {
  killServed();
  for (const c of children) c.kill("SIGKILL");
  slow?.kill();
});

function partials(dir: string): string[] {
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith(".partial")) : [];
}

function spooling(data: string): number {
  const dir = path.join(data, "spool");
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".spool")).length : 0;
}

test("a CLI backup running while serve starts on the same data directory succeeds and is listed", async () => {
  const { data, seed } = seededDir("crs-locks-", { Instances: [{ InstanceId: "crs-lockcli1", Region: "ap-guangzhou", Redis: `redis://127.0.0.1:${slow.port}` }] });
  // The instance is registered first (a seed through the CLI), then the CLI backs it up in its own process.
  const seeded = spawn(process.execPath, [CLI, "seed", seed, "--data", data], { env, stdio: "ignore" });
  assert.equal(await new Promise((r) => seeded.once("exit", r)), 0);
  const backup = spawn(process.execPath, [CLI, "backup", "crs-lockcli1", "--data", data], { env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(backup);
  let out = "";
  let err = "";
  backup.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  backup.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => backup.once("exit", r));
  // (to its spool file, --capture-mode spool, the default; or to the storage's partial file)
  await waitFor("the CLI's capture to write", () => partials(path.join(data, "files")).length + spooling(data) > 0 || undefined, 10_000);

  // A server starts meanwhile: its start-up recovery, sweeps and clean-ups must leave the CLI's work alone.
  const server = await serve(["--data", data], env);
  assert.equal(await exited, 0, `the CLI backup succeeded:\n${err}`);
  const backupId = out.trim();
  assert.match(backupId, /^[0-9a-f-]{36}$/);
  assert.doesNotMatch(server.stdout(), /recovered tasks interrupted|repaired backup states|removed partial files/);
  const client = sdk(server.port, ID, KEY);
  const listed = await client.DescribeInstanceBackups({ InstanceId: "crs-lockcli1" });
  assert.deepEqual(listed.BackupSet!.map((b) => [b.BackupId, b.Status]), [[backupId, 2]]);
  const tasks = await client.DescribeTaskList({ InstanceId: "crs-lockcli1" });
  assert.deepEqual(tasks.Tasks!.map((t) => t.Result), [2], "the CLI's task succeeded");
  assert.equal(await server.stop(), 0);
});

test("a stale server.pid naming a live, unrelated process does not block serve (old plain-PID and new forms)", async () => {
  const data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "crs-locks-")), "data");
  fs.mkdirSync(data, { recursive: true, mode: 0o700 });
  const unrelated = spawn("sleep", ["60"], { stdio: "ignore" });
  children.push(unrelated);
  const pidFile = path.join(data, "server.pid");
  const stat = fs.readFileSync(`/proc/${unrelated.pid}/stat`, "utf8");
  const realStart = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
  for (const form of [String(unrelated.pid), JSON.stringify({ pid: unrelated.pid, start: String(Number(realStart) + 12345) })]) {
    fs.writeFileSync(pidFile, form);
    const server = await serve(["--data", data], env);
    const held = JSON.parse(fs.readFileSync(pidFile, "utf8")) as { pid: number };
    assert.equal(held.pid, server.proc.pid, `server.pid (${form}) was taken over`);
    assert.equal(await server.stop(), 0, `stopped cleanly (signal ${server.signal()}):\n${server.out()}`);
    assert.ok(!fs.existsSync(pidFile), "released at shutdown");
  }
  unrelated.kill("SIGKILL");
  // But a bare PID that is a live server still holds the directory.
  const holder = await serve(["--data", data], env);
  fs.writeFileSync(pidFile, String(holder.proc.pid));
  const refused = cli(["serve", "--data", data, "--port", "0"], env, { timeoutMs: 15_000 });
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, new RegExp(`another crs-backup server \\(pid ${holder.proc.pid}\\) is using`));
  assert.equal(await holder.stop(), 0);
});
