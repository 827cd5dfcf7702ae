// What the SDK cannot send: form bodies with string numbers, proxy-style targets, finance hosts, bad bytes,
// oversized requests and protocol-level failures. Every answer must be HTTP 200 application/json.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KEY, rawRequest, startTestServer, TestServer, failed, ok } from "./support/server";
import { signV1, signV3 } from "./support/sign";
import { BACKUPS, FINANCE, MAIN, SEED } from "./fixtures";
import { Pipeline } from "../src/gateway/pipeline";
import { MemoryBucketStore, RateLimiter } from "../src/gateway/ratelimit";
import { DEFAULT_REGIONS, RegionRules } from "../src/protocol/regions";
import { defineAction, Action } from "../src/actions/action";

let srv: TestServer;
let host: string;
before(async () => {
  srv = await startTestServer(SEED, { rateLimit: 0 });
  host = `127.0.0.1:${srv.port}`;
});
after(() => srv.close());

function postJson(body: string | Buffer, o: { host?: string; path?: string; region?: string; headers?: Record<string, string>; language?: string } = {}) {
  const h = o.host ?? host;
  return rawRequest(srv.port, { path: o.path, body, headers: { ...signV3({ ...KEY, host: h, body, region: o.region, language: o.language }), ...o.headers } });
}

describe("wire forms", () => {
  test("v1 HmacSHA256 with a urlencoded form body and string numbers (the Cloudpods driver's way)", async () => {
    const body = signV1({ ...KEY, host, signatureMethod: "HmacSHA256", params: { InstanceId: MAIN, Limit: "20", Offset: "0", "Status.0": "2" } });
    const r = ok(await rawRequest(srv.port, { body, headers: { "Content-Type": "application/x-www-form-urlencoded" } }));
    assert.equal(r.TotalCount, BACKUPS.filter((b) => b.Status === 2).length);
  });

  test("v1 signed over the host without its port, and with empty values left out (the Go SDK's way)", async () => {
    const params = { InstanceId: MAIN, Limit: "5" };
    const signed = signV1({ ...KEY, host: "127.0.0.1", method: "GET", params });
    const r = ok(await rawRequest(srv.port, { method: "GET", path: `/?${signed}` }));
    assert.equal((r.BackupSet as unknown[]).length, 5);
    const withEmpty = signV1({ ...KEY, host, method: "GET", params: { ...params } }) + "&InstanceName=";
    ok(await rawRequest(srv.port, { method: "GET", path: `/?${withEmpty}` }));
  });

  test("TC3 GET with flattened Status in the query, + as space", async () => {
    const query = `InstanceId=${MAIN}&Status.0=1&Status.1=3&InstanceName=orders-main`;
    const r = ok(await rawRequest(srv.port, { method: "GET", path: `/?${query}`, headers: signV3({ ...KEY, host, method: "GET", query }) }));
    assert.equal(r.TotalCount, BACKUPS.filter((b) => b.Status === 1 || b.Status === 3).length);
  });

  test("TC3 with an UNSIGNED-PAYLOAD body hash (offered by the Go and Python SDKs)", async () => {
    const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
    // The client hashes the literal UNSIGNED-PAYLOAD instead of the body.
    const headers = signV3({ ...KEY, host, body: "UNSIGNED-PAYLOAD", extraHeaders: { "X-TC-Content-SHA256": "UNSIGNED-PAYLOAD" } });
    assert.equal((ok(await rawRequest(srv.port, { body, headers })).BackupSet as unknown[]).length, 1);
    const { "X-TC-Content-SHA256": _, ...signedOnly } = headers;
    failed(await rawRequest(srv.port, { body, headers: signedOnly }), "AuthFailure.SignatureFailure");
  });

  test("a request through an HTTP proxy (absolute target) is served as /", async () => {
    const body = JSON.stringify({ InstanceId: MAIN, Limit: 2 });
    const r = ok(await postJson(body, { host: "redis.tencentcloudapi.com", path: "http://redis.tencentcloudapi.com/" }));
    assert.equal((r.BackupSet as unknown[]).length, 2);
  });

  test("a finance region is served on its own host, and only there", async () => {
    const body = JSON.stringify({ InstanceId: FINANCE });
    const fsiHost = "redis.ap-shanghai-fsi.tencentcloudapi.com";
    const r = ok(await postJson(body, { host: fsiHost, path: `http://${fsiHost}/`, region: "ap-shanghai-fsi" }));
    assert.equal(r.TotalCount, 1);
    failed(await postJson(body, { host: "redis.tencentcloudapi.com", region: "ap-shanghai-fsi", language: "en-US" }), "UnsupportedRegion", /redis\.ap-shanghai-fsi\.tencentcloudapi\.com/);
    failed(await postJson(JSON.stringify({ InstanceId: MAIN }), { host: fsiHost, region: "ap-guangzhou", language: "en-US" }), "UnsupportedRegion", /only `ap-shanghai-fsi`/);
    failed(await postJson(body, { host: "redis.ap-beijing-fsi.tencentcloudapi.com", region: "ap-shanghai-fsi" }), "UnsupportedRegion");
  });

  test("X-TC-TraceId is echoed, on success and on error", async () => {
    const r = await postJson(JSON.stringify({ InstanceId: MAIN, Limit: 1 }), { headers: { "X-TC-TraceId": "trace-123" } });
    ok(r);
    assert.equal(r.headers["x-tc-traceid"], "trace-123");
    const e = await rawRequest(srv.port, { method: "PUT", headers: { "X-TC-TraceId": "trace-456" } });
    assert.equal(e.headers["x-tc-traceid"], "trace-456");
  });
});

describe("protocol failures, each with its code", () => {
  test("methods other than GET and POST", async () => {
    for (const method of ["PUT", "DELETE", "PATCH", "OPTIONS"]) failed(await rawRequest(srv.port, { method }), "UnsupportedProtocol");
  });
  test("no action, no version, no region", async () => {
    failed(await rawRequest(srv.port, { body: "{}", headers: { "Content-Type": "application/json" } }), "MissingParameter", /Action/);
    const h = signV3({ ...KEY, host, body: "{}" });
    delete h["X-TC-Version"];
    failed(await rawRequest(srv.port, { body: "{}", headers: h }), "MissingParameter", /Version/);
    const noRegion = signV3({ ...KEY, host, body: JSON.stringify({ InstanceId: MAIN }) });
    delete noRegion["X-TC-Region"];
    failed(await rawRequest(srv.port, { body: JSON.stringify({ InstanceId: MAIN }), headers: noRegion }), "MissingParameter", /Region/);
  });
  test("missing and malformed Authorization", async () => {
    const h = signV3({ ...KEY, host, body: "{}" });
    const { Authorization, ...rest } = h;
    failed(await rawRequest(srv.port, { body: "{}", headers: rest }), "MissingParameter", /Authorization/);
    failed(await rawRequest(srv.port, { body: "{}", headers: { ...rest, Authorization: "Basic abc" } }), "AuthFailure.InvalidAuthorization");
    failed(await rawRequest(srv.port, { body: "{}", headers: { ...rest, Authorization: Authorization!.replace(/Signature=\w+/, "Signature=xyz") } }), "AuthFailure.InvalidAuthorization");
    failed(await rawRequest(srv.port, { body: "{}", headers: { ...rest, Authorization: Authorization!.replace("content-type;host", "host") } }), "AuthFailure.InvalidAuthorization");
  });
  test("v1 without a Signature, or without a Nonce", async () => {
    const signed = signV1({ ...KEY, host, params: { InstanceId: MAIN } });
    failed(await rawRequest(srv.port, { body: signed.replace(/&Signature=[^&]*/, ""), headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "MissingParameter", /Signature/);
    failed(await rawRequest(srv.port, { body: signed.replace(/Nonce=0&/, ""), headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "MissingParameter", /Nonce/);
  });
  test("a stale or future timestamp", async () => {
    for (const skew of [-301, 301]) {
      const body = JSON.stringify({ InstanceId: MAIN });
      failed(await rawRequest(srv.port, { body, headers: signV3({ ...KEY, host, body, timestamp: Math.floor(Date.now() / 1000) + skew }) }), "AuthFailure.SignatureExpire");
      const form = signV1({ ...KEY, host, params: { InstanceId: MAIN }, timestamp: Math.floor(Date.now() / 1000) + skew });
      failed(await rawRequest(srv.port, { body: form, headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "AuthFailure.SignatureExpire");
    }
  });
  test("a tampered body or query fails the signature", async () => {
    const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
    failed(await rawRequest(srv.port, { body: body.replace("1", "2"), headers: signV3({ ...KEY, host, body }) }), "AuthFailure.SignatureFailure");
    const form = signV1({ ...KEY, host, params: { InstanceId: MAIN, Limit: "1" } });
    failed(await rawRequest(srv.port, { body: form.replace("Limit=1", "Limit=2"), headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "AuthFailure.SignatureFailure");
  });
  test("an unknown Language", async () => {
    failed(await postJson(JSON.stringify({ InstanceId: MAIN }), { language: "fr-FR" }), "InvalidParameterValue", /Language/);
  });
  test("a GET query over 32 KB, a v3 body over 10 MB and a v1 body over 1 MB", async () => {
    failed(await rawRequest(srv.port, { method: "GET", path: `/?InstanceId=${"x".repeat(33 * 1024)}` }), "RequestSizeLimitExceeded");
    failed(await rawRequest(srv.port, { method: "GET", path: `/?InstanceId=${"x".repeat(70 * 1024)}` }), "RequestSizeLimitExceeded");
    const big = Buffer.alloc(10 * 1024 * 1024 + 10, 0x20);
    failed(await rawRequest(srv.port, { body: big, headers: { "Content-Type": "application/json", Authorization: "TC3-HMAC-SHA256 x" } }), "RequestSizeLimitExceeded");
    failed(await rawRequest(srv.port, { body: Buffer.alloc(1024 * 1024 + 10, 0x61), headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "RequestSizeLimitExceeded");
    // The server still answers afterwards.
    ok(await postJson(JSON.stringify({ InstanceId: MAIN, Limit: 1 })));
  });
  test("a path other than /", async () => {
    failed(await rawRequest(srv.port, { path: "/v2/backups", body: "{}" }), "InvalidRequest");
  });
});

describe("undecodable or ill-typed input is InvalidParameter, never InternalError", () => {
  const bodies: Array<[string, string | Buffer, RegExp]> = [
    ["malformed JSON", '{"InstanceId": "crs-aaaaaaaa",', /malformed JSON/],
    ["trailing garbage", '{"InstanceId": "crs-aaaaaaaa"} x', /malformed JSON/],
    ["a JSON array body", "[1,2]", /must be an object/],
    ["invalid UTF-8", Buffer.from([0x7b, 0x22, 0x49, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), /UTF-8/],
    ["a duplicate key", '{"InstanceId": "crs-aaaaaaaa", "InstanceId": "crs-aaaabbbb"}', /twice/],
    ["a huge number", '{"InstanceId": "crs-aaaaaaaa", "Limit": 123456789012345678901234567890}', /Limit.*range/],
    ["an exponent number", '{"InstanceId": "crs-aaaaaaaa", "Limit": 1e400}', /Limit.*integer/],
    ["an array where a string belongs", '{"InstanceId": ["crs-aaaaaaaa"]}', /InstanceId.*string/],
    ["an object where an integer belongs", '{"InstanceId": "crs-aaaaaaaa", "Offset": {"a": 1}}', /Offset.*integer/],
    ["a nested array in Status", '{"InstanceId": "crs-aaaaaaaa", "Status": [[2]]}', /Status\.0.*integer/],
    ["deep nesting", `{"InstanceId": ${"[".repeat(100)}${"]".repeat(100)}}`, /nesting/],
    ["a bad escape", '{"InstanceId": "crs-\\x41"}', /escape/],
  ];
  for (const [name, body, message] of bodies) {
    test(name, async () => {
      failed(await postJson(body, { language: "en-US" }), "InvalidParameter", message);
    });
  }
  test("bad percent-encoding and invalid UTF-8 in a query or form", async () => {
    failed(await rawRequest(srv.port, { method: "GET", path: "/?InstanceId=%E4%ZZ", headers: { "X-TC-Language": "en-US", "X-TC-Action": "DescribeInstanceBackups" } }), "InvalidParameter", /percent-encoding/);
    failed(await rawRequest(srv.port, { method: "GET", path: "/?InstanceId=%FF%FE" }), "InvalidParameter");
    failed(await rawRequest(srv.port, { body: "InstanceId=%C3%28", headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "InvalidParameter");
    failed(await rawRequest(srv.port, { body: Buffer.from([0x41, 0x3d, 0xc3, 0x28]), headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "InvalidParameter", /UTF-8/);
  });
  test("duplicate and conflicting flattened names", async () => {
    const dup = signV1({ ...KEY, host, params: { InstanceId: MAIN } }) + "&Limit=1&Limit=2";
    failed(await rawRequest(srv.port, { body: dup, headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "InvalidParameter", /twice/);
    const mixed = signV1({ ...KEY, host, params: { InstanceId: MAIN, "Status.0": "2", "Status.x": "3" } });
    failed(await rawRequest(srv.port, { body: mixed, headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "InvalidParameter");
    const clash = signV1({ ...KEY, host, params: { InstanceId: MAIN, Status: "2", "Status.0": "3" } });
    failed(await rawRequest(srv.port, { body: clash, headers: { "Content-Type": "application/x-www-form-urlencoded" } }), "InvalidParameter");
  });
  test("an unsupported Content-Type", async () => {
    failed(await rawRequest(srv.port, { body: "InstanceId=x", headers: { "Content-Type": "text/plain" } }), "InvalidParameter", /Content-Type/);
  });
  test("the server is still healthy after all of it", async () => {
    ok(await postJson(JSON.stringify({ InstanceId: MAIN, Limit: 1 })));
  });
});

test("an unexpected fault is InternalError with the cause in the log, not in the answer", async () => {
  const boom = defineAction({ name: "DescribeInstanceBackups", schema: {}, handle() { throw new Error("secret cause: disk on fire"); } });
  const pipeline = new Pipeline({
    services: srv.services, regions: new RegionRules(DEFAULT_REGIONS, "tencentcloudapi.com"), limiter: new RateLimiter(new MemoryBucketStore(), 0),
    actions: new Map([["DescribeInstanceBackups", boom as unknown as Action]]),
  });
  const body = Buffer.from("{}");
  const out = await pipeline.handle({ method: "POST", target: "/", headers: lower(signV3({ ...KEY, host, body })), body, remoteAddress: "127.0.0.1" });
  const parsed = JSON.parse(out.body) as { Response: { Error: { Code: string; Message: string } } };
  assert.equal(parsed.Response.Error.Code, "InternalError");
  assert.doesNotMatch(out.body, /disk on fire/);
  assert.match(String((out.fault as Error).message), /disk on fire/);
});

test("the log has one JSON line per request with RequestId, action, account, code and time, and never a secret", async () => {
  const r = await postJson(JSON.stringify({ InstanceId: MAIN, Limit: 1 }), { headers: { "X-TC-TraceId": "log-check" } });
  const lines = srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
  const line = lines.find((l) => l.msg === "request" && l.requestId === r.json.Response.RequestId);
  assert.ok(line, "a line for the request, keyed by its RequestId");
  assert.equal(line.action, "DescribeInstanceBackups");
  assert.equal(line.account, "1300000001");
  assert.equal(line.code, "OK");
  assert.equal(typeof line.ms, "number");
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
  assert.ok(srv.logs.every((l) => !l.includes(KEY.secretKey)));
});

function lower(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}
