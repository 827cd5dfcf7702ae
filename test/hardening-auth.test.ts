// Hardening of authentication: what an unauthenticated caller can make the server hold (memory floods with
// huge SecretIds and ids), failed authentications per address, and replays of captured requests.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { KEY, rawRequest, RawResponse, startTestServer, TestServer, failed, ok, waitForTask } from "./support/server";
import { countingServices, Gateway, startGateway } from "./support/gateway";
import { signV1, signV3 } from "./support/sign";
import { BACKUPS, LIMITED, MAIN, SECOND, SEED } from "./fixtures";
import { actions } from "../src/actions";
import { addressKey, DEFAULT_FAILURE_LIMIT } from "../src/gateway/ratelimit";
import { ReplayGuard, REUSE_GRACE_S } from "../src/gateway/replay";
import { validate } from "../src/protocol/schema";
import { ApiError } from "../src/protocol/errors";
import { generateInstanceId, randomString } from "../src/jobs/instances";
import { RedisProcess, startRedis } from "./support/redis";

let srv: TestServer;
before(async () => {
  srv = await startTestServer(SEED, { rateLimit: 0 });
});
after(() => srv.close());

/** CloneInstances' required fields besides InstanceId and BackupId. */
const CLONE_REQUIRED = { GoodsNum: 1, ZoneId: 0, BillingMode: 0, Period: 1, SecurityGroupIdList: [] as string[] };
const FORM = { "Content-Type": "application/x-www-form-urlencoded" };

/** Like rawRequest, with a chosen source address and agent (connection reuse). */
function send(port: number, o: { body?: string | Buffer | Buffer[]; headers?: Record<string, string>; localAddress?: string; agent?: http.Agent | false; method?: string; path?: string }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: o.method ?? "POST", path: o.path ?? "/", headers: o.headers, localAddress: o.localAddress, agent: o.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: JSON.parse(text) as RawResponse["json"] });
        } catch {
          reject(new Error(`not JSON (status ${res.statusCode}): ${text.slice(0, 200)}`));
        }
      });
    });
    req.on("error", reject);
    // Parts are written one by one, so a large shared tail is never copied.
    if (Array.isArray(o.body)) {
      for (const part of o.body) req.write(part);
      req.end();
    } else req.end(o.body);
  });
}

describe("an unauthenticated flood cannot grow the server's memory", () => {
  test("4,000 v1 forms with unique 1 MB SecretIds and 4,000 TC3 headers with unique 60 KB SecretIds: RSS grows < 64 MB", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-flood-"));
    const seedFile = path.join(dir, "seed.json");
    fs.writeFileSync(seedFile, JSON.stringify(SEED));
    const child = fork(path.join(__dirname, "support", "flood-server.js"), [seedFile, path.join(dir, "data")], { execArgv: ["--expose-gc"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const replies: Array<(m: Record<string, number>) => void> = [];
    child.on("message", (m) => replies.shift()?.(m as Record<string, number>));
    const next = () => new Promise<Record<string, number>>((resolve) => replies.push(resolve));
    const rss = async () => {
      const p = next();
      child.send("rss");
      return (await p).rss!;
    };
    try {
      const port = (await next()).port!;
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const host = `127.0.0.1:${port}`;
      const now = Math.floor(Date.now() / 1000);
      const big = Buffer.alloc(1_000_000, "A");
      const v1 = (i: number) => [
        Buffer.from(`Action=DescribeInstanceBackups&Version=2018-04-12&Region=ap-guangzhou&Timestamp=${now}&Nonce=${i}&Signature=abc&InstanceId=${MAIN}&SecretId=${i.toString(36)}`),
        big,
      ];
      const mid = "B".repeat(60_000);
      const tc3 = (i: number) => signV3({ ...KEY, secretId: `${i.toString(36)}${mid}`, host, body: "{}" });
      const codes = new Map<string, number>();
      const flood = async (n: number, make: (i: number) => { body: Buffer[] | string; headers: Record<string, string> }) => {
        let i = 0;
        await Promise.all(Array.from({ length: 4 }, async () => {
          while (i < n) {
            const r = await send(port, { ...make(i++), agent });
            const code = r.json.Response.Error?.Code ?? "OK";
            codes.set(code, (codes.get(code) ?? 0) + 1);
          }
        }));
      };
      const v1Request = (i: number) => {
        const body = v1(i);
        return { body, headers: { ...FORM, "Content-Length": String(body[0]!.length + big.length) } };
      };
      const tc3Request = (i: number) => ({ body: "{}", headers: tc3(i) });
      // Warm up (code paths, V8's heap sizing, the allocator's arenas) before the baseline: what is measured is
      // whether memory keeps growing with the flood, not the first requests' one-off growth.
      await flood(400, v1Request);
      await flood(400, (i) => tc3Request(1_000_000 + i));
      const baseline = await rss();
      await flood(4000, (i) => v1Request(10_000 + i));
      await flood(4000, (i) => tc3Request(2_000_000 + i));
      const grown = (await rss()) - baseline;
      console.log(`flood: RSS baseline ${(baseline / 1048576).toFixed(1)} MB, grown ${(grown / 1048576).toFixed(1)} MB`);
      assert.ok(grown < 64 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MB (codes ${JSON.stringify([...codes])})`);
      // Each was refused as what it is, and none was looked up as a credential that might exist.
      assert.deepEqual([...codes.keys()].sort(), ["AuthFailure.InvalidAuthorization", "AuthFailure.InvalidSecretId"]);
      // The server still answers a real request.
      const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
      ok(await send(port, { body, headers: signV3({ ...KEY, host, body }), agent }));
      agent.destroy();
    } finally {
      child.send("exit");
      await new Promise((r) => child.once("exit", r));
    }
  });
});

describe("implausible ids never reach the catalogue", () => {
  let gw: Gateway;
  let calls: Map<string, number>;
  let host: string;
  before(async () => {
    const counted = countingServices(srv.services);
    calls = counted.calls;
    gw = await startGateway(counted.services, { pipeline: { authFailures: { burst: 0, perSecond: 0 } } });
    host = `127.0.0.1:${gw.port}`;
  });
  after(() => gw.close());

  test("a SecretId outside 1..128 of [A-Za-z0-9_-] is AuthFailure.InvalidSecretId without a lookup", async () => {
    calls.clear();
    for (const secretId of ["x".repeat(129), "AKID/../x", "AKID\u00e9", "AKID x", "AKID%00"]) {
      const form = signV1({ ...KEY, secretId, host, params: { InstanceId: MAIN } });
      failed(await rawRequest(gw.port, { body: form, headers: FORM }), "AuthFailure.InvalidSecretId");
    }
    assert.equal(calls.get("credential") ?? 0, 0);
    // A well-formed unknown one is looked up, and not found.
    failed(await rawRequest(gw.port, { body: signV1({ ...KEY, secretId: "AKIDunknown", host, params: { InstanceId: MAIN } }), headers: FORM }), "AuthFailure.SecretIdNotFound");
    assert.equal(calls.get("credential"), 1);
  });

  test("a TC3 Authorization over 4 KiB is refused before its SecretId is used", async () => {
    calls.clear();
    const headers = signV3({ ...KEY, secretId: "A".repeat(5000), host, body: "{}" });
    failed(await rawRequest(gw.port, { body: "{}", headers }), "AuthFailure.InvalidAuthorization", /4096/);
    const tc3 = signV3({ ...KEY, secretId: "AKID.bad", host, body: "{}" });
    failed(await rawRequest(gw.port, { body: "{}", headers: tc3 }), "AuthFailure.InvalidSecretId");
    assert.equal(calls.get("credential") ?? 0, 0);
  });

  test("every action taking an InstanceId refuses a malformed one without an instance lookup", async () => {
    const withInstance = [...actions.values()].filter((a) => a.instanceParam && (a.schema[a.instanceParam] as { required?: boolean }).required);
    assert.ok(withInstance.length >= 7);
    for (const a of withInstance) {
      for (const id of ["crs-AAAAAAAA", "crs-aaaaaaaa0", "x", "crs-aaaa'--", "crs-aaaaaaa\u00e9"]) {
        calls.clear();
        const params: Record<string, unknown> = { InstanceId: id };
        if ("BackupId" in a.schema) params.BackupId = BACKUPS[0]!.BackupId;
        if ("WeekDays" in a.schema) Object.assign(params, { WeekDays: ["Monday"], TimePeriod: "01:00-02:00" });
        if ("BackupMode" in a.schema) params.BackupMode = "NormalLevelBackup";
        if ("BackupTimestamp" in a.schema) params.BackupTimestamp = 1;
        if ("GoodsNum" in a.schema) Object.assign(params, CLONE_REQUIRED);
        const body = JSON.stringify(params);
        const r = await rawRequest(gw.port, { body, headers: signV3({ ...KEY, host, body, action: a.name }) });
        failed(r, "ResourceNotFound.InstanceNotExists");
        assert.equal(calls.get("instance") ?? 0, 0, `${a.name} looked ${JSON.stringify(id)} up`);
      }
    }
  });

  test("an InstanceId or BackupId over 64 characters is InvalidParameter naming it, in every action", async () => {
    for (const a of actions.values()) {
      for (const name of ["InstanceId", "BackupId"]) {
        if (!(name in a.schema)) continue;
        calls.clear();
        const params: Record<string, unknown> = { ...CLONE_REQUIRED, InstanceId: MAIN, BackupId: BACKUPS[0]!.BackupId, [name]: `crs-${"a".repeat(4096)}` };
        for (const k of Object.keys(params)) if (!(k in a.schema)) delete params[k];
        const body = JSON.stringify(params);
        failed(await rawRequest(gw.port, { body, headers: signV3({ ...KEY, host, body, action: a.name, language: "en-US" }) }), "InvalidParameter", new RegExp(`${name}.*longer than 64`));
        assert.equal((calls.get("instance") ?? 0) + (calls.get("backup") ?? 0), 0);
      }
    }
  });

  test("every string parameter of every action has an explicit length cap", () => {
    const uncapped: string[] = [];
    const walk = (prefix: string, fields: Record<string, unknown>) => {
      for (const [name, spec] of Object.entries(fields) as Array<[string, { type: string; maxLength?: number; items?: unknown; fields?: Record<string, unknown>; maxItems?: number }]>) {
        if (spec.type === "string" && !(spec.maxLength! <= 512)) uncapped.push(prefix + name);
        if (spec.type === "array") walk(`${prefix}${name}.N.`, { item: spec.items });
        if (spec.type === "object") walk(`${prefix}${name}.`, spec.fields!);
      }
    };
    for (const a of actions.values()) walk(`${a.name}:`, a.schema);
    assert.deepEqual(uncapped, []);
  });
});

describe("failed authentications are limited per client address", () => {
  test("the default allows 30 failures at once, refilled at 10 per second", () => {
    assert.deepEqual(DEFAULT_FAILURE_LIMIT, { burst: 30, perSecond: 10, maxAddresses: 10_000 });
  });

  test("an address out of failures gets RequestLimitExceeded.IPLimitExceeded without a lookup; others are unaffected; it recovers", async () => {
    const counted = countingServices(srv.services);
    const gw = await startGateway(counted.services, { pipeline: { authFailures: { burst: 5, perSecond: 1 } } });
    try {
      const host = `127.0.0.1:${gw.port}`;
      const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
      const bad = () => send(gw.port, { body, headers: signV3({ ...KEY, secretKey: "wrong", host, body }), localAddress: "127.0.0.3" });
      for (let i = 0; i < 5; i++) failed(await bad(), "AuthFailure.SignatureFailure");
      const lookups = counted.calls.get("credential");
      failed(await bad(), "RequestLimitExceeded.IPLimitExceeded");
      // Even a good request from that address waits for the allowance to refill, and costs no lookup.
      failed(await send(gw.port, { body, headers: signV3({ ...KEY, host, body }), localAddress: "127.0.0.3" }), "RequestLimitExceeded.IPLimitExceeded");
      assert.equal(counted.calls.get("credential"), lookups);
      // Another address is served.
      ok(await send(gw.port, { body, headers: signV3({ ...KEY, host, body }), localAddress: "127.0.0.4" }));
      // The allowance refills (1 per second here).
      const deadline = Date.now() + 3000;
      for (;;) {
        const r = await send(gw.port, { body, headers: signV3({ ...KEY, host, body }), localAddress: "127.0.0.3" });
        if (!r.json.Response.Error) break;
        assert.ok(Date.now() < deadline, "the address never recovered");
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      await gw.close();
    }
  });

  test("addresses are keyed as clients: IPv4-mapped as IPv4, IPv6 by /64", () => {
    assert.equal(addressKey("::ffff:10.1.2.3"), "10.1.2.3");
    assert.equal(addressKey("10.1.2.3"), "10.1.2.3");
    assert.equal(addressKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    assert.equal(addressKey("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
    assert.equal(addressKey("2001:0db8::1"), "2001:db8:0:0::/64");
    assert.equal(addressKey("::1"), "0:0:0:0::/64");
  });
});

describe("replays and tampering", () => {
  let gw: Gateway;
  let host: string;
  before(async () => {
    gw = await startGateway(srv.services, { pipeline: { authFailures: { burst: 0, perSecond: 0 } } });
    host = `127.0.0.1:${gw.port}`;
  });
  after(() => gw.close());

  test("a v1 request is accepted once; a fresh Nonce makes a new request", async () => {
    const form = signV1({ ...KEY, host, params: { InstanceId: MAIN, Limit: "1" } });
    ok(await send(gw.port, { body: form, headers: FORM }));
    failed(await send(gw.port, { body: form, headers: FORM }), "AuthFailure.SignatureFailure", /already received/);
    // The same request as a GET is a different signed request, but the replayed GET is refused too.
    const get = signV1({ ...KEY, host, method: "GET", params: { InstanceId: MAIN, Limit: "1" } });
    ok(await send(gw.port, { method: "GET", path: `/?${get}` }));
    failed(await send(gw.port, { method: "GET", path: `/?${get}` }), "AuthFailure.SignatureFailure");
    const fresh = form.replace("Nonce=0", "Nonce=1");
    // (a new Nonce needs a new signature)
    failed(await send(gw.port, { body: fresh, headers: FORM }), "AuthFailure.SignatureFailure");
    const resigned = signV1({ ...KEY, host, params: { InstanceId: MAIN, Limit: "1", Nonce: "12345" } });
    ok(await send(gw.port, { body: resigned, headers: FORM }));
  });

  test("an identical TC3 request is accepted again (clients repeat calls), on any connection", async () => {
    const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
    const headers = signV3({ ...KEY, host, body });
    ok(await send(gw.port, { body, headers, agent: false }));
    ok(await send(gw.port, { body, headers, agent: false }));
  });

  test("a captured TC3 read sent again as a state-changing action from another client address is refused", async () => {
    const body = JSON.stringify({ InstanceId: MAIN });
    const headers = signV3({ ...KEY, host, body, action: "DescribeAutoBackupConfig" });
    ok(await send(gw.port, { body, headers, agent: false }));
    failed(await send(gw.port, { body, headers: { ...headers, "X-TC-Action": "ManualBackupInstance" }, agent: false, localAddress: "127.0.0.2" }), "AuthFailure.SignatureFailure", /already used for another action from another client/);
    // As another read, or in another region, it is what concurrent clients do legitimately: served.
    ok(await send(gw.port, { body, headers: { ...headers, "X-TC-Action": "DescribeInstanceBackups" }, agent: false, localAddress: "127.0.0.2" }));
    failed(await send(gw.port, { body, headers: { ...headers, "X-TC-Region": "ap-shanghai" }, agent: false }), "ResourceNotFound.InstanceNotExists");
    // The original still works.
    ok(await send(gw.port, { body, headers, agent: false }));
  });

  test(`a captured TC3 read sent again as a state-changing action from the same address more than ${REUSE_GRACE_S} s later is refused`, async () => {
    let now = Math.floor(Date.now() / 1000);
    const clocked = await startGateway(srv.services, { pipeline: { authFailures: { burst: 0, perSecond: 0 }, nowSeconds: () => now } });
    try {
      const at = `127.0.0.1:${clocked.port}`;
      const body = JSON.stringify({ InstanceId: MAIN });
      const headers = signV3({ ...KEY, host: at, body, action: "DescribeAutoBackupConfig", timestamp: now });
      ok(await send(clocked.port, { body, headers, agent: false }));
      now += REUSE_GRACE_S + 1;
      failed(await send(clocked.port, { body, headers: { ...headers, "X-TC-Action": "ManualBackupInstance" }, agent: false }), "AuthFailure.SignatureFailure", new RegExp(`more than ${REUSE_GRACE_S} s ago`));
      // Within the grace, from the same address on another connection, it is served (here it reaches the
      // handler, which refuses a catalogue-only instance).
      const fresh = signV3({ ...KEY, host: at, body, action: "DescribeAutoBackupConfig", timestamp: now });
      ok(await send(clocked.port, { body, headers: fresh, agent: false }));
      now += REUSE_GRACE_S;
      failed(await send(clocked.port, { body, headers: { ...fresh, "X-TC-Action": "ManualBackupInstance" }, agent: false }), "ResourceUnavailable.InstanceStatusAbnormal");
    } finally {
      await clocked.close();
    }
  });

  test("a signature used for one state-changing action is refused for any other; the same one again is a repeat", async () => {
    const body = JSON.stringify({ InstanceId: MAIN }, null, 2);
    const headers = signV3({ ...KEY, host, body, action: "ManualBackupInstance" });
    failed(await send(gw.port, { body, headers, agent: false }), "ResourceUnavailable.InstanceStatusAbnormal");
    failed(await send(gw.port, { body, headers, agent: false, localAddress: "127.0.0.2" }), "ResourceUnavailable.InstanceStatusAbnormal");
    failed(await send(gw.port, { body, headers: { ...headers, "X-TC-Action": "RestoreInstance" }, agent: false }), "AuthFailure.SignatureFailure", /already used for another state-changing action, ManualBackupInstance/);
    // Reads never bind a signature, and are served after a write too.
    ok(await send(gw.port, { body, headers: { ...headers, "X-TC-Action": "DescribeAutoBackupConfig" }, agent: false }));
  });

  test("a signature that covers X-TC-Action holds for that action only, and is not remembered", async () => {
    const body = JSON.stringify({ InstanceId: MAIN }, null, 3);
    const headers = signV3({ ...KEY, host, body, action: "DescribeAutoBackupConfig", alsoSign: ["x-tc-action"] });
    assert.match(headers.Authorization!, /SignedHeaders=content-type;host;x-tc-action,/);
    ok(await send(gw.port, { body, headers, agent: false }));
    failed(await send(gw.port, { body, headers: { ...headers, "X-TC-Action": "ManualBackupInstance" }, agent: false }), "AuthFailure.SignatureFailure");
    const write = signV3({ ...KEY, host, body, action: "ManualBackupInstance", alsoSign: ["x-tc-action"] });
    failed(await send(gw.port, { body, headers: write, agent: false, localAddress: "127.0.0.2" }), "ResourceUnavailable.InstanceStatusAbnormal");
  });

  test("the guard's rules, on its own clock", () => {
    let t = 1_000_000;
    const guard = new ReplayGuard({ windowS: 300, now: () => t });
    const use = (connection: number, address = "10.0.0.1") => ({ connection, address, actionSigned: false });
    const refused = (f: () => void) => assert.throws(f, (e: unknown) => e instanceof ApiError && e.code === "AuthFailure.SignatureFailure");
    // An honest script: a read, then a write with the same signature on another connection, a second later.
    guard.checkV3("AK", "s1", "DescribeAutoBackupConfig", false, use(1));
    t += 1000;
    guard.checkV3("AK", "s1", "ManualBackupInstance", true, use(2));
    guard.checkV3("AK", "s1", "ManualBackupInstance", true, use(3, "10.0.0.9")); // a repeat of that write
    guard.checkV3("AK", "s1", "DescribeInstanceBackups", false, use(4, "10.0.0.9"));
    refused(() => guard.checkV3("AK", "s1", "RestoreInstance", true, use(2)));
    guard.checkV3("AK", "s1", "RestoreInstance", true, use(1)); // its first connection is its client
    // Another address, or the same one too late: refused; the first use's own connection: served at any time.
    guard.checkV3("AK", "s2", "DescribeInstances", false, use(5));
    refused(() => guard.checkV3("AK", "s2", "ManualBackupInstance", true, use(6, "10.0.0.2")));
    t += (REUSE_GRACE_S + 1) * 1000;
    refused(() => guard.checkV3("AK", "s2", "ManualBackupInstance", true, use(6)));
    guard.checkV3("AK", "s2", "ManualBackupInstance", true, use(5));
    // Unknown connections (0) are not one connection.
    guard.checkV3("AK", "s3", "DescribeInstances", false, use(0));
    refused(() => guard.checkV3("AK", "s3", "ManualBackupInstance", true, use(0, "10.0.0.2")));
    // Signatures are per SecretId; one covering X-TC-Action is not remembered.
    guard.checkV3("AK2", "s1", "RestoreInstance", true, use(7, "10.0.0.3"));
    guard.checkV3("AK", "s4", "DescribeInstances", false, { ...use(8), actionSigned: true });
    guard.checkV3("AK", "s4", "ManualBackupInstance", true, { ...use(9, "10.0.0.4"), actionSigned: true });
  });

  test("one body sent to several reads and regions at once over several connections is served (a multi-region scan)", async () => {
    const body = JSON.stringify({});
    const ts = Math.floor(Date.now() / 1000);
    const answers = await Promise.all(["ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-guangzhou"].flatMap((region) =>
      ["DescribeInstances", "DescribeBackupDownloadRestriction"].map((action) =>
        send(gw.port, { body, headers: signV3({ ...KEY, host, body, action, region, timestamp: ts }), agent: false }))));
    for (const a of answers) ok(a);
  });

  test("one client sending two actions with the same body in the same second over its connection is served", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const body = JSON.stringify({ InstanceId: SECOND });
      const ts = Math.floor(Date.now() / 1000);
      ok(await send(gw.port, { body, headers: signV3({ ...KEY, host, body, action: "DescribeAutoBackupConfig", timestamp: ts }), agent }));
      ok(await send(gw.port, { body, headers: signV3({ ...KEY, host, body, action: "DescribeInstanceBackups", timestamp: ts }), agent }));
    } finally {
      agent.destroy();
    }
  });

  test("no read action's parameters fit a state-changing action unless they are exactly its own", () => {
    const mutating = [...actions.values()].filter((a) => a.mutates);
    assert.deepEqual(mutating.map((a) => a.name).sort(), ["CloneInstances", "ManualBackupInstance", "ModifyAutoBackupConfig", "ModifyBackupDownloadRestriction", "ModifyInstanceBackupMode", "RestoreInstance"]);
    const minimal: Record<string, Record<string, unknown>> = {
      CloneInstances: { ...CLONE_REQUIRED, GoodsNum: "1", ZoneId: "0", BillingMode: "0", Period: "1", InstanceId: MAIN, BackupId: BACKUPS[0]!.BackupId },
      ManualBackupInstance: { InstanceId: MAIN },
      ModifyAutoBackupConfig: { InstanceId: MAIN, WeekDays: ["Monday"], TimePeriod: "01:00-02:00" },
      ModifyBackupDownloadRestriction: { LimitType: "NoLimit" },
      ModifyInstanceBackupMode: { InstanceId: MAIN, BackupMode: "SecondLevelBackup" },
      RestoreInstance: { InstanceId: MAIN, BackupId: BACKUPS[0]!.BackupId },
    };
    for (const m of mutating) {
      validate(m.name, m.schema, minimal[m.name] as never);
      for (const r of actions.values()) {
        if (r.mutates) continue;
        for (const field of Object.keys(r.schema)) {
          if (field in m.schema) continue;
          assert.throws(() => validate(m.name, m.schema, { ...minimal[m.name], [field]: "1" } as never),
            (e: unknown) => e instanceof ApiError && e.code === "UnknownParameter", `${r.name}.${field} is accepted by ${m.name}`);
        }
      }
    }
  });

  test("a captured DescribeInstanceBackups body sent as ManualBackupInstance fails: by parameters, by replay, or by policy", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // With read-only parameters: UnknownParameter, even on the victim's own connection.
      const paged = JSON.stringify({ InstanceId: MAIN, Limit: 10, Offset: 0 });
      const pagedHeaders = signV3({ ...KEY, host, body: paged });
      ok(await send(gw.port, { body: paged, headers: pagedHeaders, agent }));
      failed(await send(gw.port, { body: paged, headers: { ...pagedHeaders, "X-TC-Action": "ManualBackupInstance" }, agent }), "UnknownParameter");
      // With exactly {InstanceId}: refused from another client address as a replay.
      // (Spelled unlike the other tests' bodies, so no earlier signature is the same.)
      const bare = JSON.stringify({ InstanceId: MAIN }, null, 1);
      const bareHeaders = signV3({ ...KEY, host, body: bare });
      ok(await send(gw.port, { body: bare, headers: bareHeaders, agent }));
      failed(await send(gw.port, { body: bare, headers: { ...bareHeaders, "X-TC-Action": "ManualBackupInstance" }, agent: false, localAddress: "127.0.0.2" }), "AuthFailure.SignatureFailure");
      // A read-only credential cannot be turned into a write at all.
      const limited = signV3({ ...LIMITED, host, body: bare, action: "ManualBackupInstance" });
      failed(await send(gw.port, { body: bare, headers: limited, agent }), "UnauthorizedOperation.NoCAMAuthed");
    } finally {
      agent.destroy();
    }
  });
});

describe("an honest script's read then write with one body is served, over two connections", () => {
  let redis: RedisProcess;
  let live: TestServer;
  const ID = "crs-rp000001";
  before(async () => {
    redis = await startRedis();
    live = await startTestServer({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
      Instances: [{ InstanceId: ID, InstanceName: "replay", Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${redis.port}` }],
    }, { rateLimit: 0 });
  });
  after(async () => {
    await live?.close();
    redis?.kill();
  });
  const finished = async (client: ReturnType<TestServer["client"]>, taskId: number) => (await waitForTask(client, taskId)).Status;

  test("DescribeAutoBackupConfig then ManualBackupInstance, both {InstanceId}, one timestamp second, two connections", async () => {
    const host = `127.0.0.1:${live.port}`;
    const body = JSON.stringify({ InstanceId: ID });
    const ts = Math.floor(Date.now() / 1000);
    // One signature for both (the action is not signed), as two SDK clients produce within one second.
    const read = signV3({ ...KEY, host, body, action: "DescribeAutoBackupConfig", timestamp: ts });
    const write = signV3({ ...KEY, host, body, action: "ManualBackupInstance", timestamp: ts });
    assert.equal(read.Authorization, write.Authorization);
    ok(await send(live.port, { body, headers: read, agent: false }));
    const started = ok(await send(live.port, { body, headers: write, agent: false }));
    assert.equal(typeof started.TaskId, "number");
    assert.equal(await finished(live.client(), started.TaskId as number), "succeed");
  });

  test("two official SDK clients (two connections), read then write, three times in a row", async () => {
    const reader = live.client();
    const writer = live.client();
    for (let i = 0; i < 3; i++) {
      await reader.DescribeAutoBackupConfig({ InstanceId: ID });
      const { TaskId } = await writer.ManualBackupInstance({ InstanceId: ID });
      assert.equal(await finished(reader, TaskId!), "succeed");
    }
  });
});

describe("generated secrets and ids", () => {
  test("randomString is uniform over its alphabet (no modulo bias)", () => {
    // With `byte % 200` the first 56 symbols would come twice as often as the rest.
    const alphabet = Array.from({ length: 200 }, (_, i) => String.fromCharCode(0x100 + i)).join("");
    const counts = new Map<string, number>();
    const n = 200 * 500;
    for (const ch of randomString(n, alphabet)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    assert.equal(counts.size, 200);
    const first = alphabet.slice(0, 56).split("").reduce((s, ch) => s + counts.get(ch)!, 0) / 56;
    const rest = alphabet.slice(56).split("").reduce((s, ch) => s + counts.get(ch)!, 0) / 144;
    // Expected 500 each; the biased draw gives ~781 and ~391.
    assert.ok(Math.abs(first - 500) < 40 && Math.abs(rest - 500) < 40, `first 56 symbols ${first.toFixed(0)} on average, the others ${rest.toFixed(0)}`);
  });

  test("generated instance ids and keys have their length and alphabet", () => {
    for (let i = 0; i < 200; i++) assert.match(generateInstanceId(), /^crs-[a-z0-9]{8}$/);
    const key = randomString(32, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    assert.match(key, /^[A-Za-z0-9]{32}$/);
    assert.throws(() => randomString(4, "a"), RangeError);
  });
});
