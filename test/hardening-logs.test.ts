// Logs an operator can trust. A percent-encoded newline in `Action` once wrote a forged log line before any
// authentication (`action=RestoreInstance ...`); logs are now pino JSON, one object a line, whatever a caller
// sends. And secrets never reach them: Redis URLs with a password, secret keys, Authorization headers.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createLogger, memoryDestination } from "../src/log";
import { freePort, waitFor } from "./support/redis";
import { rawExchange } from "./support/gateway";
import { signV1, signV3 } from "./support/sign";
import { rawRequest, waitForTask } from "./support/server";
import { cleanEnv, jsonLines, killServed, sdk, serve } from "./support/cli-process";

const ID = "AKIDlogs000000000000000000000000001";
const KEY = "LogsSecretKeyNeverLogged0000000001";
const REDIS_PASSWORD = "Sup3rSecretRedisPw";

after(killServed);

/** The forged line: a newline, then what would pass for a request line of another action in a text log. */
const FORGED = "X\n2026-11-28T00:00:00Z action=RestoreInstance account=1300000000 code=OK ms=1";

test("a newline in Action (form body, query string, X-TC-Action, signed or not) never forges a log line", async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "crs-logs-"));
  const seed = path.join(base, "seed.json");
  // A Redis URL with a password, on a port nothing listens on: the backup fails and its failure is logged.
  fs.writeFileSync(seed, JSON.stringify({ Instances: [{ InstanceId: "crs-logs0001", Region: "ap-guangzhou", Redis: `redis://:${REDIS_PASSWORD}@127.0.0.1:${await freePort()}` }] }));
  const server = await serve(["--data", path.join(base, "data"), "--seed", seed, "--log-level", "debug"], cleanEnv({ CRS_SECRET_ID: ID, CRS_SECRET_KEY: KEY }));
  const host = `127.0.0.1:${server.port}`;
  const form = `Action=${encodeURIComponent(FORGED)}&Version=2018-04-12&Region=ap-guangzhou`;

  const answers = [
    // Before authentication: form body, query string.
    await rawRequest(server.port, { headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: form }),
    await rawRequest(server.port, { method: "GET", path: `/?${form}` }),
    // Authenticated (v1 signs the Action itself), so the account is known when the action is refused.
    await rawRequest(server.port, { headers: { "Content-Type": "application/x-www-form-urlencoded", Host: host }, body: signV1({ secretId: ID, secretKey: KEY, host, action: FORGED, params: {} }) }),
    // X-TC-Action: a header cannot carry a newline, so the encoded form and a signed TC3 request with it.
    await rawRequest(server.port, { headers: { ...signV3({ secretId: ID, secretKey: KEY, host, body: "{}", action: encodeURIComponent(FORGED) }) }, body: "{}" }),
  ];
  assert.deepEqual(answers.map((a) => a.json.Response.Error?.Code), ["MissingParameter", "MissingParameter", "InvalidAction", "InvalidAction"]);
  // A raw CR LF or a bare LF inside X-TC-Action: Node's parser refuses or splits it; either way one JSON line.
  for (const sep of ["\r\n", "\n"]) {
    await rawExchange(server.port, `POST / HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nX-TC-Action: X${sep}2026-11-28T00:00:00Z action=RestoreInstance\r\nContent-Length: 2\r\n\r\n{}`, { untilAnswered: true });
  }
  // A request with a (wrong) Authorization header, and a backup of the instance whose URL has a password.
  const authorization = signV3({ secretId: ID, secretKey: "not-the-key", host, body: "{}" }).Authorization!;
  const refused = await rawRequest(server.port, { headers: { ...signV3({ secretId: ID, secretKey: KEY, host, body: "{}" }), Authorization: authorization }, body: "{}" });
  assert.equal(refused.json.Response.Error?.Code, "AuthFailure.SignatureFailure");
  const client = sdk(server.port, ID, KEY);
  const { TaskId } = await client.ManualBackupInstance({ InstanceId: "crs-logs0001" });
  assert.equal((await waitForTask(client, TaskId!)).Status, "failed");
  await waitFor("the failed task's log line", () => server.stdout().includes('"msg":"task failed"') || undefined, 10_000);
  assert.equal(await server.stop(), 0);

  const lines = jsonLines(server.stdout()); // throws on any line that is not JSON
  assert.ok(lines.length >= 10, `${lines.length} lines`);
  assert.equal(server.stderr(), "");
  assert.deepEqual(lines.filter((l) => l.action === "RestoreInstance"), [], "no line claims a RestoreInstance");
  assert.ok(lines.filter((l) => l.msg === "request" && String(l.action).includes("RestoreInstance")).length >= 3, "the forged text is logged as one string value");
  for (const secret of [KEY, REDIS_PASSWORD, authorization.slice(-64)]) assert.ok(!server.out().includes(secret), `${secret.slice(0, 12)}… is not logged`);
});

test("the logger redacts keys, passwords, tokens, Redis URLs and Authorization headers at any depth", () => {
  const { stream, lines } = memoryDestination();
  const logger = createLogger({ destination: stream, pretty: false, level: "debug" });
  const url = `redis://:${REDIS_PASSWORD}@10.0.0.5:6379`;
  logger.info({ redisUrl: url, secretKey: KEY, password: REDIS_PASSWORD, token: "tok-secret-1" }, "top level");
  logger.info({ instance: { redisUrl: url, Redis: url }, credential: { SecretKey: KEY, Token: "tok-secret-2" } }, "nested");
  logger.info({ req: { headers: { authorization: "TC3-HMAC-SHA256 Credential=AKIDx, Signature=SIG-SECRET-3" } }, headers: { authorization: "SIG-SECRET-4" } }, "headers");
  logger.child({ task: { params: { masterauth: "auth-secret-5" } } }).warn("child bindings");
  const text = lines.join("\n");
  for (const secret of [REDIS_PASSWORD, KEY, "tok-secret-1", "tok-secret-2", "SIG-SECRET-3", "SIG-SECRET-4", "auth-secret-5"]) {
    assert.ok(!text.includes(secret), `${secret} is redacted:\n${text}`);
  }
  assert.equal(lines.length, 4);
  type Line = { redisUrl?: string; instance?: { Redis?: string }; req?: { headers?: { authorization?: string } } };
  const [top, nested, headers] = lines.map((l) => JSON.parse(l) as Line);
  assert.equal(top!.redisUrl, "***");
  assert.equal(nested!.instance?.Redis, "***");
  assert.equal(headers!.req?.headers?.authorization, "***");
});
