// LocalBlobStore: atomic, owner-only, hashed, optionally gzip'd blobs with end-to-end backpressure.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { checkKey } from "../src/storage/blob-store";
import { LocalBlobStore } from "../src/storage/local";
import { filesUnder } from "./support/dataset";
import { waitFor } from "./support/redis";

const roots: string[] = [];
function newRoot(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-store-"));
  roots.push(dir);
  return path.join(dir, "blobs"); // not yet existing: the store creates it
}
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** Every file below dir, relative, sorted (hidden ones included). */
const listFiles = (dir: string): string[] => filesUnder(dir).map((f) => path.relative(dir, f)).sort();

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function sha256(b: Buffer): string {
  return crypto.createHash("sha256").update(b).digest("hex");
}

describe("LocalBlobStore", () => {
  test("writes raw and compressed blobs, hashing the raw bytes", async () => {
    const root = newRoot();
    const store = new LocalBlobStore(root);
    const data = Buffer.concat([crypto.randomBytes(300_000), Buffer.alloc(700_000, 7)]);
    for (const compress of [false, true]) {
      const key = `backups/b1/shard-0.rdb${compress ? ".gz" : ""}`;
      const w = store.createWriter(key, { compress });
      for (let i = 0; i < data.length; i += 65_536) w.write(data.subarray(i, i + 65_536));
      // Not visible under its final name before commit.
      assert.equal(await store.stat(key), undefined);
      const res = await w.commit();
      assert.equal(res.bytes, data.length);
      assert.equal(res.sha256, sha256(data));
      const st = await store.stat(key);
      assert.equal(st?.size, res.storedBytes);
      if (compress) {
        assert.ok(res.storedBytes < data.length * 0.5, `compressed ${res.storedBytes}`);
        assert.deepEqual(zlib.gunzipSync(fs.readFileSync(store.pathOf(key))), data);
        assert.deepEqual(await readAll(await store.openRead(key, { decompress: true })), data);
      } else {
        assert.equal(res.storedBytes, data.length);
        assert.deepEqual(await readAll(await store.openRead(key)), data);
        assert.deepEqual(await readAll(await store.openRead(key, { start: 10, end: 19 })), data.subarray(10, 20));
      }
    }
    assert.deepEqual(listFiles(root), ["backups/b1/shard-0.rdb", "backups/b1/shard-0.rdb.gz"]);
  });

  test("files are 0600 and directories 0700", async () => {
    const root = newRoot();
    const store = new LocalBlobStore(root);
    const w = store.createWriter("a/b/c.bin");
    w.end(Buffer.from("x"));
    await w.commit();
    assert.equal(fs.statSync(root).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(root, "a")).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(root, "a/b")).mode & 0o777, 0o700);
    assert.equal(fs.statSync(store.pathOf("a/b/c.bin")).mode & 0o777, 0o600);
  });

  test("rejects unsafe keys", () => {
    const store = new LocalBlobStore(newRoot());
    for (const bad of ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", ".hidden", "a/.x.partial", "a\\b", "a/"]) {
      assert.throws(() => store.createWriter(bad), /blob key/, bad);
    }
    assert.deepEqual(checkKey("backups/id/shard-0.rdb.gz"), ["backups", "id", "shard-0.rdb.gz"]);
  });

  test("abort and destroy leave neither the final file nor a temp file", async () => {
    const root = newRoot();
    const store = new LocalBlobStore(root);
    const w1 = store.createWriter("x/one.rdb", { compress: true });
    w1.write(crypto.randomBytes(100_000));
    await w1.abort();
    await w1.abort(); // idempotent
    await assert.rejects(w1.commit(), /aborted/);

    const w2 = store.createWriter("x/two.rdb");
    w2.write(crypto.randomBytes(100_000));
    await new Promise<void>((resolve) => {
      w2.once("close", () => resolve());
      w2.destroy(new Error("source died"));
    });
    await assert.rejects(w2.commit(), /source died/);
    assert.deepEqual(listFiles(root), []);
  });

  test("commit after an explicit end(), remove drops the blob and empty directories", async () => {
    const root = newRoot();
    const store = new LocalBlobStore(root);
    const w = store.createWriter("backups/id7/shard-0.rdb");
    w.end(Buffer.from("hello"));
    await new Promise<void>((resolve) => w.once("finish", () => resolve()));
    const res = await w.commit();
    assert.equal(res.bytes, 5);
    assert.deepEqual(await w.commit(), res); // idempotent
    await store.remove("backups/id7/shard-0.rdb");
    await store.remove("backups/id7/shard-0.rdb"); // absent is fine
    assert.equal(await store.stat("backups/id7/shard-0.rdb"), undefined);
    assert.equal(fs.existsSync(path.join(root, "backups")), false);
    await assert.rejects(store.openRead("backups/id7/shard-0.rdb"), /ENOENT/);
  });

  test("removeStale deletes leftovers of dead writers but not live ones", async () => {
    const root = newRoot();
    const store = new LocalBlobStore(root);
    const live = store.createWriter("b/live.rdb");
    live.write(Buffer.from("in progress"));
    // a leftover from a crashed process
    fs.mkdirSync(path.join(root, "b", "old"), { recursive: true });
    fs.writeFileSync(path.join(root, "b", "old", ".s.rdb.0123456789ab.partial"), "junk");
    fs.writeFileSync(path.join(root, "b", "keep.rdb"), "complete blob");
    await new Promise<void>((resolve) => live.write(Buffer.alloc(0), () => resolve())); // temp file exists now
    assert.equal(await store.removeStale(), 1);
    const left = listFiles(root);
    assert.ok(left.includes("b/keep.rdb"));
    assert.ok(left.some((f) => f.startsWith("b/.live.rdb.") && f.endsWith(".partial")), left.join(","));
    await live.commit();
    assert.deepEqual(listFiles(root), ["b/keep.rdb", "b/live.rdb"]);
  });

  test("a failed or aborted writer prunes the directories it created, up to the root", async () => {
    const root = newRoot();
    const store = new LocalBlobStore(root);
    fs.mkdirSync(path.join(root, "backups", "other"), { recursive: true });
    fs.writeFileSync(path.join(root, "backups", "other", "keep.rdb"), "x");
    // Aborted after data, destroyed with an error, aborted before the temp file existed.
    const w1 = store.createWriter("backups/id1/shard-0.rdb.gz", { compress: true });
    w1.write(crypto.randomBytes(10_000));
    await waitFor("the temp file", () => fs.existsSync(path.join(root, "backups", "id1")) && fs.readdirSync(path.join(root, "backups", "id1")).length === 1 || undefined);
    await w1.abort();
    const w2 = store.createWriter("backups/id2/deep/shard-0.rdb");
    w2.write(Buffer.from("partial"));
    await new Promise<void>((resolve) => {
      w2.once("close", () => resolve());
      w2.destroy(new Error("capture failed"));
    });
    const w3 = store.createWriter("backups/id3/shard-0.rdb");
    await w3.abort();
    assert.deepEqual(fs.readdirSync(path.join(root, "backups")), ["other"]);
    assert.deepEqual(listFiles(root), ["backups/other/keep.rdb"]);
    // And with nothing else left, the writer's directories go entirely (the root stays).
    const root2 = newRoot();
    const w4 = new LocalBlobStore(root2).createWriter("backups/id4/shard-0.rdb");
    w4.write(Buffer.from("x"));
    await new Promise<void>((resolve) => w4.write(Buffer.alloc(0), () => resolve()));
    await w4.abort();
    assert.deepEqual(fs.readdirSync(root2), []);
  });

  test("list walks committed blobs only and removes empty directories on the way", async () => {
    const root = newRoot();
    const store = new LocalBlobStore(root);
    for (const k of ["backups/a/shard-0.rdb.gz", "backups/b/shard-0.rdb.gz", "exports/a/shard-0.rdb"]) {
      const w = store.createWriter(k);
      w.end(Buffer.from(k));
      await w.commit();
    }
    // Empty directories left by older versions or by hand, nested ones too, and a live writer's temp file.
    for (const d of ["backups/empty1", "backups/empty2/deeper/deepest", "exports/gone"]) fs.mkdirSync(path.join(root, d), { recursive: true });
    const live = store.createWriter("backups/c/shard-0.rdb");
    await new Promise<void>((resolve) => live.write(Buffer.from("in progress"), () => resolve()));
    const listed: string[] = [];
    for await (const b of store.list("backups/")) listed.push(`${b.key}:${b.size}`);
    assert.deepEqual(listed, ["backups/a/shard-0.rdb.gz:24", "backups/b/shard-0.rdb.gz:24"]);
    assert.deepEqual(fs.readdirSync(path.join(root, "backups")).sort(), ["a", "b", "c"]); // empties gone, live kept
    assert.ok(fs.existsSync(path.join(root, "exports", "gone"))); // outside the prefix: not walked
    const all: string[] = [];
    for await (const b of store.list("")) all.push(b.key);
    assert.deepEqual(all, ["backups/a/shard-0.rdb.gz", "backups/b/shard-0.rdb.gz", "exports/a/shard-0.rdb"]);
    assert.equal(fs.existsSync(path.join(root, "exports", "gone")), false);
    await live.commit();
    // A prefix that names a blob, or nothing, or an unsafe path.
    const one: string[] = [];
    for await (const b of store.list("backups/c/shard-0.rdb")) one.push(b.key);
    assert.deepEqual(one, ["backups/c/shard-0.rdb"]);
    for await (const b of store.list("nothing/here/")) assert.fail(b.key);
    await assert.rejects(async () => {
      for await (const b of store.list("../")) void b;
    }, /blob key/);
    // A missing root lists nothing.
    for await (const b of new LocalBlobStore(path.join(root, "absent")).list("")) assert.fail(b.key);
  });

  test("removeStale(olderThanMs) spares recent temp files and prunes empty directories", async () => {
    const root = newRoot();
    const store = new LocalBlobStore(root);
    const oldTemp = path.join(root, "b", "old", ".s.rdb.0123456789ab.partial");
    const newTemp = path.join(root, "b", "new", ".s.rdb.ba9876543210.partial");
    for (const f of [oldTemp, newTemp]) {
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, "junk");
    }
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    fs.utimesSync(oldTemp, twoHoursAgo, twoHoursAgo);
    fs.mkdirSync(path.join(root, "b", "empty"), { recursive: true });
    assert.equal(await store.removeStale(3600_000), 1);
    assert.deepEqual(listFiles(root), ["b/new/.s.rdb.ba9876543210.partial"]);
    assert.deepEqual(fs.readdirSync(path.join(root, "b")), ["new"]);
    assert.equal(await store.removeStale(), 1);
    assert.deepEqual(fs.readdirSync(root), []);
  });

  test("describe", () => {
    const root = newRoot();
    assert.equal(new LocalBlobStore(root).describe(), `file:${root}`);
  });

  test("1 GB through a compressing writer keeps memory flat (backpressure end to end)", async () => {
    const store = new LocalBlobStore(newRoot());
    const total = 1024 * 1024 * 1024;
    const block = crypto.randomBytes(64 * 1024);
    // Mostly repetitive with some random noise, so gzip has real work but the test stays fast.
    const chunk = Buffer.concat([block.subarray(0, 4096), Buffer.alloc(60 * 1024, 1)]);
    const hash = crypto.createHash("sha256");
    let produced = 0;
    let peakRss = 0;
    const baseRss = process.memoryUsage().rss;
    const source = new Readable({
      read() {
        if (produced >= total) return this.push(null);
        produced += chunk.length;
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        hash.update(chunk);
        this.push(chunk);
      },
    });
    const w = store.createWriter("big/one.gz", { compress: true });
    await pipeline(source, w);
    const res = await w.commit();
    assert.equal(res.bytes, total);
    assert.equal(res.sha256, hash.digest("hex"));
    const growth = peakRss - baseRss;
    assert.ok(growth < 100 * 1024 * 1024, `RSS grew by ${(growth / 1048576).toFixed(1)} MB`);
  });
});
