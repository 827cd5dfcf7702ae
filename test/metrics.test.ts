// GET /metrics, /healthz and /readyz against a real server: SDK traffic (successes, an error, a rate-limited
// call), a real backup of a live redis-server and a failed one, then the exposition parsed strictly and every
// counter checked to have moved by exactly what the test did. Readiness follows a PostgreSQL catalogue that
// stops accepting connections and comes back. The shipped Grafana dashboard and alert rules are checked to use
// only metric names the server exposes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import pg from "pg";
import YAML from "yaml";
import { freshDatabase, PG_ADMIN, TestDatabase } from "./support/postgres";
import { parsePrometheus, Exposition } from "./support/prom";
import { freePort, RedisProcess, startRedis, waitFor } from "./support/redis";
import { expectSdkError, KEY, RedisClient, SdkClient, startTestServer, TestServer } from "./support/server";
import { scheduleIntervalSeconds } from "../src/metrics/metrics";
import { failureReason } from "../src/metrics/reasons";
import { CaptureError } from "../src/redis/capture/capture";
import { RestoreError } from "../src/redis/restore/errors";
import { BlobIntegrityError } from "../src/storage/integrity";

const DOCS = path.join(__dirname, "..", "..", "docs");

function get(port: number, p: string): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: p }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? ""), text: Buffer.concat(chunks).toString("utf8") }));
    }).on("error", reject);
  });
}

async function scrape(port: number): Promise<Exposition> {
  const r = await get(port, "/metrics");
  assert.equal(r.status, 200, r.text);
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(r.text);
}

describe("metrics after real traffic and a real backup", () => {
  const ID = { live: "crs-mt000001", gone: "crs-mt000002", fixture: "crs-mt000003" };
  let redis: RedisProcess;
  let srv: TestServer;
  let c: SdkClient;
  let before0: Exposition;

  before(async () => {
    // Diskless replication without the default 5 s wait for more replicas: the backup starts at once.
    redis = await startRedis(["--repl-diskless-sync-delay", "0"]);
    const conn = await redis.connect();
    for (let i = 0; i < 100; i++) await conn.command("SET", `k${i}`, `${i}`.repeat(20));
    conn.close();
    const closedPort = await freePort();
    srv = await startTestServer({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
      Instances: [
        { InstanceId: ID.live, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${redis.port}` },
        { InstanceId: ID.gone, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${closedPort}`, AutoBackup: { WeekDays: ["Monday", "Thursday"], TimePeriod: "02:00-04:00" } },
        { InstanceId: ID.fixture, Region: "ap-guangzhou", Account: KEY.account },
      ],
    }, { autoBackups: false, rateLimit: 0, rateLimits: new Map([["DescribeTaskList", 1]]) });
    c = srv.client();
    before0 = await scrape(srv.port);
  });

  after(async () => {
    await srv?.close();
    redis?.kill();
  });

  test("requests, errors, rate limits, a backup and a failed backup are counted exactly", async () => {
    // Requests: 3 successes, 1 error, then DescribeTaskList twice at once against a limit of 1 per second.
    for (let i = 0; i < 3; i++) await c.DescribeInstanceBackups({ InstanceId: ID.live });
    await expectSdkError(c.DescribeInstanceBackups({ InstanceId: "crs-nothere0" }), "ResourceNotFound.InstanceNotExists");
    const listed = await Promise.allSettled([c.DescribeTaskList({ InstanceId: ID.live }), c.DescribeTaskList({ InstanceId: ID.live })]);
    const limited = listed.filter((r) => r.status === "rejected" && (r.reason as { code?: string }).code === "RequestLimitExceeded").length;
    const listedOk = listed.filter((r) => r.status === "fulfilled").length;
    assert.equal(limited + listedOk, 2);
    assert.ok(limited >= 1, "two calls at once against 1 per second: at least one is refused");

    // A real backup, and one of a Redis that is not there.
    const ok = await c.ManualBackupInstance({ InstanceId: ID.live, Remark: "metrics" });
    const done = await srv.services.runner.waitFor(ok.TaskId!);
    assert.ok(done.ok, done.ok ? "" : done.message);
    const failed = await c.ManualBackupInstance({ InstanceId: ID.gone });
    const failure = await srv.services.runner.waitFor(failed.TaskId!);
    assert.equal(failure.ok, false);
    const backup = (await srv.services.catalog.backupsOfInstance(ID.live))[0]!;
    assert.equal(backup.status, 2);

    const m = await scrape(srv.port);
    const delta = (name: string, labels: Record<string, string> = {}) => (m.get(name, labels) ?? 0) - (before0.get(name, labels) ?? 0);
    assert.equal(delta("crs_backup_api_requests_total", { action: "DescribeInstanceBackups", code: "OK" }), 3);
    assert.equal(delta("crs_backup_api_requests_total", { action: "DescribeInstanceBackups", code: "ResourceNotFound.InstanceNotExists" }), 1);
    assert.equal(delta("crs_backup_api_requests_total", { action: "DescribeTaskList", code: "OK" }), listedOk);
    assert.equal(delta("crs_backup_api_requests_total", { action: "DescribeTaskList", code: "RequestLimitExceeded" }), limited);
    assert.equal(delta("crs_backup_api_requests_total", { action: "ManualBackupInstance", code: "OK" }), 2);
    assert.equal(m.sum("crs_backup_api_requests_total") - before0.sum("crs_backup_api_requests_total"), 3 + 1 + 2 + 2, "nothing else counted (the scrapes are not API requests)");
    assert.equal(delta("crs_backup_api_request_duration_seconds_count", { action: "DescribeInstanceBackups" }), 4);
    assert.ok(delta("crs_backup_api_request_duration_seconds_sum", { action: "DescribeInstanceBackups" }) > 0);
    assert.equal(delta("crs_backup_api_rate_limited_total", { action: "DescribeTaskList", limit: "action" }), limited);

    assert.equal(delta("crs_backup_tasks_started_total", { task: "backup" }), 2);
    assert.equal(delta("crs_backup_tasks_succeeded_total", { task: "backup" }), 1);
    assert.equal(delta("crs_backup_tasks_failed_total", { task: "backup", reason: "connect" }), 1);
    assert.equal(m.sum("crs_backup_tasks_failed_total") - before0.sum("crs_backup_tasks_failed_total"), 1);
    assert.equal(delta("crs_backup_backup_size_bytes_count"), 1);
    assert.equal(delta("crs_backup_backup_size_bytes_sum"), backup.backupSize);
    assert.ok(backup.backupSize > 1000, `${backup.backupSize} bytes`);
    assert.equal(delta("crs_backup_backup_duration_seconds_count"), 1);
    assert.equal(m.get("crs_backup_last_success_timestamp_seconds", { instance_id: ID.live }), Math.floor(backup.endTime! / 1000));
    assert.equal(m.get("crs_backup_last_success_timestamp_seconds", { instance_id: ID.gone }), undefined);
    // Schedules: the default (every day, 00:00-01:00) is 25 h between window ends; Monday and Thursday 02-04 is 4 days + 2 h.
    assert.equal(m.get("crs_backup_schedule_interval_seconds", { instance_id: ID.live }), undefined, "--auto-backups off: no schedule in force");
    // Process metrics come along.
    assert.ok((m.get("process_resident_memory_bytes") ?? 0) > 0);
  });

  test("catalogue figures: sizes, queue, stored bytes and readiness, read at scrape time", async () => {
    const stats = await srv.services.catalog.stats();
    const m = await waitFor("the catalogue figures to catch up", async () => {
      const x = await scrape(srv.port);
      return x.get("crs_backup_catalog_backups", { status: "2" }) === (stats.backupsByStatus["2"] ?? 0) ? x : undefined;
    }, 15_000, 200);
    assert.equal(m.get("crs_backup_catalog_instances"), 3);
    assert.equal(m.get("crs_backup_catalog_tasks", { state: "running" }), 0);
    assert.equal(m.get("crs_backup_catalog_tasks", { state: "queued" }), 0);
    assert.equal(m.get("crs_backup_stored_backup_bytes"), stats.storedBytes);
    assert.equal(m.get("crs_backup_node_tasks_running"), 0);
    assert.equal(m.get("crs_backup_ready"), 1);
    assert.equal(m.get("crs_backup_ready_check", { check: "storage" }), 1);
  });

  test("/healthz and /readyz answer without signing; unknown neighbours of the paths are 404; /metrics is fast", async () => {
    assert.deepEqual(await get(srv.port, "/healthz"), { status: 200, type: "application/json", text: '{"status":"ok"}\n' });
    const ready = await get(srv.port, "/readyz");
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.text), { status: "ready", failed: [], checks: { catalog: "ok", migrations: "ok", storage: "ok" } });
    assert.equal((await get(srv.port, "/metricsx")).status, 404);
    assert.equal((await get(srv.port, "/readyz/x")).status, 404);
    // The API still answers only at /.
    const api = await get(srv.port, "/metric");
    assert.match(api.text, /InvalidRequest/);
    // Cost of a scrape (catalogue figures from the cached reading): generous bound here, the figure is in docs/benchmarks.md.
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t = process.hrtime.bigint();
      await get(srv.port, "/metrics");
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    times.sort((a, b) => a - b);
    assert.ok(times[15]! < 50, `median scrape ${times[15]} ms`);
  });

  test("download links follow the transport: http here, https behind a proxy that says X-Forwarded-Proto: https", async () => {
    const [b] = await srv.services.catalog.backupsOfInstance(ID.live);
    const plain = await c.DescribeBackupUrl({ InstanceId: ID.live, BackupId: b!.backupId });
    assert.match(plain.DownloadUrl![0]!, new RegExp(`^http://127\\.0\\.0\\.1:${srv.port}/download/`));
    const proxied = new RedisClient({
      credential: { secretId: KEY.secretId, secretKey: KEY.secretKey }, region: "ap-guangzhou",
      profile: { httpProfile: { endpoint: `127.0.0.1:${srv.port}`, protocol: "http://", headers: { "X-Forwarded-Proto": "https" } } },
    });
    const viaProxy = await proxied.DescribeBackupUrl({ InstanceId: ID.live, BackupId: b!.backupId });
    assert.match(viaProxy.DownloadUrl![0]!, /^https:\/\//);
  });

  test("the Grafana dashboard and the alert rules are valid and use only metrics the server exposes", async () => {
    const m = await scrape(srv.port);
    const exposed = new Set([...m.families.keys()].flatMap((f) => [f, `${f}_bucket`, `${f}_sum`, `${f}_count`]));
    const used = (text: string) => new Set([...text.matchAll(/\b(crs_backup_[a-z0-9_]+)/g)].map((x) => x[1]!));
    const dashboard = JSON.parse(fs.readFileSync(path.join(DOCS, "grafana-dashboard.json"), "utf8")) as { panels: Array<{ targets?: Array<{ expr: string }> }>; title: string };
    assert.ok(dashboard.panels.length >= 6);
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    assert.ok(exprs.length >= 6);
    for (const name of used(exprs.join("\n"))) assert.ok(exposed.has(name), `dashboard uses ${name}, which /metrics does not expose`);
    const rules = YAML.parse(fs.readFileSync(path.join(DOCS, "prometheus-alerts.yml"), "utf8")) as { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for?: string; labels?: object; annotations?: object }> }> };
    const all = rules.groups.flatMap((g) => g.rules);
    const names = all.map((r) => r.alert);
    for (const want of ["CrsBackupLate", "CrsBackupFailures", "CrsBackupNotReady"]) assert.ok(names.includes(want), `alert ${want}`);
    for (const r of all) {
      assert.ok(r.expr && r.annotations, `${r.alert} has an expr and annotations`);
      for (const name of used(r.expr)) assert.ok(exposed.has(name), `alert ${r.alert} uses ${name}, which /metrics does not expose`);
    }
  });
});

describe("readiness follows the catalogue", () => {
  let db: TestDatabase;
  let srv: TestServer;
  const name = () => new URL(db.url).pathname.slice(1);
  const admin = async (sql: string) => {
    const a = new pg.Client({ connectionString: PG_ADMIN });
    await a.connect();
    try {
      await a.query(sql);
    } finally {
      await a.end();
    }
  };

  before(async () => {
    db = await freshDatabase("ready");
    srv = await startTestServer({ Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }] }, { catalog: db.url, autoBackups: false });
  });

  after(async () => {
    await srv?.close();
    await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`).catch(() => undefined);
    await db?.drop();
  });

  test("/readyz is 503 naming the catalogue while PostgreSQL refuses it, and 200 again once it is back", async () => {
    assert.equal((await get(srv.port, "/readyz")).status, 200);
    // The database stops accepting connections and the pool's are cut: every catalogue call fails.
    await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS false`);
    await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name()}' AND pid <> pg_backend_pid()`);
    const down = await waitFor("/readyz to fail", async () => {
      const r = await get(srv.port, "/readyz");
      return r.status === 503 ? r : undefined;
    }, 15_000, 100);
    assert.deepEqual(JSON.parse(down.text), { status: "unready", failed: ["catalog"], checks: { catalog: "failed", migrations: "skipped", storage: "ok" } });
    // The first failed check may see a pooled connection being cut ("terminating connection due to administrator
    // command"); the next ones see why the database refuses new ones, and log it.
    await waitFor("the reason to be logged", async () => {
      if (srv.logs.some((l) => l.includes('"msg":"not ready"') && l.includes("not currently accepting connections"))) return true;
      assert.equal((await get(srv.port, "/readyz")).status, 503);
      return undefined;
    }, 15_000, 100);
    // Liveness is not readiness: the process still serves.
    assert.equal((await get(srv.port, "/healthz")).status, 200);
    const m = await scrape(srv.port);
    assert.equal(m.get("crs_backup_ready"), 0);
    assert.equal(m.get("crs_backup_ready_check", { check: "catalog" }), 0);

    await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`);
    const up = await waitFor("/readyz to recover", async () => {
      const r = await get(srv.port, "/readyz");
      return r.status === 200 ? r : undefined;
    }, 15_000, 100);
    assert.equal(JSON.parse(up.text).status, "ready");
    // And the API works again through the same pool.
    const c = srv.client();
    const r = await c.DescribeInstances({});
    assert.equal(r.TotalCount, 0);
  });
});

describe("metrics settings", () => {
  test("--metrics off answers 404 at /metrics (health stays); --metrics-allow refuses other addresses", async () => {
    const off = await startTestServer({}, { metrics: false, autoBackups: false });
    try {
      assert.equal((await get(off.port, "/metrics")).status, 404);
      assert.equal((await get(off.port, "/healthz")).status, 200);
      assert.equal((await get(off.port, "/readyz")).status, 200);
    } finally {
      await off.close();
    }
    const limited = await startTestServer({}, { metricsAllow: ["10.0.0.0/8"], autoBackups: false });
    try {
      const r = await get(limited.port, "/metrics");
      assert.equal(r.status, 403);
      assert.match(r.text, /127\.0\.0\.1 may not read the metrics/);
    } finally {
      await limited.close();
    }
    const allowed = await startTestServer({}, { metricsAllow: ["10.0.0.0/8", "127.0.0.1"], autoBackups: false });
    try {
      assert.equal((await get(allowed.port, "/metrics")).status, 200);
    } finally {
      await allowed.close();
    }
  });

  test("failure reasons are a closed set derived from the error", () => {
    assert.equal(failureReason(new CaptureError("CONNECT", "x"), "x"), "connect");
    assert.equal(failureReason(new CaptureError("AUTH", "x"), "x"), "auth");
    assert.equal(failureReason(new CaptureError("SYNC_REFUSED", "x"), "x"), "sync_refused");
    assert.equal(failureReason(new CaptureError("STALL", "x"), "x"), "stall");
    assert.equal(failureReason(new CaptureError("CORRUPT", "x"), "x"), "corrupt");
    assert.equal(failureReason(new CaptureError("STORAGE", "x"), "x"), "storage");
    assert.equal(failureReason(new RestoreError("unsupported", "x"), "x"), "rejected");
    assert.equal(failureReason(new BlobIntegrityError("k", { bytes: 1, sha256: "a" }, { bytes: 2, sha256: "b" }), "x"), "corrupt");
    assert.equal(failureReason(Object.assign(new Error("disk"), { code: "ENOSPC" }), "disk"), "storage");
    assert.equal(failureReason(new Error("wrapped", { cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }) }), "wrapped"), "connect");
    assert.equal(failureReason(new Error("anything"), "anything", true), "interrupted");
    assert.equal(failureReason(undefined, "interrupted: the node running it (another node) stopped"), "interrupted");
    assert.equal(failureReason(new Error("something new"), "something new"), "other");
  });

  test("schedule intervals: the longest gap between windows plus the window", () => {
    const all = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    assert.equal(scheduleIntervalSeconds({ autoBackupWeekDays: all, autoBackupPeriod: "00:00-01:00" }), 25 * 3600);
    assert.equal(scheduleIntervalSeconds({ autoBackupWeekDays: ["Monday", "Thursday"], autoBackupPeriod: "02:00-04:00" }), 4 * 86400 + 2 * 3600);
    assert.equal(scheduleIntervalSeconds({ autoBackupWeekDays: ["Sunday"], autoBackupPeriod: "23:00-01:00" }), 7 * 86400 + 2 * 3600);
    assert.equal(scheduleIntervalSeconds({ autoBackupWeekDays: [], autoBackupPeriod: "00:00-01:00" }), undefined);
  });
});
