// The crs-backup command's settings and operator commands, as a user runs them (real processes): --version,
// precedence of flags > CRS_* environment > --config file (JSON and YAML) > defaults, errors that name the key
// or the source of a bad value (exit code 2), --output json of the read commands, keys added, rotated and
// revoked against a running server, --log-level, TLS flags, and `backup download`.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, ChildProcess, SpawnSyncReturns } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { expectSdkError, RedisClient, waitForTask } from "./support/server";
import { freePort, RedisProcess, redisCheckRdb, startRedis, waitFor } from "./support/redis";
import { makePki } from "./support/tls";
import { resolveConfig } from "../src/cli/settings";

const ROOT = path.join(__dirname, "..", "..");
const CLI = path.join(__dirname, "..", "src", "cli", "main.js");
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version;

/** The environment without any CRS_* variable of the machine running the tests. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CRS_")) e[k] = v;
  return { ...e, ...extra };
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "crs-cfg-"));
}

function cli(args: string[], extraEnv: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: env(extraEnv), timeout: 60_000 });
}

function json<T>(r: SpawnSyncReturns<string>): T {
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

function httpGet(port: number, p: string): Promise<number> {
  return new Promise((resolve) => {
    http.get({ host: "127.0.0.1", port, path: p }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    }).on("error", () => resolve(0));
  });
}

interface Served {
  proc: ChildProcess;
  out: () => string;
  stop(): Promise<number | null>;
}

/** Starts `serve` and waits until /readyz answers 200 on `port` (as a CI script would). */
async function serve(args: string[], port: number, extraEnv: Record<string, string> = {}): Promise<Served> {
  const proc = spawn(process.execPath, [CLI, "serve", ...args], { env: env(extraEnv), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  let exited = false;
  void exit.then(() => (exited = true));
  await waitFor(`the server to be ready on ${port}`, async () => {
    if (exited) throw new Error(`serve exited: ${out}`);
    return (await httpGet(port, "/readyz")) === 200 ? true : undefined;
  }, 15_000, 50);
  return {
    proc,
    out: () => out,
    stop: async () => {
      proc.kill("SIGTERM");
      return exit;
    },
  };
}

const ACCOUNT_KEY = { CRS_SECRET_ID: "AKIDclisettings0000000000000000001", CRS_SECRET_KEY: "clisettingssecret000000000000001" };

test("--version prints package.json's version; --help of a command lists its options", () => {
  for (const flag of ["--version", "-V"]) {
    const r = cli([flag]);
    assert.equal(r.status, 0);
    assert.equal(r.stdout.trim(), VERSION);
  }
  const help = cli(["backup", "download", "--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--out <dir>/);
  assert.match(cli(["serve", "--help"]).stdout, /--tls-cert <file>[\s\S]*CRS_TLS_CERT[\s\S]*--metrics-allow <list>/);
});

test("precedence: flags > CRS_* environment > --config file (JSON and YAML) > defaults, seen through a read command", () => {
  const base = tmp();
  const dirs = { file: path.join(base, "from-file"), env: path.join(base, "from-env"), flag: path.join(base, "from-flag"), def: path.join(base, "cwd") };
  // One instance per data directory, so `instance list` says which directory was used.
  const ids = { file: "crs-file0001", env: "crs-envv0001", flag: "crs-flag0001", def: "crs-dflt0001" };
  for (const k of ["file", "env", "flag"] as const) {
    assert.equal(cli(["instance", "add", "--no-check", "--id", ids[k], "--redis", "redis://127.0.0.1:1", "--data", dirs[k]]).status, 0);
  }
  const jsonFile = path.join(base, "crs.json");
  fs.writeFileSync(jsonFile, JSON.stringify({ data: dirs.file, tz: "UTC" }));
  const yamlFile = path.join(base, "crs.yaml");
  fs.writeFileSync(yamlFile, `# a YAML config\ndata: ${dirs.file}\nlogLevel: warn\n`);
  const listed = (r: SpawnSyncReturns<string>) => json<Array<{ instance: string }>>(r).map((i) => i.instance);
  for (const file of [jsonFile, yamlFile]) {
    assert.deepEqual(listed(cli(["instance", "list", "--output", "json", "--config", file])), [ids.file], `${file} alone`);
    assert.deepEqual(listed(cli(["instance", "list", "--output", "json"], { CRS_CONFIG: file })), [ids.file], "CRS_CONFIG names the file too");
    assert.deepEqual(listed(cli(["instance", "list", "--output", "json", "--config", file], { CRS_DATA: dirs.env })), [ids.env], "the environment beats the file");
    assert.deepEqual(listed(cli(["instance", "list", "--output", "json", "--config", file, "--data", dirs.flag], { CRS_DATA: dirs.env })), [ids.flag], "a flag beats both");
  }
  // Defaults: ./data in the working directory.
  fs.mkdirSync(dirs.def);
  const r = spawnSync(process.execPath, [CLI, "instance", "add", "--no-check", "--id", ids.def, "--redis", "redis://127.0.0.1:1"], { cwd: dirs.def, encoding: "utf8", env: env() });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(dirs.def, "data", "catalog.db")), "the default data directory is ./data");
});

test("precedence seen through a running serve: the port it listens on and its rate limit", async () => {
  const base = tmp();
  const [filePort, envPort, flagPort] = [await freePort(), await freePort(), await freePort()];
  const file = path.join(base, "serve.yaml");
  fs.writeFileSync(file, `port: ${filePort}\nrateLimit: 1\nautoBackups: off\ndata: ${path.join(base, "data")}\n`);
  const client = (port: number) => new RedisClient({ credential: { secretId: ACCOUNT_KEY.CRS_SECRET_ID, secretKey: ACCOUNT_KEY.CRS_SECRET_KEY }, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${port}`, protocol: "http://" } } });
  const burst = async (port: number) => {
    const r = await Promise.allSettled([0, 1, 2].map(() => client(port).DescribeInstances({})));
    return r.filter((x) => x.status === "rejected" && (x.reason as { code?: string }).code === "RequestLimitExceeded").length;
  };

  let s = await serve(["--config", file], filePort, ACCOUNT_KEY);
  assert.ok((await burst(filePort)) >= 1, "the file's rate limit of 1 per second is in force");
  assert.equal(await s.stop(), 0);

  s = await serve(["--config", file], envPort, { ...ACCOUNT_KEY, CRS_PORT: String(envPort), CRS_RATE_LIMIT: "0" });
  assert.equal(await burst(envPort), 0, "CRS_RATE_LIMIT=0 beats the file");
  assert.equal(await httpGet(filePort, "/healthz"), 0, "nothing on the file's port");
  assert.equal(await s.stop(), 0);

  s = await serve(["--config", file, "--port", String(flagPort), "--log-level", "warn"], flagPort, { ...ACCOUNT_KEY, CRS_PORT: String(envPort) });
  await client(flagPort).DescribeInstances({});
  assert.equal(await httpGet(envPort, "/healthz"), 0, "nothing on the environment's port");
  assert.equal(await s.stop(), 0);
  assert.doesNotMatch(s.out(), /"msg":"request"|listening on/, "--log-level warn drops info lines");
});

test("configuration errors: exit code 2, naming the unknown key or where a bad value came from", () => {
  const base = tmp();
  const bad = path.join(base, "bad.yaml");
  fs.writeFileSync(bad, "port: 9000\nprot: 9001\n");
  let r = cli(["serve", "--config", bad]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad\.yaml: unknown key "prot"/);
  const badJson = path.join(base, "bad.json");
  fs.writeFileSync(badJson, JSON.stringify({ port: "ninety" }));
  r = cli(["serve", "--config", badJson]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad\.json: port: must be a whole number from 0 to 65535, got "ninety"/);
  r = cli(["serve", "--port", "70000"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--port: must be a whole number/);
  r = cli(["serve"], { CRS_PORT: "-1" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /CRS_PORT: must be a whole number/);
  r = cli(["serve", "--auto-backups", "sometimes"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--auto-backups: must be on or off/);
  r = cli(["serve", "--metrics-allow", "10.0.0.0/8,intranet"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--metrics-allow: "intranet" is not an IPv4\/IPv6 address or CIDR block/);
  r = cli(["serve", "--tls-cert", path.join(base, "missing.pem"), "--tls-key", path.join(base, "missing.key")]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--tls-cert: cannot read .*missing\.pem \(ENOENT\)/);
  fs.writeFileSync(path.join(base, "cert.pem"), "not a certificate");
  r = cli(["serve", "--tls-cert", path.join(base, "cert.pem")]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--tls-cert \(CRS_TLS_CERT\) needs --tls-key/);
  r = cli(["serve", "--min-free-space", "lots"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--min-free-space: must be a size in bytes, or with a unit KB, MB, GB or TB \(binary: 1MB = 1048576 bytes\), got "lots"/);
  r = cli(["serve", "--bogus"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown option '--bogus'/);
});

test("sizes: --min-free-space and --disk-reserve in bytes or binary units, from a flag, the environment or a config file", () => {
  assert.deepEqual([resolveConfig({}, env(), "serve").minFreeBytes, resolveConfig({}, env(), "serve").diskReserveBytes], [64 << 20, 4 << 20]);
  assert.equal(resolveConfig({ minFreeSpace: "1048576" }, env(), "serve").minFreeBytes, 1 << 20);
  assert.equal(resolveConfig({ minFreeSpace: "2GiB" }, env(), "all").minFreeBytes, 2 * 2 ** 30);
  assert.equal(resolveConfig({}, env({ CRS_MIN_FREE_SPACE: "512KB" }), "serve").minFreeBytes, 512 << 10);
  const file = path.join(tmp(), "sizes.yaml");
  fs.writeFileSync(file, "minFreeSpace: 100M\ndiskReserve: 0\n");
  const fromFile = resolveConfig({ config: file }, env(), "serve");
  assert.deepEqual([fromFile.minFreeBytes, fromFile.diskReserveBytes], [100 << 20, 0]);
  assert.throws(() => resolveConfig({ diskReserve: "-1MB" }, env(), "serve"), /--disk-reserve: must be a size in bytes/);
});

test("serve --tls-cert/--tls-key: an HTTPS server; a certificate that does not parse stops the start (exit 1)", async () => {
  const pki = makePki();
  const base = tmp();
  const port = await freePort();
  const proc = spawn(process.execPath, [CLI, "serve", "--data", path.join(base, "data"), "--port", String(port), "--tls-cert", pki.cert, "--tls-key", pki.key], { env: env(ACCOUNT_KEY), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  try {
    await waitFor("listening on https", () => (out.includes(`listening on https://127.0.0.1:${port}`) ? true : undefined), 15_000);
    const https = await import("node:https");
    const status = await new Promise<number>((resolve, reject) => https.get({ host: "127.0.0.1", port, path: "/readyz", ca: pki.ca }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on("error", reject));
    assert.equal(status, 200);
  } finally {
    proc.kill("SIGTERM");
    assert.equal(await exit, 0);
  }
  fs.writeFileSync(path.join(base, "cert.pem"), "not a certificate");
  const r = cli(["serve", "--data", path.join(base, "data2"), "--port", "0", "--tls-cert", path.join(base, "cert.pem"), "--tls-key", pki.key]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /the TLS certificate .*cert\.pem and key .* cannot be used/);
});

describe("operator commands against a running server", () => {
  let redis: RedisProcess;
  let data: string;
  let port: number;
  let server: Served;
  const ID = "crs-ops00001";
  const sdk = (secretId: string, secretKey: string) => new RedisClient({ credential: { secretId, secretKey }, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${port}`, protocol: "http://" } } });
  const run = (args: string[]) => cli([...args, "--data", data]);

  before(async () => {
    redis = await startRedis(["--repl-diskless-sync-delay", "0"]);
    const c = await redis.connect();
    for (let i = 0; i < 200; i++) await c.command("SET", `key:${i}`, crypto.randomBytes(24).toString("hex"));
    c.close();
    data = path.join(tmp(), "data");
    assert.equal(run(["instance", "add", "--id", ID, "--name", "ops", "--redis", `redis://127.0.0.1:${redis.port}`]).status, 0);
    port = await freePort();
    server = await serve(["--data", data, "--port", String(port), "--auto-backups", "off", "--rate-limit", "0"], port, ACCOUNT_KEY);
  });

  after(async () => {
    await server?.stop();
    redis?.kill();
  });

  test("key add, rotate and revoke take effect on the running server at once", async () => {
    const [added] = json<Array<{ secretId: string; secretKey: string; account: string }>>(run(["key", "add", "--output", "json"]));
    assert.match(added!.secretId, /^AKID\w{32}$/);
    assert.equal((await sdk(added!.secretId, added!.secretKey).DescribeInstances({})).TotalCount, 1);
    const keys = json<Array<{ secretId: string; account: string; temporary: string }>>(run(["key", "list", "--output", "json"]));
    assert.ok(keys.some((k) => k.secretId === added!.secretId && k.account === "1300000000"));
    assert.ok(!JSON.stringify(keys).includes(added!.secretKey), "key list never shows secrets");

    const [rotated] = json<Array<{ secretId: string; secretKey: string; replaces: string }>>(run(["key", "rotate", added!.secretId, "--output", "json"]));
    assert.equal(rotated!.replaces, added!.secretId);
    assert.equal((await sdk(rotated!.secretId, rotated!.secretKey).DescribeInstances({})).TotalCount, 1);
    await expectSdkError(sdk(added!.secretId, added!.secretKey).DescribeInstances({}), "AuthFailure.SecretIdNotFound");

    const revoked = run(["key", "revoke", rotated!.secretId]);
    assert.equal(revoked.status, 0, revoked.stderr);
    assert.match(revoked.stdout, /revoked AKID/);
    await expectSdkError(sdk(rotated!.secretId, rotated!.secretKey).DescribeInstances({}), "AuthFailure.SecretIdNotFound");
    const again = run(["key", "revoke", rotated!.secretId]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /no key AKID/);
  });

  test("--output json of instance list, backup list and task list; backup download writes verified RDB files", async () => {
    const instances = json<Array<{ instance: string; name: string; redis: string }>>(run(["instance", "list", "--output", "json"]));
    assert.deepEqual(instances.map((i) => [i.instance, i.name]), [[ID, "ops"]]);
    // A backup through the API, taken by the server.
    const c = sdk(ACCOUNT_KEY.CRS_SECRET_ID, ACCOUNT_KEY.CRS_SECRET_KEY);
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID, Remark: "for download" });
    const done = await waitForTask(c, TaskId!, 30_000);
    assert.equal(done.Status, "succeed", done.TaskMessage);
    const backups = json<Array<{ backupId: string; status: number; size: number; remark: string; shards: number }>>(run(["backup", "list", ID, "--output", "json"]));
    assert.equal(backups.length, 1);
    assert.equal(backups[0]!.status, 2);
    assert.equal(backups[0]!.remark, "for download");
    assert.equal(typeof backups[0]!.size, "number");
    const tasks = json<Array<{ taskId: number; type: string; status: string; backupId: string }>>(run(["task", "list", "--instance", ID, "--output", "json"]));
    assert.deepEqual(tasks.map((t) => [t.taskId, t.type, t.status, t.backupId]), [[TaskId, "FLOW_BACKUPINSTANCE", "succeed", backups[0]!.backupId]]);

    const out = path.join(tmp(), "out");
    const dl = run(["backup", "download", backups[0]!.backupId, "--out", out]);
    assert.equal(dl.status, 0, dl.stderr);
    const file = dl.stdout.trim();
    assert.equal(file, path.join(out, `${ID}-${backups[0]!.backupId}-shard-0.rdb`));
    assert.equal(fs.statSync(file).size, backups[0]!.size);
    assert.ok(redisCheckRdb(file).ok);
    assert.match(dl.stderr, /1 file\(s\), sha256 verified/);
    assert.deepEqual(fs.readdirSync(out), [path.basename(file)], "no partial file left");
    // The export ran (here or on the server) and the backup is now Status 4.
    assert.equal(json<Array<{ status: number }>>(run(["backup", "list", ID, "--output", "json"]))[0]!.status, 4);
    // A second download needs no export.
    const again = run(["backup", "download", backups[0]!.backupId, "--out", out]);
    assert.equal(again.status, 0, again.stderr);
    const missing = run(["backup", "download", "00000000-0000-0000-0000-000000000000", "--out", out]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no backup 00000000/);
  });
});
