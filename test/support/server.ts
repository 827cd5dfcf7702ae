// A real crs-backup server for tests: its own temporary data directory, a fixture file, a free port.
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import * as tencentcloud from "tencentcloud-sdk-nodejs";
import { RunningServer, startServer, ServeConfig, DEFAULTS } from "../../src/app";
import { createLogger, memoryDestination } from "../../src/log";
import { waitFor } from "./redis";

export const RedisClient = tencentcloud.redis.v20180412.Client;
export type SdkClient = InstanceType<typeof RedisClient>;

export interface TestServer extends RunningServer {
  dataDir: string;
  logs: string[];
  client(opts?: { secretId?: string; secretKey?: string; token?: string; region?: string; signMethod?: "TC3-HMAC-SHA256" | "HmacSHA1" | "HmacSHA256"; reqMethod?: "POST" | "GET"; language?: "en-US" | "zh-CN"; endpoint?: string }): SdkClient;
}

export const KEY = { secretId: "AKIDtestdefault000000000000000001", secretKey: "testsecretkey0000000000000000001", account: "1300000001" };

export type TestKey = typeof KEY;

/** A seed's Credentials: one for each key, in its account. */
export function seedCredentials(...keys: TestKey[]): object[] {
  return keys.map((k) => ({ SecretId: k.secretId, SecretKey: k.secretKey, Account: k.account }));
}

/** A seed's instance in ap-guangzhou of the key's account, backed by the local Redis on `port` (none: catalogue only). */
export function seedInstance(id: string, name: string, key: TestKey, port?: number): object {
  return { InstanceId: id, InstanceName: name, Region: "ap-guangzhou", Account: key.account, ...(port !== undefined ? { Redis: `redis://127.0.0.1:${port}` } : {}) };
}

/** Starts a server on a new temporary directory, or again on `reuse` (a previous TestServer's dataDir). */
export async function startTestServer(seed: object, over: Partial<ServeConfig> = {}, reuse?: string): Promise<TestServer> {
  const dataDir = reuse ?? fs.mkdtempSync(path.join(os.tmpdir(), "crs-test-"));
  const seedFile = path.join(dataDir, "seed.json");
  fs.writeFileSync(seedFile, JSON.stringify(seed));
  // Log lines (JSON) kept for the tests to read.
  const { stream, lines: logs } = memoryDestination();
  const logger = createLogger({ destination: stream, level: "debug", pretty: false });
  // No automatic backups unless a test asks for them (`autoBackups: true`): a fixture's instances get the default
  // schedule (every day 00:00-01:00 in the server's zone, 16:00-17:00 UTC), and on the wall clock that window is
  // open for an hour a day, when its start-up pass would back every instance up under the test.
  const running = await startServer({ ...DEFAULTS, dataDir: path.join(dataDir, "data"), port: 0, seed: seedFile, logger, leaseMs: 5_000, pollMs: 200, autoBackups: false, ...over }, {});
  return {
    ...running,
    dataDir,
    logs,
    client(o = {}) {
      return new RedisClient({
        credential: { secretId: o.secretId ?? KEY.secretId, secretKey: o.secretKey ?? KEY.secretKey, token: o.token },
        region: o.region ?? "ap-guangzhou",
        profile: {
          signMethod: o.signMethod ?? "TC3-HMAC-SHA256",
          language: o.language,
          httpProfile: { endpoint: o.endpoint ?? `127.0.0.1:${running.port}`, protocol: "http://", reqMethod: o.reqMethod ?? "POST" },
        },
      });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: { Response: Record<string, unknown> & { Error?: { Code: string; Message: string }; RequestId: string } };
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A raw API answer that must be the Tencent error envelope: 200, JSON, the code, a RequestId, the message. */
export function failed(r: RawResponse, code: string, message?: RegExp): void {
  assert.equal(r.status, 200);
  assert.equal(r.headers["content-type"], "application/json");
  assert.equal(r.json.Response.Error?.Code, code, `got ${JSON.stringify(r.json.Response).slice(0, 300)}`);
  assert.match(r.json.Response.RequestId, UUID);
  if (message) assert.match(r.json.Response.Error!.Message, message);
}

/** A raw API answer that must succeed: its Response. */
export function ok(r: RawResponse): Record<string, unknown> {
  assert.equal(r.status, 200);
  assert.equal(r.json.Response.Error, undefined, `unexpected error ${JSON.stringify(r.json.Response.Error)}`);
  return r.json.Response;
}

/** Sends bytes exactly as given (for what the SDK cannot send). */
export function rawRequest(port: number, opts: { method?: string; path?: string; headers?: Record<string, string | number>; body?: Buffer | string }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: opts.method ?? "POST", path: opts.path ?? "/", headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: RawResponse["json"];
        try {
          json = JSON.parse(text) as RawResponse["json"];
        } catch {
          return reject(new Error(`not JSON (status ${res.statusCode}): ${text.slice(0, 200)}`));
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

export async function expectSdkError(p: Promise<unknown>, code: string): Promise<{ code: string; message: string; requestId: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code?: string; message: string; requestId: string };
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
    return e as { code: string; message: string; requestId: string };
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}

export type TaskInfo = Awaited<ReturnType<SdkClient["DescribeTaskInfo"]>>;

/**
 * Polls DescribeTaskInfo the way Terraform does until the task has ended (anything but preparing or running),
 * within `timeoutMs`; the one way the tests wait for a task.
 */
export async function waitForTask(client: SdkClient, taskId: number, timeoutMs = 60_000): Promise<TaskInfo> {
  return waitFor(`task ${taskId} to end`, async () => {
    const t = await client.DescribeTaskInfo({ TaskId: taskId });
    return t.Status === "preparing" || t.Status === "running" ? undefined : t;
  }, timeoutMs, 50);
}
