// What a first-time user meets: the README's quick start run as printed (fixture + SDK snippet), the generated
// key surviving a first start that could not listen, `instance add` against a Redis that wants a password, and
// a relative ./data that quietly became a new catalogue when a command ran from another folder.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { startRedis } from "./support/redis";
import { expectSdkError } from "./support/server";
import { cleanEnv, cli, killServed, sdk, serve } from "./support/cli-process";

const ROOT = path.join(__dirname, "..", "..");
const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
const tmp = (name: string) => fs.mkdtempSync(path.join(os.tmpdir(), `crs-first-${name}-`));

after(killServed);

const lastLine = (text: string): string => text.split("\n").filter(Boolean).at(-1) ?? "";

test("the quick start runs as printed: examples/quickstart.json served, examples/quickstart.mjs run with node", async () => {
  const snippet = fs.readFileSync(path.join(ROOT, "examples", "quickstart.mjs"), "utf8");
  assert.ok(README.includes(`\`\`\`js\n${snippet}\`\`\``), "the README shows examples/quickstart.mjs verbatim");
  assert.match(README, /npx crs-backup serve --seed examples\/quickstart\.json/);
  assert.match(README, /node examples\/quickstart\.mjs/);

  const server = await serve(["--data", path.join(tmp("quick"), "data"), "--seed", path.join(ROOT, "examples", "quickstart.json")], cleanEnv());
  assert.doesNotMatch(server.out(), /SecretKey/, "the fixture's key is the account's: nothing is generated");
  const run = spawnSync(process.execPath, [path.join(ROOT, "examples", "quickstart.mjs")], {
    encoding: "utf8", cwd: ROOT, env: cleanEnv({ CRS_ENDPOINT: `127.0.0.1:${server.port}` }), timeout: 30_000,
  });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, [
    "instance crs-5a4py64p (demo)",
    "2 kept backup(s):",
    "  5d8b7c1e-b012-11e8-941e-4846fb00c75d  2018-09-05 00:10:00  1310720 bytes  nightly",
    "  2e4127f8-affe-11e8-941e-4846fb00c75d  2018-09-04 12:51:21  1048576 bytes  before the upgrade",
    "",
  ].join("\n"));
  // Wrong key: a clear SDK error on stderr and exit code 1.
  const wrong = spawnSync(process.execPath, [path.join(ROOT, "examples", "quickstart.mjs")], {
    encoding: "utf8", cwd: ROOT, env: cleanEnv({ CRS_ENDPOINT: `127.0.0.1:${server.port}`, CRS_SECRET_ID: "AKIDquickstart00000000000000000001", CRS_SECRET_KEY: "wrong" }), timeout: 30_000,
  });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /^AuthFailure\.SignatureFailure: /);
  assert.equal(await server.stop(), 0);
});

test("the README's fixture example loads, and its key is one the SDK can send (ASCII)", () => {
  const section = README.slice(README.indexOf("## Fixtures"));
  const json = /```json\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(json, "the Fixtures section has a JSON example");
  const doc = JSON.parse(json) as { Credentials: Array<{ SecretId: string; SecretKey: string }> };
  for (const c of doc.Credentials) assert.match(`${c.SecretId}${c.SecretKey}`, /^[\x21-\x7e]+$/);
  const dir = tmp("fixture");
  fs.writeFileSync(path.join(dir, "fixture.json"), json);
  const r = cli(["seed", path.join(dir, "fixture.json"), "--data", path.join(dir, "data")], cleanEnv());
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /loaded 1 credential\(s\), 1 instance\(s\), 1 backup\(s\)/);
});

test("a first start on a taken port keeps the generated key for the next start; CRS_SECRET_* later say what became of it", async () => {
  const data = path.join(tmp("port"), "data");
  const blocker = net.createServer();
  const port = await new Promise<number>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as net.AddressInfo).port)));
  const failed = cli(["serve", "--data", data, "--port", String(port)], cleanEnv(), { timeoutMs: 20_000 });
  blocker.close();
  assert.equal(failed.status, 1);
  assert.equal(failed.stderr, `crs-backup: cannot listen on 127.0.0.1:${port}: the port is already in use (another server?); stop it, or choose another port with --port N (CRS_PORT)\n`);
  assert.doesNotMatch(failed.stdout + failed.stderr, /SecretKey/, "not printed by a start that did not listen");

  const second = await serve(["--data", data], cleanEnv());
  const secretId = /SecretId:\s+(AKID\w+)/.exec(second.stdout())?.[1];
  const secretKey = /SecretKey:\s+(\w+)/.exec(second.stdout())?.[1];
  assert.ok(secretId && secretKey, second.out());
  assert.equal((await sdk(second.port, secretId, secretKey).DescribeInstances({})).TotalCount, 0);
  assert.equal(await second.stop(), 0);
  const third = await serve(["--data", data], cleanEnv());
  assert.doesNotMatch(third.out(), /SecretKey/, "shown once it was shown by a start that listened");
  assert.equal(await third.stop(), 0);

  // The operator now chooses a key: the generated one is named, with how to revoke it.
  const env = cleanEnv({ CRS_SECRET_ID: "AKIDchosen", CRS_SECRET_KEY: "chosenkey" });
  const fourth = await serve(["--data", data], env);
  assert.ok(fourth.stdout().includes(`CRS_SECRET_ID is set, so AKIDchosen is a key of account 1300000000; the key generated earlier (${secretId}) still works too — revoke it with: crs-backup key revoke ${secretId}`), fourth.out());
  assert.equal((await sdk(fourth.port, secretId, secretKey).DescribeInstances({})).TotalCount, 0);
  assert.equal((await sdk(fourth.port, "AKIDchosen", "chosenkey").DescribeInstances({})).TotalCount, 0);
  assert.equal(await fourth.stop(), 0);
  const revoked = cli(["key", "revoke", secretId, "--data", data], env);
  assert.equal(revoked.status, 0, revoked.stderr);
  const fifth = await serve(["--data", data], env);
  assert.doesNotMatch(fifth.stdout(), /generated earlier/);
  await expectSdkError(sdk(fifth.port, secretId, secretKey).DescribeInstances({}), "AuthFailure.SecretIdNotFound");
  assert.equal(await fifth.stop(), 0);
});

test("instance add against a Redis that wants a password says how to give it", async () => {
  const redis = await startRedis(["--requirepass", "s3cret"], { password: "s3cret" });
  try {
    const data = path.join(tmp("auth"), "data");
    const url = `redis://127.0.0.1:${redis.port}`;
    const none = cli(["instance", "add", "--redis", url, "--data", data], cleanEnv());
    assert.equal(none.status, 1);
    assert.equal(lastLine(none.stderr), `crs-backup: ${url} requires a password (NOAUTH Authentication required.): give it in CRS_REDIS_PASSWORD, or in the URL as redis://:PASSWORD@host:port (redis://USER:PASSWORD@host:port for an ACL user)`);
    const wrong = cli(["instance", "add", "--redis", url, "--data", data], cleanEnv({ CRS_REDIS_PASSWORD: "nope" }));
    assert.equal(wrong.status, 1);
    assert.match(lastLine(wrong.stderr), /^crs-backup: redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the password \(.*WRONGPASS .*\): check CRS_REDIS_PASSWORD or the URL's user and password$/);
    assert.doesNotMatch(wrong.stderr, /nope/);
    const ok = cli(["instance", "add", "--redis", url, "--data", data], cleanEnv({ CRS_REDIS_PASSWORD: "s3cret" }));
    assert.equal(ok.status, 0, ok.stderr);
  } finally {
    redis.kill();
  }
});

test("a relative ./data that does not exist yet: every command says which catalogue it created", async () => {
  const here = tmp("cwd");
  const elsewhere = tmp("elsewhere");
  const created = (dir: string) => `crs-backup: created a new, empty catalogue at ${path.join(dir, "data", "catalog.db")} (data directory ${path.join(dir, "data")})\n`;
  const first = cli(["instance", "list"], cleanEnv(), { cwd: here });
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stderr, created(here));
  assert.equal(cli(["instance", "list"], cleanEnv(), { cwd: here }).stderr, "", "said once, when it was created");
  // The same command from another folder: not silently a second, empty catalogue.
  assert.equal(cli(["key", "list"], cleanEnv(), { cwd: elsewhere }).stderr, created(elsewhere));

  const fresh = tmp("serve");
  const server = await serve([], cleanEnv({ CRS_SECRET_ID: "AKIDcwd", CRS_SECRET_KEY: "cwdkey" }), { cwd: fresh });
  const line = server.stdout().split("\n").find((l) => l.includes("created a new, empty catalogue"));
  assert.ok(line, server.out());
  assert.deepEqual((({ level, catalogue, dataDir }) => ({ level, catalogue, dataDir }))(JSON.parse(line) as Record<string, unknown>),
    { level: "warn", catalogue: path.join(fresh, "data", "catalog.db"), dataDir: path.join(fresh, "data") });
  assert.equal(await server.stop(), 0);
  const again = await serve([], cleanEnv({ CRS_SECRET_ID: "AKIDcwd", CRS_SECRET_KEY: "cwdkey" }), { cwd: fresh });
  assert.doesNotMatch(again.stdout(), /created a new, empty catalogue/);
  assert.equal(await again.stop(), 0);
});
