// One contract for every BlobStore backend, run against LocalBlobStore (a temp dir) and S3BlobStore (s3rver in
// a child process): atomic commit, hashing, compression, ranges, listing, abort/error leaving nothing, integrity
// checked reads, multipart, bounded memory. Then what only S3 has: errors, pre-signed URLs, crash leftovers.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import v8 from "node:v8";
import vm from "node:vm";
import zlib from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { BlobStore } from "../src/storage/blob-store";
import { LocalBlobStore } from "../src/storage/local";
import { S3BlobStore } from "../src/storage/s3";
import { BlobIntegrityError, verifiedRead } from "../src/storage/integrity";
import { waitFor } from "./support/redis";
import { S3TestServer, startS3rver } from "./support/s3";

const MiB = 1024 * 1024;

// A full garbage collection on demand, without --expose-gc on the test runner's command line.
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha256 = (b: Buffer): string => crypto.createHash("sha256").update(b).digest("hex");

async function listAll(store: BlobStore, prefix: string): Promise<Array<{ key: string; size: number }>> {
  const out: Array<{ key: string; size: number }> = [];
  for await (const b of store.list(prefix)) out.push(b);
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}

/** Writes `data` in 64 KiB pieces, honouring backpressure; rejects if the writer fails meanwhile. */
async function writeAll(w: Writable, data: Buffer): Promise<void> {
  for (let i = 0; i < data.length; i += 65_536) {
    if (w.destroyed) throw w.errored ?? new Error("writer destroyed");
    if (!w.write(data.subarray(i, i + 65_536))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          w.off("drain", done);
          w.off("close", done);
          resolve();
        };
        w.on("drain", done);
        w.on("close", done);
      });
    }
  }
}

async function put(store: BlobStore, key: string, data: Buffer, compress = false): Promise<{ bytes: number; sha256: string; storedBytes: number }> {
  const w = store.createWriter(key, { compress });
  await writeAll(w, data);
  return w.commit();
}

function closed(w: NodeJS.EventEmitter & { closed: boolean }): Promise<void> {
  return w.closed ? Promise.resolve() : new Promise((resolve) => w.once("close", () => resolve()));
}

/** Writes `key` from a source that dies after `total` bytes: the pipeline and the commit fail with its error, and nothing is left under the key. */
async function writeFromDyingSource(store: BlobStore, key: string, total: number): Promise<void> {
  let sent = 0;
  const source = new Readable({
    read() {
      if (sent >= total) return this.destroy(new Error("source died"));
      sent += 256 * 1024;
      this.push(crypto.randomBytes(256 * 1024));
    },
  });
  const w = store.createWriter(key);
  await assert.rejects(pipeline(source, w), /source died/);
  await assert.rejects(w.commit(), /source died/);
  await closed(w);
  assert.equal(await store.stat(key), undefined);
}

interface Backend {
  name: string;
  /** A fresh, empty store. */
  make(): Promise<BlobStore>;
  /** Everything the backend holds besides committed blobs: temp files, directories, incomplete uploads. */
  leftovers(store: BlobStore): Promise<string[]>;
  /** A part size to exceed for the multipart case. */
  partSize: number;
}

const tempRoots: string[] = [];
after(() => {
  for (const r of tempRoots) fs.rmSync(r, { recursive: true, force: true });
});

function walkAll(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(path.relative(dir, p) + (e.isDirectory() ? "/" : ""));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

const localBackend: Backend = {
  name: "LocalBlobStore",
  partSize: 0,
  make: async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-contract-"));
    tempRoots.push(dir);
    return new LocalBlobStore(path.join(dir, "blobs"));
  },
  // Any temp file, or any directory left without a committed blob in it.
  leftovers: async (store) => {
    const root = (store as LocalBlobStore).root;
    const all = walkAll(root);
    const files = all.filter((f) => !f.endsWith("/"));
    const committed = new Set((await listAll(store, "")).map((b) => b.key));
    return [
      ...files.filter((f) => !committed.has(f)),
      ...all.filter((d) => d.endsWith("/") && !files.some((f) => f.startsWith(d))),
    ];
  },
};

let s3: S3TestServer;
let bucketSeq = 0;
const s3Backend: Backend = {
  name: "S3BlobStore",
  partSize: 5 * MiB,
  make: async () => {
    const bucket = `contract-${++bucketSeq}`;
    await s3.createBucket(bucket);
    // The minimum part size keeps the multipart case small; the memory case uses the defaults.
    return s3.store(bucket, { prefix: "crs/data", partSizeBytes: 5 * MiB });
  },
  leftovers: async (store) => {
    const s = store as S3BlobStore;
    const out: string[] = [];
    for await (const u of s.incompleteUploads()) out.push(`upload ${u.objectKey}`);
    for (const u of await s3.uploadsOnDisk(s.bucket)) out.push(`on disk ${u.key}`);
    return out;
  },
};

before(async () => {
  s3 = await startS3rver();
});
after(async () => {
  await s3?.stop();
});

for (const backend of [localBackend, s3Backend]) {
  describe(`BlobStore contract: ${backend.name}`, () => {
    test("raw and compressed blobs: invisible until commit, hashed plain bytes, read back", async () => {
      const store = await backend.make();
      const data = Buffer.concat([crypto.randomBytes(300_000), Buffer.alloc(700_000, 7)]);
      for (const compress of [false, true]) {
        const key = `backups/b1/shard-0.rdb${compress ? ".gz" : ""}`;
        const w = store.createWriter(key, { compress });
        await writeAll(w, data);
        await new Promise<void>((resolve) => w.end(resolve)); // even 'finish' does not publish it
        assert.equal(await store.stat(key), undefined);
        assert.deepEqual(await listAll(store, "backups/"), compress ? [{ key: "backups/b1/shard-0.rdb", size: data.length }] : []);
        const res = await w.commit();
        assert.deepEqual(await w.commit(), res); // idempotent
        assert.equal(res.bytes, data.length);
        assert.equal(res.sha256, sha256(data));
        assert.equal((await store.stat(key))?.size, res.storedBytes);
        if (compress) {
          assert.ok(res.storedBytes < data.length * 0.5, `compressed to ${res.storedBytes}`);
          const stored = await readAll(await store.openRead(key));
          assert.equal(stored.length, res.storedBytes);
          assert.deepEqual(zlib.gunzipSync(stored), data);
          assert.deepEqual(await readAll(await store.openRead(key, { decompress: true })), data);
        } else {
          assert.equal(res.storedBytes, data.length);
          assert.deepEqual(await readAll(await store.openRead(key)), data);
        }
      }
      assert.deepEqual(await backend.leftovers(store), []);
    });

    test("inclusive byte ranges of the stored bytes", async () => {
      const store = await backend.make();
      const data = crypto.randomBytes(100_000);
      await put(store, "r/x.bin", data);
      assert.deepEqual(await readAll(await store.openRead("r/x.bin", { start: 10, end: 19 })), data.subarray(10, 20));
      assert.deepEqual(await readAll(await store.openRead("r/x.bin", { start: 99_990 })), data.subarray(99_990));
      assert.deepEqual(await readAll(await store.openRead("r/x.bin", { start: 0, end: 0 })), data.subarray(0, 1));
      assert.deepEqual(await readAll(await store.openRead("r/x.bin", { start: 50_000, end: 99_999 })), data.subarray(50_000));
    });

    test("empty blobs", async () => {
      const store = await backend.make();
      const raw = await put(store, "e/raw", Buffer.alloc(0));
      assert.deepEqual([raw.bytes, raw.storedBytes, raw.sha256], [0, 0, sha256(Buffer.alloc(0))]);
      assert.equal((await store.stat("e/raw"))?.size, 0);
      const gz = await put(store, "e/gz", Buffer.alloc(0), true);
      assert.equal(gz.bytes, 0);
      assert.deepEqual(await readAll(await store.openRead("e/gz", { decompress: true })), Buffer.alloc(0));
    });

    test("stat, remove and missing blobs", async () => {
      const store = await backend.make();
      assert.equal(await store.stat("m/none"), undefined);
      await assert.rejects(store.openRead("m/none"), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
      await store.remove("m/none"); // absent is fine
      await put(store, "m/one", Buffer.from("hello"));
      assert.equal((await store.stat("m/one"))?.size, 5);
      await store.remove("m/one");
      assert.equal(await store.stat("m/one"), undefined);
      assert.deepEqual(await listAll(store, ""), []);
      assert.deepEqual(await backend.leftovers(store), []);
    });

    test("list by prefix", async () => {
      const store = await backend.make();
      const keys = ["backups/a1/shard-0.rdb.gz", "backups/a1/shard-1.rdb.gz", "backups/a2/shard-0.rdb.gz", "exports/a1/shard-0.rdb"];
      for (const [i, k] of keys.entries()) await put(store, k, Buffer.alloc(10 + i, i));
      const keysOf = async (p: string): Promise<string[]> => (await listAll(store, p)).map((b) => b.key);
      assert.deepEqual(await listAll(store, ""), keys.map((key, i) => ({ key, size: 10 + i })));
      assert.deepEqual(await keysOf("backups/"), keys.slice(0, 3));
      assert.deepEqual(await keysOf("backups/a1"), keys.slice(0, 2));
      assert.deepEqual(await keysOf("backups/a1/"), keys.slice(0, 2));
      assert.deepEqual(await keysOf("backups/a1/shard-1"), keys.slice(1, 2));
      assert.deepEqual(await keysOf("exp"), keys.slice(3));
      assert.deepEqual(await keysOf("nothing/"), []);
      // A writer in progress is not listed.
      const w = store.createWriter("backups/a3/shard-0.rdb.gz", { compress: true });
      await writeAll(w, Buffer.alloc(100_000, 1));
      assert.deepEqual(await keysOf("backups/a3"), []);
      await w.commit();
      assert.deepEqual(await keysOf("backups/a3"), ["backups/a3/shard-0.rdb.gz"]);
    });

    test("abort leaves nothing, before or after 'finish'; commit after abort fails", async () => {
      const store = await backend.make();
      const w0 = store.createWriter("a/zero.rdb", { compress: true });
      await w0.abort(); // nothing written at all
      const w1 = store.createWriter("a/one.rdb", { compress: true });
      await writeAll(w1, crypto.randomBytes(200_000));
      await w1.abort();
      await w1.abort(); // idempotent
      await assert.rejects(w1.commit(), /aborted/);
      const w2 = store.createWriter("a/two.rdb");
      await writeAll(w2, crypto.randomBytes(200_000));
      await new Promise<void>((resolve) => w2.end(resolve));
      await w2.abort();
      await assert.rejects(w2.commit(), /aborted/);
      for (const k of ["a/zero.rdb", "a/one.rdb", "a/two.rdb"]) assert.equal(await store.stat(k), undefined);
      assert.deepEqual(await listAll(store, ""), []);
      assert.deepEqual(await backend.leftovers(store), []);
    });

    test("an error mid-stream leaves nothing (multipart under way), and commit after destroy fails", async () => {
      const store = await backend.make();
      await writeFromDyingSource(store, "err/x.rdb", Math.max(backend.partSize * 2, 2 * MiB));
      assert.deepEqual(await backend.leftovers(store), []);

      const w2 = store.createWriter("err/y.rdb", { compress: true });
      w2.write(Buffer.alloc(1000, 1));
      w2.destroy();
      await closed(w2);
      await assert.rejects(w2.commit(), /destroyed/);
      assert.equal(await store.stat("err/y.rdb"), undefined);
      assert.deepEqual(await backend.leftovers(store), []);
    });

    test("verifiedRead passes intact blobs and fails on a size or SHA-256 mismatch", async () => {
      const store = await backend.make();
      const data = Buffer.concat([crypto.randomBytes(50_000), Buffer.alloc(300_000, 5)]);
      const rec = { key: "v/shard-0.rdb.gz", ...(await put(store, "v/shard-0.rdb.gz", data, true)) };
      assert.deepEqual(await readAll(await verifiedRead(store, rec, { decompress: true })), data);
      const isIntegrity = (re: RegExp) => (e: unknown): boolean => e instanceof BlobIntegrityError && e.code === "EINTEGRITY" && re.test(e.message);
      // Recorded differently than stored: wrong hash, more bytes than stored, fewer bytes than stored.
      await assert.rejects(readAll(await verifiedRead(store, { ...rec, sha256: "0".repeat(64) }, { decompress: true })), isIntegrity(/does not match its record/));
      await assert.rejects(readAll(await verifiedRead(store, { ...rec, bytes: rec.bytes + 1 }, { decompress: true })), isIntegrity(/does not match/));
      await assert.rejects(readAll(await verifiedRead(store, { ...rec, bytes: 1000 }, { decompress: true })), isIntegrity(/longer than recorded/));
      // The blob replaced by other content of the same length (damage at rest): the old record catches it.
      const damaged = Buffer.from(data);
      damaged[200_000] ^= 1;
      await put(store, "v/shard-0.rdb.gz", damaged, true);
      await assert.rejects(readAll(await verifiedRead(store, rec, { decompress: true })), isIntegrity(/does not match its record: 350000 bytes/));
      // A missing blob is still ENOENT.
      await assert.rejects(verifiedRead(store, { ...rec, key: "v/none" }), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
      // A stored gzip that is corrupt fails too (as a gunzip error).
      await put(store, "v/bad.gz", Buffer.from("not gzip at all"));
      await assert.rejects(readAll(await verifiedRead(store, { key: "v/bad.gz", bytes: 1, sha256: "x" }, { decompress: true })), /incorrect header check|EINTEGRITY|does not match/);
    });

    test("a blob over several parts, and writers running side by side", async () => {
      const store = await backend.make();
      const big = crypto.randomBytes(Math.max(backend.partSize, 4 * MiB) * 2 + 12_345);
      const [r1, r2] = await Promise.all([put(store, "mp/one.bin", big), put(store, "mp/two.gz", big.subarray(0, 3 * MiB), true)]);
      assert.equal(r1.sha256, sha256(big));
      assert.equal((await store.stat("mp/one.bin"))?.size, big.length);
      assert.equal(sha256(await readAll(await store.openRead("mp/one.bin"))), sha256(big));
      assert.equal(r2.sha256, sha256(big.subarray(0, 3 * MiB)));
      assert.equal(sha256(await readAll(await store.openRead("mp/two.gz", { decompress: true }))), r2.sha256);
      // A range across a part boundary.
      const at = (backend.partSize || 1 * MiB) - 10;
      assert.deepEqual(await readAll(await store.openRead("mp/one.bin", { start: at, end: at + 19 })), big.subarray(at, at + 20));
      assert.deepEqual(await backend.leftovers(store), []);
    });

    test("removeStale never touches a writer in progress in this process", async () => {
      const store = await backend.make();
      const w = store.createWriter("live/x.rdb");
      const data = crypto.randomBytes(Math.max(backend.partSize, 1 * MiB) + 1000);
      await writeAll(w, data);
      if (backend === s3Backend) await waitFor("the multipart upload", async () => (await backend.leftovers(store)).length > 0 || undefined);
      assert.equal(await store.removeStale(0), 0);
      const res = await w.commit();
      assert.equal(res.sha256, sha256(data));
      assert.equal(sha256(await readAll(await store.openRead("live/x.rdb"))), res.sha256);
    });

    test("describe names the place and no secret", async () => {
      const store = await backend.make();
      const d = store.describe();
      if (backend === s3Backend) assert.match(d, /^s3:\/\/contract-\d+\/crs\/data\/ @ http:\/\/127\.0\.0\.1:\d+$/);
      else assert.match(d, /^file:\/.*\/blobs$/);
      assert.ok(!d.includes(s3.credentials.secretAccessKey));
    });

    test("200 MB through a writer keeps memory bounded (default part size)", async (t) => {
      const base = await backend.make();
      const store = backend === s3Backend ? s3.store((base as S3BlobStore).bucket) : base;
      const total = 200 * MiB;
      const noise = crypto.randomBytes(64 * 1024);
      let produced = 0;
      let peakRss = 0;
      const hash = crypto.createHash("sha256");
      gc();
      const baseRss = process.memoryUsage().rss;
      const source = new Readable({
        read() {
          if (produced >= total) return this.push(null);
          // Fresh buffers (as a socket delivers them), a different slice of noise each time.
          const chunk = Buffer.alloc(64 * 1024);
          noise.copy(chunk, 0, (produced / 1024) % 32768);
          produced += chunk.length;
          hash.update(chunk);
          // Collect every 8 MB: what is measured is what the writer holds, not how lazily V8 frees the
          // garbage of a stream (it lets ~64 MB of dead buffers pile up before a collection on its own).
          if (produced % (8 * MiB) === 0) gc();
          peakRss = Math.max(peakRss, process.memoryUsage().rss);
          this.push(chunk);
        },
      });
      const w = store.createWriter("big/one.bin");
      await pipeline(source, w);
      const res = await w.commit();
      assert.equal(res.bytes, total);
      assert.equal(res.sha256, hash.digest("hex"));
      assert.equal((await store.stat("big/one.bin"))?.size, total);
      const growth = peakRss - baseRss;
      t.diagnostic(`RSS growth ${(growth / MiB).toFixed(1)} MB`);
      assert.ok(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MB`);
      await store.remove("big/one.bin");
    });
  });
}

describe("S3BlobStore only", () => {
  test("pre-signed GET: the object store serves the blob as an attachment", async () => {
    await s3.createBucket("presign");
    const store = s3.store("presign", { prefix: "p" });
    const data = crypto.randomBytes(70_000);
    await put(store, "exports/b1/shard-0.rdb", data);
    const url = await store.presign("exports/b1/shard-0.rdb", { expiresInS: 600, fileName: "crs-abc_备份 1.rdb" });
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(url, resolve).on("error", reject));
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["content-disposition"], `attachment; filename="crs-abc___ 1.rdb"; filename*=UTF-8''crs-abc_%E5%A4%87%E4%BB%BD%201.rdb`);
    assert.deepEqual(await readAll(res), data);
    await assert.rejects(store.presign("exports/b1/shard-0.rdb", { expiresInS: 8 * 24 * 3600, fileName: "x" }), /expire in 1 to 604800 seconds/);
    await assert.rejects(store.presign("../x", { expiresInS: 60, fileName: "x" }), /blob key/);
  });

  test("clear errors: missing bucket, refused credentials, unreachable endpoint", async () => {
    const missing = s3.store("no-such-bucket");
    await assert.rejects(missing.probe(), (e: Error & { code?: string }) => e.code === "NoSuchBucket" && /the bucket of s3:\/\/no-such-bucket\/ @ http:\/\/127\.0\.0\.1:\d+ does not exist/.test(e.message));
    const w = missing.createWriter("x/y.rdb");
    w.end(Buffer.from("data"));
    await assert.rejects(w.commit(), (e: Error & { code?: string }) => e.code === "NoSuchBucket" && /does not exist/.test(e.message));
    await assert.rejects(missing.openRead("x/y.rdb"), (e: Error & { code?: string }) => e.code === "NoSuchBucket");
    await assert.rejects(listAll(missing, ""), (e: Error & { code?: string }) => e.code === "NoSuchBucket");

    // s3rver checks the access key id but not SigV4 signatures, so an unknown key stands for refused credentials.
    await s3.createBucket("denied");
    const denied = s3.store("denied", { credentials: { accessKeyId: "NOBODY", secretAccessKey: "the-secret-value" } });
    await assert.rejects(denied.probe(), (e: Error & { code?: string }) => e.code === "AccessDenied" && /^access denied by s3:\/\/denied\/ @ http:\/\/127\.0\.0\.1:\d+ for HeadBucket s3:\/\/denied: HTTP 403.*AWS_ACCESS_KEY_ID/.test(e.message) && !e.message.includes("the-secret-value"));
    await assert.rejects(denied.stat("x"), (e: Error & { code?: string }) => e.code === "AccessDenied");
    await assert.rejects(listAll(denied, ""), (e: Error & { code?: string }) => e.code === "AccessDenied" && /InvalidAccessKeyId/.test(e.message));
    const dw = denied.createWriter("x/y.rdb");
    await writeAll(dw, crypto.randomBytes(6 * MiB)).catch(() => undefined); // starts a multipart upload, which is refused
    await assert.rejects(dw.commit(), (e: Error & { code?: string }) => e.code === "AccessDenied" && /InvalidAccessKeyId/.test(e.message));
    assert.ok(dw.destroyed);

    const closedPort = await new Promise<number>((resolve) => {
      const srv = http.createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const gone = s3.store("denied", { endpoint: `http://127.0.0.1:${closedPort}` });
    const t0 = Date.now();
    await assert.rejects(gone.stat("x/y"), (e: Error & { code?: string }) => e.code === "Unreachable" && new RegExp(`endpoint unreachable \\(s3://denied/ @ http://127.0.0.1:${closedPort}\\).*ECONNREFUSED`).test(e.message));
    const gw = gone.createWriter("x/y.rdb");
    gw.end(Buffer.from("data"));
    await assert.rejects(gw.commit(), (e: Error & { code?: string }) => e.code === "Unreachable");
    assert.ok(Date.now() - t0 < 15_000, `took ${Date.now() - t0} ms`);
  });

  test("list skips objects outside the prefix and names no writer could make", async () => {
    await s3.createBucket("foreign");
    const store = s3.store("foreign", { prefix: "crs" });
    await put(store, "backups/a/shard-0.rdb.gz", Buffer.from("x"));
    for (const Key of ["crs/backups/folder/", "crs/.hidden", "crsx/backups/z", "other/backups/a"]) {
      await store.client.send(new PutObjectCommand({ Bucket: "foreign", Key, Body: "junk" }));
    }
    assert.deepEqual(await listAll(store, ""), [{ key: "backups/a/shard-0.rdb.gz", size: 1 }]);
    assert.deepEqual(await listAll(s3.store("foreign"), "crs/"), [{ key: "crs/backups/a/shard-0.rdb.gz", size: 1 }]);
  });

  test("a writer killed mid-upload leaves only an incomplete multipart upload, which removeStale aborts", async () => {
    await s3.createBucket("crash");
    const store = s3.store("crash", { prefix: "crs" });
    const child = spawn(process.execPath, [path.join(__dirname, "support", "s3-writer-child.js"), s3.endpoint, "crash", "crs", "backups/k1/shard-0.rdb"], { stdio: ["ignore", "ignore", "inherit"] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    try {
      // Wait for at least one uploaded part, i.e. well into the multipart upload.
      await waitFor("a part of the child's upload", async () => {
        for await (const u of store.incompleteUploads()) {
          if (u.objectKey === "crs/backups/k1/shard-0.rdb" && fs.readdirSync(path.join(s3.dir, "crash", "._S3rver_uploads", u.uploadId)).some((f) => /^\d+$/.test(f))) return true;
        }
        return undefined;
      }, 30_000);
    } finally {
      child.kill("SIGKILL");
    }
    assert.equal(await exited, "SIGKILL");
    assert.equal(await store.stat("backups/k1/shard-0.rdb"), undefined);
    await assert.rejects(store.openRead("backups/k1/shard-0.rdb"), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
    assert.deepEqual(await listAll(store, ""), []);
    const uploads: string[] = [];
    for await (const u of store.incompleteUploads()) uploads.push(u.objectKey);
    assert.deepEqual(uploads, ["crs/backups/k1/shard-0.rdb"]);
    // Within the default grace it may be another node's live upload: left alone.
    assert.equal(await store.removeStale(), 0);
    assert.equal(await store.removeStale(60_000), 0);
    assert.equal((await s3.uploadsOnDisk("crash")).length, 1);
    assert.equal(await store.removeStale(0), 1);
    assert.deepEqual(await s3.uploadsOnDisk("crash"), []);
    const after: string[] = [];
    for await (const u of store.incompleteUploads()) after.push(u.objectKey);
    assert.deepEqual(after, []);
    assert.equal(await store.removeStale(0), 0);
  });
});

describe("S3BlobStore on a store without the multipart housekeeping (s3rver as published)", () => {
  let plain: S3TestServer;
  before(async () => {
    plain = await startS3rver({ plain: true });
  });
  after(async () => {
    await plain?.stop();
  });
  const OPTIONAL = ["ListMultipartUploads", "ListParts", "AbortMultipartUpload"];

  test("the shimmed server has all three; the plain one none, each said once, and nothing fails", async () => {
    await s3.createBucket("caps");
    assert.deepEqual((await s3.store("caps").checkCapabilities()).map((c) => [c.operation, c.supported]), OPTIONAL.map((op) => [op, true]));

    await plain.createBucket("plain");
    const told: string[] = [];
    const store = plain.store("plain", { prefix: "crs", partSizeBytes: 5 * MiB, onUnsupported: (c) => told.push(c.operation) });
    assert.deepEqual(store.capabilities().map((c) => c.supported), [undefined, undefined, undefined]);
    // Housekeeping finds the gap itself: no sweep, no failure, one word.
    assert.equal(await store.removeStale(0), 0);
    assert.equal(await store.abortUploads("backups/"), 0);
    assert.deepEqual(told, ["ListMultipartUploads"]);
    const caps = await store.checkCapabilities();
    assert.deepEqual(caps.map((c) => [c.operation, c.supported]), OPTIONAL.map((op) => [op, false]));
    assert.match(caps[0]!.without, /not swept.*lifecycle rule/);
    assert.deepEqual(told, OPTIONAL, "each missing operation is said once");
    await store.checkCapabilities();
    assert.equal(await store.removeStale(0), 0);
    assert.deepEqual(told, OPTIONAL);
  });

  test("blobs, multipart ones included, are stored and read back; a failed upload fails with its own error", async () => {
    await plain.createBucket("plain-blobs");
    const told: string[] = [];
    const store = plain.store("plain-blobs", { prefix: "crs", partSizeBytes: 5 * MiB, onUnsupported: (c) => told.push(c.operation) });
    const small = crypto.randomBytes(1000);
    const big = crypto.randomBytes(11 * MiB);
    assert.equal((await put(store, "backups/b1/shard-0.rdb", small)).sha256, sha256(small));
    assert.equal((await put(store, "backups/b1/shard-1.rdb", big)).sha256, sha256(big));
    assert.ok(sha256(await readAll(await store.openRead("backups/b1/shard-1.rdb"))) === sha256(big));
    assert.deepEqual((await listAll(store, "backups/")).map((b) => b.key), ["backups/b1/shard-0.rdb", "backups/b1/shard-1.rdb"]);
    // A source that dies after parts were uploaded: the abort the store lacks neither hides the cause nor throws.
    await writeFromDyingSource(store, "backups/b2/shard-0.rdb", 11 * MiB);
    assert.deepEqual(told, ["AbortMultipartUpload"]);
    // What that costs: the parts stay in the store.
    assert.deepEqual((await plain.uploadsOnDisk("plain-blobs")).map((u) => u.key), ["crs/backups/b2/shard-0.rdb"]);
  });
});
