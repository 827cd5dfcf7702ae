// Hardening of the HTTP layer: keep-alive that outlives a pausing SDK client, one Host normalisation for the
// endpoint rules, the JSON envelope for requests Node's parser refuses, and connection limits and timeouts.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { KEY, rawRequest, startTestServer, TestServer, failed, ok } from "./support/server";
import { Gateway, rawExchange, RawExchange, startGateway, UUID } from "./support/gateway";
import { signV1, signV3 } from "./support/sign";
import { waitFor } from "./support/redis";
import { FINANCE, MAIN, SEED } from "./fixtures";
import { SERVER_DEFAULTS } from "../src/gateway/server";
import { LIMITS } from "../src/gateway/pipeline";
import { parseHost } from "../src/gateway/host";
import { ApiError } from "../src/protocol/errors";

let srv: TestServer;
before(async () => {
  srv = await startTestServer(SEED, { rateLimit: 0 });
});
after(() => srv.close());

/** A JSON envelope with the given code, answered 200 with Connection: close. */
function envelope(x: RawExchange, code: string, message?: RegExp): void {
  assert.equal(x.status, 200, x.raw.slice(0, 200));
  assert.equal(x.headers["content-type"], "application/json");
  assert.ok(x.json, `not JSON: ${x.body.slice(0, 200)}`);
  assert.equal(x.json.Response.Error?.Code, code, x.body);
  assert.match(x.json.Response.RequestId, UUID);
  if (message) assert.match(x.json.Response.Error!.Message, message);
}

describe("keep-alive", () => {
  test("an SDK client that pauses 6 s between calls (event loop blocked) still gets its answer", async () => {
    const c = srv.client();
    await c.DescribeInstanceBackups({ InstanceId: MAIN, Limit: 1 });
    // Blocking, as a busy client does: no timers run here, so the pooled connection is reused afterwards.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 6000);
    const r = await c.DescribeInstanceBackups({ InstanceId: MAIN, Limit: 1 });
    assert.equal(r.BackupSet!.length, 1);
  });

  test("idle connections are kept 65 s by default, and the option is honoured", async () => {
    assert.equal(SERVER_DEFAULTS.keepAliveTimeoutMs, 65_000);
    assert.equal(srv.server.keepAliveTimeout, 65_000);
    const gw = await startGateway(srv.services, { server: { keepAliveTimeoutMs: 300 } });
    try {
      const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
      const head = Object.entries(signV3({ ...KEY, host: `127.0.0.1:${gw.port}`, body })).map(([k, v]) => `${k}: ${v}\r\n`).join("");
      const x = await rawExchange(gw.port, `POST / HTTP/1.1\r\n${head}Content-Length: ${body.length}\r\n\r\n${body}`, { waitMs: 5000 });
      assert.equal(x.json?.Response.Error, undefined, x.body);
      assert.ok(x.closedAfterMs !== undefined && x.closedAfterMs >= 250 && x.closedAfterMs < 3000, `closed after ${x.closedAfterMs} ms`);
    } finally {
      await gw.close();
    }
  });
});

describe("the Host is normalised once for the endpoint rules", () => {
  let host: string;
  before(() => {
    host = `127.0.0.1:${srv.port}`;
  });
  const post = (h: string, region: string, instanceId = MAIN) => {
    const body = JSON.stringify({ InstanceId: instanceId });
    return rawRequest(srv.port, { body, headers: signV3({ ...KEY, host: h, body, region, language: "en-US" }) });
  };
  const fsi = "redis.ap-shanghai-fsi.tencentcloudapi.com";

  test("a finance host in any spelling serves only its own region", async () => {
    for (const h of [`${fsi}.`, fsi.toUpperCase(), `${fsi}:443`, `${fsi}.:9000`, `Redis.AP-Shanghai-FSI.tencentcloudapi.com.`]) {
      failed(await post(h, "ap-guangzhou"), "UnsupportedRegion", /only `ap-shanghai-fsi`/);
      ok(await post(h, "ap-shanghai-fsi", FINANCE));
    }
    failed(await post(`redis.tencentcloudapi.com.`, "ap-shanghai-fsi", FINANCE), "UnsupportedRegion");
  });

  test("a malformed Host is InvalidParameter naming what is wrong", async () => {
    const bad: Array<[string, RegExp]> = [
      [`${fsi}:abc`, /port/], [`${fsi}:`, /port/], [`${fsi}:0`, /port/], [`${fsi}:70000`, /port/], [`${fsi}:443:1`, /port/],
      ["redis..tencentcloudapi.com", /labels/], [".redis.com", /labels/], ["a@b.com", /labels/], ["[::1", /IPv6/], ["[zz::1]:80", /IPv6/], ["[::1]x", /after the IPv6/],
    ];
    for (const [h, why] of bad) failed(await post(h, "ap-guangzhou"), "InvalidParameter", new RegExp(`Host.*malformed.*${why.source}`));
  });

  test("a URL sent as the Host (tccli given an endpoint URL) is refused in the request's language", async () => {
    const url = `http://127.0.0.1:${srv.port}`;
    const body = JSON.stringify({ InstanceId: MAIN });
    const v3 = (language?: string) => rawRequest(srv.port, { body, headers: signV3({ ...KEY, host: url, body, language }) });
    const en = await v3("en-US");
    failed(en, "InvalidParameter", /^Invalid parameter: the Host "http:\/\/127\.0\.0\.1:\d+" is malformed: .*not a URL/);
    assert.doesNotMatch(en.json.Response.Error!.Message, /[\u3000-\u9fff\uff00-\uffef]/, "a Chinese prefix under en-US");
    for (const zh of [await v3("zh-CN"), await v3()]) failed(zh, "InvalidParameter", /^参数错误：the Host .* is malformed: .*not a URL/);
    // v1 carries Language among its parameters: in the form body or the query string.
    const form = signV1({ ...KEY, host: url, params: { InstanceId: MAIN, Language: "en-US" } });
    const headers = { Host: url, "Content-Type": "application/x-www-form-urlencoded" };
    failed(await rawRequest(srv.port, { body: form, headers }), "InvalidParameter", /^Invalid parameter: the Host/);
    failed(await rawRequest(srv.port, { method: "GET", path: `/?${form}`, headers: { Host: url } }), "InvalidParameter", /^Invalid parameter: the Host/);
    const zhForm = signV1({ ...KEY, host: url, params: { InstanceId: MAIN, Language: "zh-CN" } });
    failed(await rawRequest(srv.port, { body: zhForm, headers }), "InvalidParameter", /^参数错误：the Host/);
  });

  test("an oversized body is refused in the language its headers ask for", async () => {
    const big = Buffer.alloc(LIMITS.v3Body + 1, 0x20);
    const headers = { ...signV3({ ...KEY, host: `127.0.0.1:${srv.port}`, body: "", language: "en-US" }), "Content-Length": String(big.length) };
    failed(await rawRequest(srv.port, { body: big, headers }), "RequestSizeLimitExceeded", /^The request size exceeds the limit: /);
  });

  test("plain hosts, IPv6 literals and the test host still work", async () => {
    ok(await post(host, "ap-guangzhou"));
    ok(await post("redis.tencentcloudapi.com", "ap-guangzhou"));
    ok(await post("[::1]:9000", "ap-guangzhou"));
  });

  test("parseHost: the rules' form and the signed spellings", () => {
    assert.deepEqual(parseHost("Redis.X.com.:9000"), { name: "redis.x.com", port: "9000", authority: "redis.x.com:9000", signed: ["redis.x.com.:9000", "redis.x.com."] });
    assert.deepEqual(parseHost(" [::1] "), { name: "[::1]", port: undefined, authority: "[::1]", signed: ["[::1]"] });
    assert.throws(() => parseHost(""), (e: unknown) => e instanceof ApiError && e.code === "MissingParameter");
    assert.throws(() => parseHost("x".repeat(300)), (e: unknown) => e instanceof ApiError && e.code === "InvalidParameter");
  });
});

describe("requests Node's parser refuses get the JSON envelope", () => {
  const target = (bytes: Buffer) => Buffer.concat([Buffer.from("GET /?InstanceId="), bytes, Buffer.from(" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")]);

  test("raw non-ASCII bytes in the request target, valid UTF-8 or not", async () => {
    for (const bytes of [Buffer.from("crs-é", "utf8"), Buffer.from([0xff, 0xfe]), Buffer.from("订单", "utf8")]) {
      const x = await rawExchange(srv.port, target(bytes));
      envelope(x, "InvalidParameter", /percent-encode/);
      assert.equal(x.headers.connection, "close");
    }
  });

  test("a missing Host (HTTP/1.1 and 1.0)", async () => {
    for (const version of ["1.1", "1.0"]) {
      const x = await rawExchange(srv.port, `POST / HTTP/${version}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, { untilAnswered: true });
      envelope(x, "MissingParameter", /Host/);
    }
  });

  test("headers beyond the parser's limit", async () => {
    const x = await rawExchange(srv.port, `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"a".repeat(70 * 1024)}\r\n\r\n`);
    envelope(x, "RequestSizeLimitExceeded");
  });

  test("bad header names, bad methods, conflicting lengths, bad chunking, bad versions", async () => {
    const requests = [
      "POST / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
      "GARBAGE\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX: a\u0001b\r\n\r\n",
    ];
    for (const r of requests) {
      const x = await rawExchange(srv.port, r);
      envelope(x, "InvalidParameter", /malformed|Content-Length|Transfer-Encoding/);
      assert.equal(x.headers.connection, "close");
      assert.ok(x.closedAfterMs !== undefined, "the connection was left open");
    }
  });

  test("after all of it, the server still answers", async () => {
    const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
    ok(await rawRequest(srv.port, { body, headers: signV3({ ...KEY, host: `127.0.0.1:${srv.port}`, body }) }));
  });
});

describe("a body over the limit is answered, then read to its end and dropped", () => {
  const host = () => `127.0.0.1:${srv.port}`;
  /** Runs the client in its own process, as a real one is. */
  const bigBodyClient = (mode: string) => new Promise<{ code?: string; message?: string; connection?: string; error?: string }>((resolve, reject) => {
    execFile(process.execPath, [path.join(__dirname, "support", "big-body-client.js"), String(srv.port), mode, KEY.secretId, KEY.secretKey, MAIN],
      { timeout: 60_000 }, (err, stdout) => {
        if (err) return reject(err);
        resolve(JSON.parse(stdout) as { code?: string });
      });
  });

  test("an 11 MB DescribeInstanceBackups body written whole by node:http (another process), with Content-Length or chunked", async () => {
    for (const mode of ["http-length", "http-chunked", "http-length"]) {
      const r = await bigBodyClient(mode);
      assert.equal(r.code, "RequestSizeLimitExceeded", `${mode}: ${JSON.stringify(r)}`);
      assert.match(r.message!, /at most 10485760 bytes/);
      assert.equal(r.connection, "close");
    }
    ok(await rawRequest(srv.port, { body: "{}", headers: signV3({ ...KEY, host: host(), body: "{}", action: "DescribeInstances" }) }));
  });

  test("the official Node SDK gets the envelope, not ECONNRESET", async () => {
    const r = await bigBodyClient("sdk");
    assert.equal(r.code, "RequestSizeLimitExceeded", JSON.stringify(r));
    assert.match(r.message!, /exceeds the limit/);
  });

  test("the rest of a refused body is discarded within a bound of bytes and of time, then the connection is closed", async () => {
    assert.equal(SERVER_DEFAULTS.discardMaxBytes, 64 * 1024 * 1024);
    assert.equal(SERVER_DEFAULTS.discardMaxMs, 10_000);
    const head = (length: number) => {
      const h = signV3({ ...KEY, host: host(), body: "" });
      return `POST / HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join("")}Content-Length: ${length}\r\n\r\n`;
    };
    const gw = await startGateway(srv.services, { server: { discardMaxBytes: 1024 * 1024, discardMaxMs: 300 } });
    try {
      // A client that declares 20 MB, sends a little and stalls: answered at once, cut after the time bound.
      const stalled = await rawExchange(gw.port, head(20 * 1024 * 1024) + "{", { waitMs: 5000 });
      envelope(stalled, "RequestSizeLimitExceeded");
      assert.ok(stalled.closedAfterMs !== undefined, "a stalled refused body kept its connection open");
      // A client that keeps sending far beyond the byte bound: cut long before it is done (or any time bound).
      const gwBytes = await startGateway(srv.services, { server: { discardMaxBytes: 1024 * 1024, discardMaxMs: 60_000 } });
      try {
        let sent = 0;
        const flood = await rawExchange(gwBytes.port, head(200 * 1024 * 1024), {
          waitMs: 10_000,
          then: (socket) => {
            const chunk = Buffer.alloc(256 * 1024, 0x61);
            const pump = () => {
              while (!socket.destroyed && sent < 200 * 1024 * 1024) {
                sent += chunk.length;
                if (!socket.write(chunk)) return void socket.once("drain", pump);
              }
            };
            pump();
          },
        });
        assert.ok(flood.closedAfterMs !== undefined, "the connection stayed open beyond the byte bound");
        assert.ok(sent < 200 * 1024 * 1024, `the whole body was taken (${sent} bytes)`);
      } finally {
        await gwBytes.close();
      }
    } finally {
      await gw.close();
    }
  });
});

describe("connection limits and timeouts", () => {
  test("API-server timeouts and caps by default", () => {
    assert.deepEqual({ ...SERVER_DEFAULTS }, {
      keepAliveTimeoutMs: 65_000, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, maxConnections: 1024, maxConnectionsPerAddress: 256,
      discardMaxBytes: 64 * 1024 * 1024, discardMaxMs: 10_000,
    });
    assert.equal(srv.server.headersTimeout, 10_000);
    assert.equal(srv.server.requestTimeout, 60_000);
    assert.equal(srv.server.maxConnections, 1024);
  });

  test("200 slow clients (dribbling headers or body) are cut after the timeout, while others are answered at once", async () => {
    const gw: Gateway = await startGateway(srv.services, { server: { headersTimeoutMs: 1000, requestTimeoutMs: 2000, maxConnections: 400, maxConnectionsPerAddress: 300 } });
    const timers: NodeJS.Timeout[] = [];
    try {
      const dribble = (s: net.Socket) => {
        const t = setInterval(() => s.writable && s.write("a"), 100);
        timers.push(t);
        s.once("close", () => clearInterval(t));
      };
      const started = Date.now();
      const slowHeaders = Array.from({ length: 100 }, () => rawExchange(gw.port, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", { waitMs: 15_000, then: dribble }));
      const slowBodies = Array.from({ length: 100 }, () =>
        rawExchange(gw.port, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", { waitMs: 15_000, then: dribble }));
      // Wait until the slow ones are all connected.
      const connections = () => new Promise<number>((resolve, reject) => gw.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
      await waitFor("the 200 slow clients to connect", async () => (await connections()) >= 200 || undefined, 10_000, 20);
      const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
      const host = `127.0.0.1:${gw.port}`;
      for (let round = 0; round < 3; round++) {
        const t0 = Date.now();
        const answers = await Promise.all(Array.from({ length: 10 }, () => rawRequest(gw.port, { body, headers: signV3({ ...KEY, host, body }) })));
        for (const a of answers) ok(a);
        assert.ok(Date.now() - t0 < 2000, `10 normal requests took ${Date.now() - t0} ms`);
      }
      const cut = await Promise.all([...slowHeaders, ...slowBodies]);
      for (const [i, x] of cut.entries()) {
        assert.ok(x.closedAfterMs !== undefined, `slow client ${i} was not cut`);
        envelope(x, "InvalidRequest", /not received in time/);
      }
      const slowest = Math.max(...cut.map((x) => x.closedAfterMs!));
      const headerCut = Math.max(...cut.slice(0, 100).map((x) => x.closedAfterMs!));
      assert.ok(headerCut < 1000 + 2000, `dribbling headers were cut after ${headerCut} ms`);
      assert.ok(slowest < 2000 + 2500, `dribbling bodies were cut after ${slowest} ms`);
      assert.ok(Math.min(...cut.slice(0, 100).map((x) => x.closedAfterMs!)) >= 900);
      assert.ok(Date.now() - started < 8000);
    } finally {
      timers.forEach(clearInterval);
      await gw.close();
    }
  });

  test("connections over the cap, in total or per address, are closed at once; other clients are served", async () => {
    const gw = await startGateway(srv.services, { server: { maxConnections: 12, maxConnectionsPerAddress: 5 } });
    const held: net.Socket[] = [];
    const open = (localAddress: string) => new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ port: gw.port, host: "127.0.0.1", localAddress }, () => resolve(s));
      s.on("error", reject);
      held.push(s);
    });
    const closedSoon = (s: net.Socket) => new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 1000);
      s.once("close", () => {
        clearTimeout(t);
        resolve(true);
      });
      s.on("error", () => undefined);
    });
    try {
      for (let i = 0; i < 5; i++) await open("127.0.0.2");
      const sixth = await open("127.0.0.2");
      assert.equal(await closedSoon(sixth), true, "a 6th connection from one address stayed open");
      // Another address is served meanwhile.
      const body = JSON.stringify({ InstanceId: MAIN, Limit: 1 });
      ok(await rawRequest(gw.port, { body, headers: signV3({ ...KEY, host: `127.0.0.1:${gw.port}`, body }) }));
      // Fill the server up to its total cap (the request above may hold a keep-alive connection).
      const count = () => new Promise<number>((resolve, reject) => gw.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
      for (let i = 0; (await count()) < 12; i++) await open(`127.0.0.${3 + Math.floor(i / 5)}`);
      const over = await open("127.0.0.9");
      assert.equal(await closedSoon(over), true, "a connection over the total cap stayed open");
      // Closing held connections frees their places.
      const before = await count();
      for (const s of held.splice(0, 5)) s.destroy();
      await waitFor("the server to see them closed", async () => (await count()) <= before - 5 || undefined, 5_000, 10);
      const again = await open("127.0.0.2");
      assert.equal(await closedSoon(again), false);
    } finally {
      held.forEach((s) => s.destroy());
      await gw.close();
    }
  });
});
