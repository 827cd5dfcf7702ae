// A bounded, seeded fuzz run against one server: malformed requests at every layer (raw bytes, methods,
// targets, headers, bodies) and correctly signed requests with fuzzed parameters for every action. Every
// answer must be the JSON envelope (HTTP 200, application/json, Response.RequestId), never InternalError,
// and the server must not crash. FUZZ_SEED=<n> replays a run; FUZZ_N=<n> changes its size.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { KEY, startTestServer, TestServer } from "./support/server";
import { Gateway, rawExchange, startGateway, UUID } from "./support/gateway";
import { signV1, signV3 } from "./support/sign";
import { BACKUPS, FINANCE, FOREIGN, LIMITED, MAIN, OTHER, SECOND, SEED, SHANGHAI, TEMP } from "./fixtures";
import { actions } from "../src/actions";
import { createLogger, memoryDestination } from "../src/log";
import type { FieldSpec } from "../src/protocol/schema";

const SEED_VALUE = Number(process.env.FUZZ_SEED ?? 20240611);
const TOTAL = Number(process.env.FUZZ_N ?? 20_000);
const CONCURRENCY = 16;

/** mulberry32: small, fast and good enough to vary inputs reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  text(max: number, alphabet = "abcXYZ019-_.:/?&=%+ \"'\\{}[],é订\u0000\t"): string {
    const n = this.int(max + 1);
    let s = "";
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }
}

/** A JSON fragment written as is (huge numbers, duplicate keys, raw escapes). */
class Raw {
  constructor(readonly json: string) {}
}
type Val = string | number | boolean | null | Raw | Val[] | { [k: string]: Val };

function toJson(v: Val): string {
  if (v instanceof Raw) return v.json;
  if (Array.isArray(v)) return `[${v.map(toJson).join(",")}]`;
  if (v !== null && typeof v === "object") return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${toJson(x)}`).join(",")}}`;
  return JSON.stringify(v);
}

/** `a.0.b=x` pairs for a query or form, as the SDKs flatten. */
function flatten(v: Val, prefix: string, out: Array<[string, string]>): void {
  if (v instanceof Raw) out.push([prefix, v.json]);
  else if (Array.isArray(v)) v.forEach((x, i) => flatten(x, `${prefix}.${i}`, out));
  else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  else out.push([prefix, v === null ? "" : String(v)]);
}

const INSTANCES = [MAIN, SECOND, SHANGHAI, FINANCE, FOREIGN, "crs-zzzzzzzz"];
const REGIONS = ["ap-guangzhou", "ap-guangzhou", "ap-guangzhou", "ap-guangzhou", "ap-shanghai", "ap-shanghai-fsi", "xx-nowhere", ""];
const CREDENTIALS = [KEY, KEY, KEY, OTHER, LIMITED, TEMP];

function fuzzValue(g: Gen, depth = 0): Val {
  switch (g.int(14)) {
    case 0: return g.text(20);
    case 1: return "x".repeat(g.pick([0, 65, 129, 513, 1025, 5000]));
    case 2: return g.int(2000) - 1000;
    case 3: return new Raw(g.pick(["1e400", "-0", "1.5", "123456789012345678901234567890", "9223372036854775808", "-9223372036854775809", "0.0000001"]));
    case 4: return g.chance(0.5);
    case 5: return null;
    case 6: return depth > 3 ? [] : Array.from({ length: g.int(4) }, () => fuzzValue(g, depth + 1));
    case 7: return depth > 3 ? {} : { [g.text(6)]: fuzzValue(g, depth + 1) };
    case 8: return new Raw(`${"[".repeat(40)}${"]".repeat(40)}`);
    case 9: return new Raw(`"\\ud800${g.text(3)}"`);
    case 10: return g.pick(INSTANCES);
    case 11: return g.pick(BACKUPS).BackupId;
    case 12: return String(g.int(200));
    default: return g.pick(["Monday", "01:00-02:00", "2024-03-01 10:00:00", "NoLimit", "Customize", "In", "10.0.0.0/8", "createtime"]);
  }
}

/** A plausible value for a field, or (sometimes) a fuzzed one. */
function valueFor(g: Gen, name: string, spec: FieldSpec): Val {
  if (g.chance(0.12)) return fuzzValue(g);
  switch (spec.type) {
    case "string":
      if (name === "InstanceId") return g.pick(INSTANCES);
      if (name === "BackupId") return g.pick(BACKUPS).BackupId;
      if (name === "TimePeriod") return g.pick(["01:00-02:00", "23:00-00:00", "1:00-2:00"]);
      if (/Time$/.test(name)) return g.pick(["2024-03-01 10:00:00", "2024-02-30 10:00:00", "now"]);
      if (name === "LimitType") return g.pick(["NoLimit", "LimitOnlyIntranet", "Customize", "Open"]);
      if (/Symbol$/.test(name)) return g.pick(["In", "NotIn", "Out"]);
      return g.text(spec.maxLength ? Math.min(spec.maxLength, 30) : 30);
    case "integer":
      return g.int(((spec.max ?? 100) - (spec.min ?? 0)) + 3) + (spec.min ?? 0) - 1;
    case "boolean":
      return g.chance(0.5);
    case "array":
      return Array.from({ length: g.int(4) }, () => valueFor(g, `${name}.N`, spec.items));
    case "object": {
      const o: Record<string, Val> = {};
      for (const [k, f] of Object.entries(spec.fields)) if (g.chance(0.7)) o[k] = valueFor(g, k, f);
      return o;
    }
  }
}

function paramsFor(g: Gen, actionName: string): Record<string, Val> {
  const action = actions.get(actionName);
  // Without a prototype, so `__proto__` is an ordinary key like the others.
  const out = Object.create(null) as Record<string, Val>;
  if (action) {
    for (const [name, spec] of Object.entries(action.schema)) {
      if (spec.required ? g.chance(0.95) : g.chance(0.4)) out[name] = valueFor(g, name, spec);
    }
  }
  if (g.chance(0.1)) out[g.pick(["Unknown", "Limit", "InstanceId", "Action", "Region", "__proto__", "constructor", "a.b", "0"])] = fuzzValue(g);
  return out;
}

interface Planned {
  kind: string;
  /** The action a signed request was signed for. */
  action?: string;
  /** Sent with an http.Agent. */
  http?: { method: string; path: string; headers: Record<string, string>; body?: Buffer | string };
  /** Sent on a raw socket. */
  raw?: Buffer | string;
}

const ACTION_NAMES = [...actions.keys()];

function plan(g: Gen, port: number): Planned {
  const host = g.pick([`127.0.0.1:${port}`, `127.0.0.1:${port}`, "redis.tencentcloudapi.com", "redis.ap-shanghai-fsi.tencentcloudapi.com", "redis.ap-guangzhou.tencentcloudapi.com.", "[::1]:80"]);
  const roll = g.r();
  if (roll < 0.5) return signed(g, host, port);
  if (roll < 0.8) return malformedHttp(g, host);
  return rawBytes(g, port);
}

/** Correctly signed (TC3 or v1, JSON, form or query) over fuzzed parameters of a random action. */
function signed(g: Gen, anyHost: string, port: number): Planned {
  const host = g.chance(0.6) ? `127.0.0.1:${port}` : anyHost;
  const cred = g.pick(CREDENTIALS);
  const action = g.chance(0.95) ? g.pick(ACTION_NAMES) : g.pick(["NoSuchAction", "describeinstances", ""]);
  const region = g.pick(REGIONS);
  const params = paramsFor(g, action);
  const style = g.int(4);
  const token = "token" in cred ? (cred as typeof TEMP).token : undefined;
  if (style === 0 || style === 1) {
    // TC3 POST JSON, sometimes with a tampered header afterwards.
    let body = toJson(params);
    if (g.chance(0.05)) body = body.replace(/^\{/, `{"InstanceId":"${MAIN}",`); // a duplicate key
    const headers = signV3({ ...cred, host, body, action, region, token, language: g.pick([undefined, "en-US", "zh-CN"]) });
    if (g.chance(0.1)) headers[g.pick(["X-TC-Timestamp", "X-TC-Action", "X-TC-Region", "Authorization", "X-TC-Version", "Content-Type"])] = g.text(12, "abc019 ,=/;-");
    return { kind: "signed-tc3-json", action, http: { method: "POST", path: "/", headers, body } };
  }
  const pairs: Array<[string, string]> = [];
  flatten(params as Val, "", pairs);
  if (style === 2) {
    // TC3 GET with the parameters in the query.
    const query = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
    const headers = signV3({ ...cred, host, method: "GET", query, action, region, token });
    return { kind: "signed-tc3-get", action, http: { method: "GET", path: `/?${query}`, headers } };
  }
  // v1, form body or query, HmacSHA1 or HmacSHA256.
  const method = g.pick(["GET", "POST"] as const);
  const v1Params: Record<string, string> = { Nonce: String(g.int(1e9)) };
  for (const [k, v] of pairs) v1Params[k] = v;
  if (token) v1Params.Token = token;
  const encoded = signV1({ ...cred, host, method, params: v1Params, action, region, signatureMethod: g.pick([undefined, "HmacSHA1", "HmacSHA256"] as const) });
  return method === "GET"
    ? { kind: "signed-v1-get", action, http: { method, path: `/?${encoded}`, headers: { Host: host } } }
    : { kind: "signed-v1-form", action, http: { method, path: "/", headers: { Host: host, "Content-Type": "application/x-www-form-urlencoded" }, body: encoded } };
}

/** What an HTTP client can send, wrong at some layer: method, target, headers, body. */
function malformedHttp(g: Gen, host: string): Planned {
  const method = g.pick(["GET", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
  const path = g.pick(["/", "/", "/?", `/?${g.text(30, "ab=&.%0Z9+")}`, "/?a=%FF%FE", "/?a=%E4%ZZ", "//", "/v2/x", "/?Action=DescribeInstances&Action=x",
    `http://${host}/`, `/?InstanceId=${"x".repeat(g.pick([10, 40000]))}`]);
  const headers: Record<string, string> = { Host: host };
  if (g.chance(0.8)) headers["Content-Type"] = g.pick(["application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", ""]);
  if (g.chance(0.6)) {
    headers.Authorization = g.pick([
      "TC3-HMAC-SHA256", "Basic abc", `TC3-HMAC-SHA256 Credential=${KEY.secretId}/2024-01-01/redis/tc3_request, SignedHeaders=content-type;host, Signature=${"0".repeat(64)}`,
      `TC3-HMAC-SHA256 Credential=${g.text(10, "AKID/x")}, SignedHeaders=${g.text(10, "a;-")}, Signature=${g.text(64, "0af")}`,
      `TC3-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=zz`, g.text(60, "TC3-HMAC-SHA256 =,;/abc"),
    ]);
  }
  for (const h of ["X-TC-Action", "X-TC-Version", "X-TC-Region", "X-TC-Timestamp", "X-TC-Language", "X-TC-Token", "X-TC-Content-SHA256", "X-TC-TraceId"]) {
    if (g.chance(0.3)) headers[h] = g.pick(["DescribeInstances", "2018-04-12", "ap-guangzhou", String(Math.floor(Date.now() / 1000)), "en-US", "UNSIGNED-PAYLOAD", "", g.text(16, "abc019-_. ")]);
  }
  if (g.chance(0.2)) headers.Host = g.pick(["", "a..b", "x:abc", "x:99999", "[::1", "redis.tencentcloudapi.com.:0", "ex ample"]);
  let body: Buffer | string | undefined;
  if (method !== "GET" && g.chance(0.8)) {
    body = g.pick<() => Buffer | string>([
      () => toJson(paramsFor(g, g.pick(ACTION_NAMES))),
      () => `{"InstanceId": "${MAIN}",`,
      () => `{"a":1,"a":2}`,
      () => `${"[".repeat(g.pick([5, 33, 1000]))}`,
      () => `{"Limit": ${"9".repeat(g.int(400))}}`,
      () => Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xc3, 0x28, 0x22, 0x7d]),
      () => `InstanceId=${MAIN}&Limit=%ZZ&Status.0=1&Status.x=2`,
      () => `a=${"%E4%B8".repeat(3)}&b=%C3%28`,
      () => g.text(200),
      () => "",
      () => JSON.stringify({ InstanceId: MAIN, Limit: 1 }),
    ])();
  }
  return { kind: "malformed-http", http: { method, path, headers, body } };
}

/** Bytes Node's HTTP parser itself may refuse. */
function rawBytes(g: Gen, port: number): Planned {
  const host = `127.0.0.1:${port}`;
  const pick = g.int(12);
  const parts: Array<string | Buffer> = (() => {
    switch (pick) {
      case 0: return ["GET /?InstanceId=", Buffer.from(g.pick(["é", "订单", "\u00ff"]), g.chance(0.5) ? "utf8" : "latin1"), ` HTTP/1.1\r\nHost: ${host}\r\n\r\n`];
      case 1: return [`POST / HTTP/1.1\r\nHost: ${host}\r\n${g.text(8, "ab c:")}: x\r\n\r\n`];
      case 2: return [`${g.pick(["GARBAGE", "G ET", "GET", "POST"])} ${g.pick(["/", "*", "", "/ /"])} HTTP/${g.pick(["1.1", "1.0", "9.9", "x"])}\r\nHost: ${host}\r\n\r\n`];
      case 3: return [`POST / HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${g.pick(["abc", "-1", "5, 6", "99999999999999999999"])}\r\n\r\n`];
      case 4: return [`POST / HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n${g.pick(["zz\r\n", "2\r\n{}\r\n0\r\n\r\n", "1;" + "x".repeat(20000) + "\r\n"])}`];
      case 5: return [`POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`];
      case 6: return [`GET / HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${"a".repeat(g.pick([1000, 70000]))}\r\n\r\n`];
      case 7: return [`GET / HTTP/1.1\r\nHost: ${host}\r\nX: a`, Buffer.from([g.pick([0x00, 0x01, 0x7f, 0x0b])]), "b\r\n\r\n"];
      case 8: return [`POST / HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello`];
      case 9: return [`GET /?a=b HTTP/1.1\r\nHost: ${g.pick(["", "a b", "x:y:z", "\u00e9.com"])}\r\n\r\n`];
      case 10: return [`GET / HTTP/1.1\r\nHost: ${host}\r\nHost: other\r\n\r\n`];
      default: return [`POST / HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n`, Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x20])];
    }
  })();
  return { kind: `raw-${pick}`, raw: Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : p))) };
}

interface Answer {
  status: number;
  contentType?: string;
  body: string;
}

function sendHttp(port: number, agent: http.Agent, p: NonNullable<Planned["http"]>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: p.method, path: p.path, headers: p.headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, contentType: res.headers["content-type"], body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(p.body);
  });
}

let srv: TestServer;
let gw: Gateway;
const logged = memoryDestination();
/** Log lines of internal errors and pipeline failures (there must be none). */
const faults = { lines: () => logged.lines.filter((l) => /internal error|pipeline failure/.test(l)) };
before(async () => {
  srv = await startTestServer(SEED, { rateLimit: 0 });
  gw = await startGateway(srv.services, {
    pipeline: { authFailures: { burst: 0, perSecond: 0 } },
    server: { logger: createLogger({ destination: logged.stream, pretty: false }) },
  });
});
after(async () => {
  await gw.close();
  await srv.close();
});

test(`fuzz: ${TOTAL} mixed malformed and signed-but-fuzzed requests (seed ${SEED_VALUE})`, async (t) => {
  const g = new Gen(prng(SEED_VALUE));
  const plans = Array.from({ length: TOTAL }, () => plan(g, gw.port));
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const kinds = new Map<string, number>();
  const codes = new Map<string, number>();
  const problems: string[] = [];
  const handled = new Set<string>();
  let next = 0;
  const started = Date.now();
  const check = (p: Planned, i: number, a: Answer) => {
    const where = `request ${i} (${p.kind}, seed ${SEED_VALUE}): ${JSON.stringify(p.http ?? p.raw?.toString("latin1")).slice(0, 300)}`;
    let code = "?";
    try {
      assert.equal(a.status, 200, `status ${a.status}`);
      assert.equal(a.contentType, "application/json");
      const json = JSON.parse(a.body) as { Response?: { RequestId?: string; Error?: { Code?: string } } };
      assert.ok(json.Response, "no Response");
      assert.match(json.Response.RequestId ?? "", UUID);
      code = json.Response.Error?.Code ?? "OK";
      assert.notEqual(code, "InternalError");
    } catch (err) {
      problems.push(`${where}\n  answer ${a.status} ${a.body.slice(0, 200)}\n  ${(err as Error).message}`);
    }
    kinds.set(p.kind.replace(/-\d+$/, ""), (kinds.get(p.kind.replace(/-\d+$/, "")) ?? 0) + 1);
    codes.set(code, (codes.get(code) ?? 0) + 1);
    // A handler's own answers: success or an action-specific code (`Family.Detail`) other than the gates'.
    if (p.action && (code === "OK" || (code.includes(".") && !/^(AuthFailure|UnauthorizedOperation|RequestLimitExceeded)\./.test(code)))) handled.add(p.action);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < plans.length && problems.length < 20) {
      const i = next++;
      const p = plans[i]!;
      if (p.raw) {
        const x = await rawExchange(gw.port, p.raw, { waitMs: 5000, untilAnswered: true });
        check(p, i, { status: x.status, contentType: x.headers["content-type"], body: x.body });
      } else {
        check(p, i, await sendHttp(gw.port, agent, p.http!).catch((err: Error) => ({ status: 0, body: `transport error: ${err.message}` })));
      }
    }
  }));
  agent.destroy();
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`seed ${SEED_VALUE}: ${TOTAL} requests in ${seconds.toFixed(1)} s; kinds ${JSON.stringify(Object.fromEntries(kinds))}`);
  t.diagnostic(`codes ${JSON.stringify(Object.fromEntries([...codes].sort((a, b) => b[1] - a[1])))}`);
  assert.deepEqual(problems, [], `seed ${SEED_VALUE}`);
  assert.deepEqual(faults.lines(), [], `seed ${SEED_VALUE}`);
  // The run reached every action's handler, not only the gates in front of them.
  assert.ok((codes.get("OK") ?? 0) > TOTAL * 0.02, `only ${codes.get("OK") ?? 0} successes (seed ${SEED_VALUE})`);
  assert.deepEqual(ACTION_NAMES.filter((a) => !handled.has(a)), [], `seed ${SEED_VALUE}`);
  // And the server is alive.
  const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
  const alive = await sendHttp(gw.port, new http.Agent(), { method: "POST", path: "/", headers: signV3({ ...KEY, host: `127.0.0.1:${gw.port}`, body }), body });
  assert.equal((JSON.parse(alive.body) as { Response: { Error?: unknown } }).Response.Error, undefined);
});
