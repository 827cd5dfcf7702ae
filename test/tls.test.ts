// HTTPS on the API port (--tls-cert / --tls-key): a test CA and a server certificate made with the openssl CLI,
// the official SDK with its default https:// protocol trusting that CA through httpProfile.agent, a backup
// whose DescribeBackupUrl link is https and downloads the captured bytes, the console's cookie marked Secure,
// /metrics over TLS; plain HTTP sent to the TLS port is closed without harming the server.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import https from "node:https";
import { RedisProcess, startRedis } from "./support/redis";
import { makePki, TestPki } from "./support/tls";
import { KEY, RedisClient, SdkClient, startTestServer, TestServer } from "./support/server";

function fetchBytes(url: string, ca: Buffer): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
    }).on("error", reject);
  });
}

describe("TLS", () => {
  const ID = "crs-tls00001";
  let pki: TestPki;
  let redis: RedisProcess;
  let srv: TestServer;
  let c: SdkClient;
  let agent: https.Agent;

  before(async () => {
    pki = makePki();
    redis = await startRedis(["--repl-diskless-sync-delay", "0"]);
    const conn = await redis.connect();
    for (let i = 0; i < 50; i++) await conn.command("SET", `key:${i}`, crypto.randomBytes(32).toString("hex"));
    conn.close();
    srv = await startTestServer({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
      Instances: [{ InstanceId: ID, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${redis.port}`, AutoBackup: false }],
    }, { tlsCert: pki.cert, tlsKey: pki.key, rateLimit: 0 });
    agent = new https.Agent({ ca: pki.ca, keepAlive: true });
    // The SDK's default protocol is https://; the agent makes it trust the test CA.
    c = new RedisClient({ credential: { secretId: KEY.secretId, secretKey: KEY.secretKey }, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${srv.port}`, agent } } });
  });

  after(async () => {
    agent?.destroy();
    await srv?.close();
    redis?.kill();
  });

  test("the SDK over https: a backup, an https download link that serves the captured bytes", async () => {
    assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const { TaskId } = await c.ManualBackupInstance({ InstanceId: ID });
    const done = await srv.services.runner.waitFor(TaskId!);
    assert.ok(done.ok);
    const [backup] = await srv.services.catalog.backupsOfInstance(ID);
    const r = await c.DescribeBackupUrl({ InstanceId: ID, BackupId: backup!.backupId });
    const url = r.BackupInfos![0]!.DownloadUrl!;
    assert.match(url, new RegExp(`^https://127\\.0\\.0\\.1:${srv.port}/download/`));
    assert.match(r.DownloadUrl![0]!, /^https:/);
    const file = await fetchBytes(url, pki.ca);
    assert.equal(file.status, 200);
    assert.equal(file.body.length, backup!.files[0]!.bytes);
    assert.equal(crypto.createHash("sha256").update(file.body).digest("hex"), backup!.files[0]!.sha256);
    assert.equal(file.body.subarray(0, 5).toString(), "REDIS");
  });

  test("a client that does not trust the certificate is refused by its own TLS check", async () => {
    const untrusted = new RedisClient({ credential: { secretId: KEY.secretId, secretKey: KEY.secretKey }, region: "ap-guangzhou", profile: { httpProfile: { endpoint: `127.0.0.1:${srv.port}` } } });
    await assert.rejects(untrusted.DescribeInstances({}), (err: Error) => /self[- ]signed|unable to verify|certificate/i.test(String(err.message ?? err)));
  });

  test("the console's session cookie is Secure and /metrics and /readyz answer over TLS", async () => {
    const login = await new Promise<{ status: number; cookie: string; body: string }>((resolve, reject) => {
      const body = JSON.stringify({ SecretId: KEY.secretId, SecretKey: KEY.secretKey });
      const req = https.request({
        host: "127.0.0.1", port: srv.port, path: "/console/api/login", method: "POST", ca: pki.ca,
        headers: { "Content-Type": "application/json", "X-CRS-Console": "1", Origin: `https://127.0.0.1:${srv.port}`, "Content-Length": Buffer.byteLength(body) },
      }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, cookie: String(res.headers["set-cookie"] ?? ""), body: text }));
      });
      req.on("error", reject);
      req.end(body);
    });
    assert.equal(login.status, 200, login.body);
    assert.match(login.cookie, /; Secure/);
    const metrics = await fetchBytes(`https://127.0.0.1:${srv.port}/metrics`, pki.ca);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body.toString(), /crs_backup_api_requests_total\{action="DescribeBackupUrl",code="OK"\} 1/);
    assert.equal((await fetchBytes(`https://127.0.0.1:${srv.port}/readyz`, pki.ca)).status, 200);
  });

  test("plain HTTP to the TLS port is closed cleanly and the server keeps serving", async () => {
    const outcome = await new Promise<string>((resolve) => {
      const req = http.request({ host: "127.0.0.1", port: srv.port, path: "/", method: "POST", headers: { "Content-Type": "application/json" } }, (res) => resolve(`answered ${res.statusCode}`));
      req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.setTimeout(5000, () => req.destroy(new Error("timeout")));
      req.end("{}");
    });
    assert.ok(["ECONNRESET", "EPIPE"].includes(outcome) || /socket hang up/.test(outcome), `plain HTTP got: ${outcome}`);
    const r = await c.DescribeInstances({});
    assert.equal(r.TotalCount, 1);
    assert.ok(srv.logs.some((l) => l.includes('"msg":"TLS handshake failed"')), "the refused handshake is logged (debug)");
  });
});
