// The console's server-side pieces on their own: the next automatic-backup window (checked against the
// scheduler's own openWindow), stateless session cookies, and the static file server's path handling.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { SqliteCatalog as Catalog } from "../src/catalog/sqlite/sqlite";
import { nextWindow } from "../src/console/schedule";
import { readCookie, SESSION_TTL_MS, SessionSigner } from "../src/console/session";
import { StaticFiles } from "../src/console/static";
import { openWindow } from "../src/jobs/scheduler";
import { LocalTime } from "../src/protocol/time";

const HOUR = 3_600_000;

describe("nextWindow", () => {
  const sh = new LocalTime("Asia/Shanghai");
  const at = (s: string) => sh.parse(s)!;

  test("the next chosen day's window, the open one until it is served, and one across midnight", () => {
    const wed = { autoBackupWeekDays: ["Wednesday"], autoBackupPeriod: "02:00-03:00", lastAutoWindow: 0 };
    // 2024-06-03 is a Monday.
    assert.deepEqual(nextWindow(wed, at("2024-06-03 10:00:00"), sh), { start: at("2024-06-05 02:00:00"), end: at("2024-06-05 03:00:00") });
    assert.equal(nextWindow(wed, at("2024-06-05 02:30:00"), sh)?.start, at("2024-06-05 02:00:00"), "open and not served yet");
    assert.equal(nextWindow({ ...wed, lastAutoWindow: at("2024-06-05 02:00:00") }, at("2024-06-05 02:30:00"), sh)?.start, at("2024-06-12 02:00:00"), "served: next week");
    assert.equal(nextWindow(wed, at("2024-06-05 03:00:00"), sh)?.start, at("2024-06-12 02:00:00"), "closed: next week");
    const sunNight = { autoBackupWeekDays: ["Sunday"], autoBackupPeriod: "23:00-01:00", lastAutoWindow: 0 };
    assert.equal(nextWindow(sunNight, at("2024-06-03 00:30:00"), sh)?.start, at("2024-06-02 23:00:00"), "Sunday's window is still open on Monday at 00:30");
    assert.equal(nextWindow({ ...sunNight, autoBackupWeekDays: [] }, at("2024-06-03 00:30:00"), sh), undefined);
    assert.equal(nextWindow({ ...wed, autoBackupPeriod: "02:30-03:00" }, at("2024-06-03 00:30:00"), sh), undefined);
  });

  test("agrees with the scheduler's openWindow, half-hour by half-hour over three weeks", () => {
    // Zones without daylight saving time (one at a half-hour offset), where the scheduler's 24-hour steps are days.
    for (const zone of ["Asia/Shanghai", "Asia/Kolkata"]) {
      const time = new LocalTime(zone);
      const instance = { autoBackupWeekDays: ["Sunday", "Tuesday", "Saturday"], autoBackupPeriod: "22:00-02:00", lastAutoWindow: 0 };
      const from = Date.UTC(2024, 2, 1);
      for (let now = from; now < from + 21 * 24 * HOUR; now += HOUR / 2) {
        const next = nextWindow(instance, now, time);
        assert.ok(next, `${zone} ${new Date(now).toISOString()}`);
        const open = openWindow(instance, now, time);
        if (open !== undefined) {
          assert.equal(next.start, open, "the open window is the next one");
        } else {
          assert.ok(next.start > now);
          assert.equal(openWindow(instance, next.start, time), next.start, "the scheduler fires at that start");
          for (let t = now; t < next.start; t += HOUR / 2) assert.equal(openWindow(instance, t, time), undefined, "no window opens before it");
        }
      }
    }
  });

  test("counts calendar days across daylight-saving changes", () => {
    const ny = new LocalTime("America/New_York");
    const sunday = { autoBackupWeekDays: ["Sunday"], autoBackupPeriod: "22:00-02:00", lastAutoWindow: 0 };
    // 2024-03-10 (a Sunday) has 23 hours: its window 22:00-02:00 is still open at 00:30 on Monday.
    assert.equal(nextWindow(sunday, ny.parse("2024-03-11 00:30:00")!, ny)?.start, ny.parse("2024-03-10 22:00:00"));
    // 2024-11-03 (a Sunday) has 25 hours: from Saturday noon the next window is that Sunday's, not the next one's.
    assert.equal(nextWindow(sunday, ny.parse("2024-11-02 12:00:00")!, ny)?.start, ny.parse("2024-11-03 22:00:00"));
    const end = nextWindow(sunday, ny.parse("2024-11-02 12:00:00")!, ny)!.end;
    assert.equal(ny.format(end), "2024-11-04 02:00:00");
  });
});

describe("console sessions", () => {
  async function setup() {
    const catalog = new Catalog(":memory:");
    await catalog.putCredential({ secretId: "AKIDone", secretKey: "key-one", accountId: "1" });
    await catalog.putCredential({ secretId: "AKIDtemp", secretKey: "key-temp", accountId: "1", token: "tok" });
    const clock = { t: 1_700_000_000_000 };
    return { catalog, clock, signer: new SessionSigner(catalog, () => clock.t) };
  }

  test("login checks the key and a temporary credential's token", async () => {
    const { signer } = await setup();
    assert.equal("credential" in await signer.login("AKIDone", "key-one", undefined), true);
    assert.deepEqual(await signer.login("AKIDone", "key-two", undefined), { failure: "key" });
    assert.deepEqual(await signer.login("AKIDnobody", "key-one", undefined), { failure: "unknown" });
    assert.deepEqual(await signer.login("AKIDtemp", "key-temp", undefined), { failure: "token" });
    assert.deepEqual(await signer.login("AKIDtemp", "key-temp", "other"), { failure: "token" });
    assert.equal("credential" in await signer.login("AKIDtemp", "key-temp", "tok"), true);
  });

  test("a cookie works on another node sharing the catalogue, until it expires or the key changes", async () => {
    const { catalog, clock, signer } = await setup();
    const c = (await catalog.credential("AKIDone"))!;
    const { cookie, expires } = await signer.issue(c);
    assert.equal(expires, clock.t + SESSION_TTL_MS);
    assert.ok(!cookie.includes("key-one"));
    const otherNode = new SessionSigner(catalog, () => clock.t);
    assert.equal((await otherNode.verify(cookie))?.credential.secretId, "AKIDone");
    // Tampered payload (another SecretId) or signature: refused.
    const [payload, mac] = cookie.split(".");
    const forged = Buffer.from(Buffer.from(payload!, "base64url").toString().replace("AKIDone", "AKIDtemp")).toString("base64url");
    assert.equal(await signer.verify(`${forged}.${mac}`), undefined);
    assert.equal(await signer.verify(`${payload}.${mac!.slice(1)}`), undefined);
    assert.equal(await signer.verify("garbage"), undefined);
    assert.equal(await signer.verify(undefined), undefined);
    clock.t = expires;
    assert.equal(await signer.verify(cookie), undefined, "expired");
    clock.t = expires - 1;
    assert.ok(await signer.verify(cookie));
    await catalog.putCredential({ ...c, secretKey: "rotated" });
    assert.equal(await signer.verify(cookie), undefined, "the key changed");
    // A catalogue with another session secret (another deployment) does not accept it.
    const elsewhere = new Catalog(":memory:");
    elsewhere.putCredential({ ...c, secretKey: "rotated" });
    assert.equal(await new SessionSigner(elsewhere, () => clock.t).verify(cookie), undefined);
  });

  test("readCookie", () => {
    assert.equal(readCookie("a=1; crs_console=xyz.abc; b=2", "crs_console"), "xyz.abc");
    assert.equal(readCookie("xcrs_console=1", "crs_console"), undefined);
    assert.equal(readCookie(undefined, "crs_console"), undefined);
  });
});

describe("console static files", () => {
  test("only built files are served; anything else is the page or 404, never a file outside", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "crs-static-"));
    fs.mkdirSync(path.join(root, "assets"));
    fs.writeFileSync(path.join(root, "index.html"), "<!doctype html><p>page</p>");
    fs.writeFileSync(path.join(root, "assets", "app-1.js"), "x".repeat(5000));
    const secret = `${path.basename(root)}-secret.txt`;
    fs.writeFileSync(path.join(path.dirname(root), secret), "secret");
    const files = new StaticFiles(root);
    const server = http.createServer((req, res) => {
      if (!files.serve(req, res, decodeURI((req.url ?? "/").split("?")[0]!).slice(1), {})) {
        res.writeHead(503);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const get = (p: string, headers: Record<string, string> = {}) => new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port, path: p, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      }).on("error", reject);
    });
    try {
      const js = await get("/assets/app-1.js", { "accept-encoding": "gzip" });
      assert.equal(js.status, 200);
      assert.equal(js.headers["content-encoding"], "gzip");
      assert.match(String(js.headers["cache-control"]), /immutable/);
      assert.equal((await get("/assets/app-1.js", { "if-none-match": String(js.headers.etag) })).status, 304);
      assert.equal((await get("/instances/crs-aaaaaaaa")).body.toString(), "<!doctype html><p>page</p>");
      for (const p of [`/../${secret}`, `/%2e%2e/${secret}`, `/assets/../../${secret}`, `/assets/%2e%2e/%2e%2e/${secret}`, `/..%2f${secret}`]) {
        const r = await get(p);
        assert.ok(!r.body.toString().includes("secret"), p);
      }
      assert.equal((await get("/assets/nope.js")).status, 404);
      fs.rmSync(path.join(root, "index.html"));
      assert.equal((await get("/tasks")).status, 503, "nothing built");
    } finally {
      server.close();
      fs.rmSync(root, { recursive: true, force: true });
      fs.rmSync(path.join(path.dirname(root), secret), { force: true });
    }
  });
});
