// The pieces startServer assembles (src/server/): the data directory's lock (one parser for both of its
// forms), the TLS loader's refusals, the disk-full diagnosis of a start-up failure, and the first key.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CatalogFullError } from "../src/catalog/catalog";
import { openCatalog } from "../src/catalog/open";
import { announceGeneratedKey, ensureCredentials, newKeyPair } from "../src/server/credentials";
import { dataDirHolder, LOCK_FILE, lockDataDir } from "../src/server/data-dir-lock";
import { startupError } from "../src/server/startup-error";
import { loadTls } from "../src/server/tls";
import { makePki } from "./support/tls";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-startup-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function procStart(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}

test("data directory lock: taken, released, refused while a live server holds it, taken over from a dead or unrelated holder", async () => {
  const data = fs.mkdtempSync(path.join(dir, "lock-"));
  const file = path.join(data, LOCK_FILE);
  assert.equal(dataDirHolder(data), undefined);
  const release = lockDataDir(data);
  assert.deepEqual(JSON.parse(fs.readFileSync(file, "utf8")).pid, process.pid);
  assert.equal(dataDirHolder(data), process.pid, "our own live lock is seen by the reader");
  release();
  assert.equal(fs.existsSync(file), false);

  // A live process: `sleep` stands for a server whose start time the lock recorded (the new form).
  const other = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    await new Promise((r) => other.once("spawn", r));
    const pid = other.pid!;
    fs.writeFileSync(file, JSON.stringify({ pid, start: procStart(pid) }));
    assert.equal(dataDirHolder(data), pid);
    assert.throws(() => lockDataDir(data), new RegExp(`another crs-backup server \\(pid ${pid}\\)`));
    // The same PID with another start time: reused by an unrelated process, so the lock is stale.
    fs.writeFileSync(file, JSON.stringify({ pid, start: "1" }));
    assert.equal(dataDirHolder(data), undefined);
    // The old bare-PID form naming a live process that is not a server (its command line is `sleep 30`).
    fs.writeFileSync(file, String(pid));
    assert.equal(dataDirHolder(data), undefined);
    lockDataDir(data)();
  } finally {
    other.kill();
  }
  // Half-written or nonsense files are stale too.
  for (const text of ["{\"pid\":", "not a pid", "{\"pid\":-4}", "{\"pid\":\"12\"}"]) {
    fs.writeFileSync(file, text);
    assert.equal(dataDirHolder(data), undefined, text);
    lockDataDir(data)();
    assert.equal(fs.existsSync(file), false);
  }
});

test("TLS: neither option is no TLS; one alone, an unreadable file or a key of another certificate is refused by name", () => {
  assert.equal(loadTls(undefined, undefined), undefined);
  assert.throws(() => loadTls("/x.crt", undefined), /--tls-cert and --tls-key go together/);
  const pki = makePki();
  const other = makePki();
  try {
    const pair = loadTls(pki.cert, pki.key)!;
    assert.ok(pair.cert.toString().includes("BEGIN CERTIFICATE"));
    assert.throws(() => loadTls(path.join(pki.dir, "missing.crt"), pki.key), /cannot read the TLS certificate .*missing\.crt: ENOENT/);
    assert.throws(() => loadTls(pki.cert, other.key), (err: Error) => err.message.includes(pki.cert) && err.message.includes(other.key) && /cannot be used/.test(err.message));
  } finally {
    fs.rmSync(pki.dir, { recursive: true, force: true });
    fs.rmSync(other.dir, { recursive: true, force: true });
  }
});

test("start-up errors: a full disk is said plainly with the data directory; anything else passes through", () => {
  for (const err of [new CatalogFullError("full"), Object.assign(new Error("write failed"), { code: "ENOSPC" }), Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" })]) {
    const out = startupError(err, dir);
    assert.match(out.message, new RegExp(`no space left for the data directory ${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  }
  const other = Object.assign(new Error("permission denied"), { code: "EACCES" });
  assert.equal(startupError(other, dir), other);
  // An I/O error on a disk with room is not a full disk.
  const io = Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" });
  assert.equal(startupError(io, dir), io);
});

test("the first key: generated once and shown until announced; CRS_SECRET_ID/KEY must come together", async () => {
  const catalog = await openCatalog(`sqlite:${path.join(dir, "creds", "catalog.db")}`);
  try {
    const first = await ensureCredentials(catalog, {});
    assert.match(first.generated!.secretId, /^AKID[A-Za-z0-9]{32}$/);
    assert.deepEqual((await ensureCredentials(catalog, {})).generated, first.generated, "shown again until a start has shown it");
    const lines: string[] = [];
    await announceGeneratedKey(catalog, first.generated!, (l) => lines.push(l));
    assert.ok(lines.some((l) => l.includes(first.generated!.secretKey)));
    assert.equal((await ensureCredentials(catalog, {})).generated, undefined, "not shown again once announced");
    await assert.rejects(ensureCredentials(catalog, { CRS_SECRET_ID: "AKIDonly" }), /set both CRS_SECRET_ID and CRS_SECRET_KEY/);
    const env = await ensureCredentials(catalog, { CRS_SECRET_ID: "AKIDfromenv", CRS_SECRET_KEY: "k" });
    assert.equal((await catalog.credential("AKIDfromenv"))?.secretKey, "k");
    assert.match(env.notes.join("\n"), new RegExp(`key revoke ${first.generated!.secretId}`));
    assert.notEqual(newKeyPair().secretKey, newKeyPair().secretKey);
  } finally {
    await catalog.close();
  }
});
