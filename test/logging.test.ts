// Logs: redaction is the logger's own configuration (no call site has to remember it), request lines carry
// what an operator searches by, background lines carry the task and the instance, and the level is honoured.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createLogger, memoryDestination } from "../src/log";
import { RedisProcess, startRedis, waitFor } from "./support/redis";
import { expectSdkError, KEY, startTestServer, TestServer } from "./support/server";

const SECRETS = {
  secretKey: "SECRET-KEY-VALUE-1",
  SecretKey: "SECRET-KEY-VALUE-2",
  password: "PASSWORD-VALUE-3",
  token: "TOKEN-VALUE-4",
  Token: "TOKEN-VALUE-5",
  redisUrl: "redis://:REDIS-PASSWORD-6@db:6379",
  Redis: "redis://:REDIS-PASSWORD-7@db:6379",
  authorization: "TC3-HMAC-SHA256 Credential=AKIDx/2024/redis/tc3_request, Signature=AUTH-VALUE-8",
  masterauth: "MASTERAUTH-VALUE-9",
};

/** The secrets at the top of a line and nested one, two and three levels down, in objects and arrays. */
function carriers(): Array<Record<string, unknown>> {
  return [
    { ...SECRETS },
    { instance: { ...SECRETS } },
    { task: { params: { ...SECRETS } } },
    { a: { b: { c: { ...SECRETS } } } },
    { headers: { authorization: SECRETS.authorization, host: "redis.tencentcloudapi.com" } },
    { req: { headers: { authorization: SECRETS.authorization } } },
    { list: [{ password: SECRETS.password, token: SECRETS.token }] },
    { a: { b: { c: { d: { e: { f: { ...SECRETS } } } } } } },
    { nested: { cause: Object.assign(new Error("nested"), { redisUrl: SECRETS.redisUrl }) } },
  ];
}

function assertClean(lines: string[]): void {
  const all = lines.join("\n");
  for (const [field, value] of Object.entries(SECRETS)) {
    for (const part of [value, ...value.split(/[:@/ ,=]/).filter((x) => /VALUE|PASSWORD/.test(x))]) {
      assert.ok(!all.includes(part), `${field}'s value (${part}) reached a log line:\n${all}`);
    }
  }
}

describe("redaction by the logger's configuration", () => {
  test("JSON lines: secrets at every depth we log are replaced by ***, other fields are kept", () => {
    const { stream, lines } = memoryDestination();
    const log = createLogger({ destination: stream, level: "trace", pretty: false });
    for (const obj of carriers()) log.info(obj, "carrier");
    // Bindings of a child logger (a task's context) and an error's own properties too.
    log.child({ redisUrl: SECRETS.redisUrl, instance: { password: SECRETS.password } }).warn("child");
    log.error({ err: Object.assign(new Error("connect failed"), { password: SECRETS.password, token: SECRETS.token }) }, "error");
    assert.equal(lines.length, carriers().length + 2);
    assertClean(lines);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    for (const field of Object.keys(SECRETS)) assert.equal(first[field], "***", field);
    const deep = JSON.parse(lines[3]!) as { a: { b: { c: Record<string, unknown> } } };
    assert.equal(deep.a.b.c.password, "***");
    const headers = JSON.parse(lines[4]!) as { headers: Record<string, string> };
    assert.equal(headers.headers.host, "redis.tencentcloudapi.com", "other fields are kept");
    assert.match(lines[0]!, /"time":"\d{4}-\d\d-\d\dT/, "ISO timestamps");
    const err = JSON.parse(lines.at(-1)!) as { err: { type: string; message: string; stack: string; password: string } };
    assert.equal(err.err.type, "Error", "errors keep their type");
    assert.equal(err.err.message, "connect failed");
    assert.match(err.err.stack, /^Error: connect failed/);
    assert.equal(err.err.password, "***");
  });

  test("pretty lines (a terminal) are redacted the same way", () => {
    const { stream, lines } = memoryDestination();
    const log = createLogger({ destination: stream, level: "info", pretty: true });
    for (const obj of carriers()) log.info(obj, "carrier");
    assert.ok(lines.length > carriers().length);
    assertClean(lines);
  });

  test("the level is honoured", () => {
    const { stream, lines } = memoryDestination();
    const log = createLogger({ destination: stream, level: "warn", pretty: false });
    log.info("dropped");
    log.debug("dropped");
    log.warn("kept");
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as { msg: string }).msg), ["kept"]);
  });
});

describe("what request and background lines carry", () => {
  let redis: RedisProcess;
  let srv: TestServer;
  const ID = "crs-log00001";

  before(async () => {
    redis = await startRedis(["--repl-diskless-sync-delay", "0", "--requirepass", "pw-LOGTEST-secret"], { password: "pw-LOGTEST-secret" });
    srv = await startTestServer({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
      Instances: [{ InstanceId: ID, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:pw-LOGTEST-secret@127.0.0.1:${redis.port}`, AutoBackup: false }],
    }, { rateLimit: 0, schedulerIntervalMs: 0, autoBackups: true });
  });

  after(async () => {
    await srv?.close();
    redis?.kill();
  });

  test("request lines: time, requestId, action, account, code, ms; task lines: time, taskId, instanceId; no secret anywhere", async () => {
    const c = srv.client();
    await expectSdkError(c.DescribeInstanceBackups({ InstanceId: "crs-nothere0" }), "ResourceNotFound.InstanceNotExists");
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID });
    const ended = await srv.services.runner.waitFor(TaskId!);
    assert.ok(ended.ok);
    // The digest is computed from the stored file after the transfer; its line ends the task's story.
    await waitFor("the digest's line", () => (srv.logs.some((l) => l.includes('"msg":"backup digest attached"') && l.includes(`"taskId":${TaskId}`)) ? true : undefined));
    const lines = srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = lines.filter((l) => l.msg === "request");
    assert.ok(requests.length >= 2);
    for (const r of requests) {
      for (const k of ["time", "requestId", "action", "account", "code", "ms"]) assert.ok(r[k] !== undefined, `request line without ${k}: ${JSON.stringify(r)}`);
    }
    assert.ok(requests.some((r) => r.action === "DescribeInstanceBackups" && r.code === "ResourceNotFound.InstanceNotExists" && r.account === KEY.account));
    const task = lines.filter((l) => l.taskId === TaskId);
    assert.deepEqual(task.map((l) => l.msg), ["task started", "backup phases", "task succeeded", "backup digest attached"]);
    for (const l of task) {
      assert.equal(l.instanceId, ID);
      assert.match(String(l.time), /^\d{4}-\d\d-\d\dT/);
    }
    await waitFor("every line written", () => (srv.logs.length > 0 ? true : undefined));
    assert.ok(!srv.logs.join("\n").includes("pw-LOGTEST-secret"), "the Redis password never reaches the log");
    assert.ok(!srv.logs.join("\n").includes(KEY.secretKey), "the SecretKey never reaches the log");
  });

  test("scheduler lines carry the instance and the task they queued", async () => {
    // Turn the instance's schedule on for a window open now, with a clock the scheduler reads.
    const now = Date.now();
    const p = srv.services.time.parts(now);
    const hour = String(p.hour).padStart(2, "0");
    const next = String((p.hour + 1) % 24).padStart(2, "0");
    await srv.services.catalog.updateInstance(ID, { autoBackupWeekDays: ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"], autoBackupPeriod: `${hour}:00-${next}:00`, lastAutoWindow: 0 });
    const r = await srv.services.scheduler.tick();
    assert.deepEqual(r.started, [ID]);
    const queued = srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "automatic backup queued");
    assert.ok(queued, "the scheduler logs what it queued");
    assert.equal(queued.instanceId, ID);
    assert.equal(queued.component, "scheduler");
    assert.equal(typeof queued.taskId, "number");
    assert.match(String(queued.time), /^\d{4}-\d\d-\d\dT/);
    const done = await srv.services.runner.waitFor(queued.taskId as number);
    assert.ok(done.ok);
  });
});
