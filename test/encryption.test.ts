// The encryption layer on its own: the chunked AES-256-GCM format (round trips of every awkward length, a flipped
// byte, truncation at a chunk boundary, reordered or dropped chunks, byte ranges), the local keyring (owner-only or
// refused, wrong and missing keys named), and the EncryptedBlobStore over a real directory and a real S3 server
// (s3rver): nothing stored holds the plaintext, and reads give it back.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ChunkDecryptor, ChunkEncryptor, DecryptionError, HEADER_BYTES, plainSize, storedSize, TAG_BYTES } from "../src/storage/encryption";
import { EncryptedBlobStore } from "../src/storage/encrypted";
import { KeyringError, LocalKeyring, readKeyringDoc, withNewKey, writeKeyring } from "../src/storage/keys/keyring";
import { KeyUnavailableError } from "../src/storage/keys/provider";
import type { BlobStore } from "../src/storage/blob-store";
import { LocalBlobStore } from "../src/storage/local";
import { startS3rver, S3TestServer } from "./support/s3";

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "crs-enc-"));

async function collect(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function encrypt(key: Buffer, plain: Buffer, chunk: number, pieces = 7919): Promise<Buffer> {
  const enc = new ChunkEncryptor(key, chunk);
  const out = collect(enc);
  for (let at = 0; at < plain.length; at += pieces) enc.write(plain.subarray(at, at + pieces));
  enc.end();
  return out;
}

async function decrypt(key: Buffer, stored: Buffer, o: ConstructorParameters<typeof ChunkDecryptor>[1] = {}): Promise<Buffer> {
  const dec = new ChunkDecryptor(key, o);
  const out = collect(dec);
  for (let at = 0; at < stored.length; at += 4099) dec.write(stored.subarray(at, at + 4099));
  dec.end();
  return out;
}

function keyringFile(dir: string, doc: object, mode = 0o600): string {
  const file = path.join(dir, "keys.json");
  fs.writeFileSync(file, JSON.stringify(doc), { mode });
  fs.chmodSync(file, mode);
  return file;
}

const KEY1 = crypto.randomBytes(32).toString("base64");

describe("the chunked AES-256-GCM format", () => {
  const key = crypto.randomBytes(32);
  const C = 1024;

  test("round trips every length around the chunk size, with the stored size the format promises", async () => {
    for (const n of [0, 1, C - 1, C, C + 1, 2 * C, 3 * C + 17, 50_000]) {
      const plain = crypto.randomBytes(n);
      const stored = await encrypt(key, plain, C);
      assert.equal(stored.length, storedSize(n, C), `stored size of ${n} bytes`);
      assert.equal(plainSize(stored.length, C), n);
      assert.ok(stored.subarray(0, 8).equals(Buffer.from("CRSBKENC")));
      assert.deepEqual(await decrypt(key, stored), plain, `${n} bytes`);
    }
  });

  test("a fresh salt per file: the same plaintext under the same data key never gives the same bytes", async () => {
    const plain = Buffer.alloc(5000, 7);
    assert.notDeepEqual(await encrypt(key, plain, C), await encrypt(key, plain, C));
  });

  test("a flipped byte anywhere (header, ciphertext, tag) is detected", async () => {
    const plain = crypto.randomBytes(4 * C + 100);
    const stored = await encrypt(key, plain, C);
    for (const at of [3, 20, HEADER_BYTES, HEADER_BYTES + 500, HEADER_BYTES + C + 3, stored.length - 1, stored.length - TAG_BYTES - 1]) {
      const bad = Buffer.from(stored);
      bad[at]! ^= 0x01;
      await assert.rejects(decrypt(key, bad), (e: unknown) => e instanceof DecryptionError, `flip at ${at}`);
    }
  });

  test("truncation (also at a chunk boundary), dropped, duplicated and reordered chunks are detected", async () => {
    const stored = await encrypt(key, crypto.randomBytes(4 * C + 100), C);
    const sealed = C + TAG_BYTES;
    const chunk = (i: number) => stored.subarray(HEADER_BYTES + i * sealed, HEADER_BYTES + (i + 1) * sealed);
    const header = stored.subarray(0, HEADER_BYTES);
    const cases: Record<string, Buffer> = {
      "cut at a chunk boundary": stored.subarray(0, HEADER_BYTES + 2 * sealed),
      "cut mid-chunk": stored.subarray(0, HEADER_BYTES + 2 * sealed + 100),
      "cut inside the header": stored.subarray(0, 20),
      "the last chunk dropped": stored.subarray(0, HEADER_BYTES + 4 * sealed),
      "two chunks swapped": Buffer.concat([header, chunk(1), chunk(0), stored.subarray(HEADER_BYTES + 2 * sealed)]),
      "a chunk repeated": Buffer.concat([header, chunk(0), chunk(0), stored.subarray(HEADER_BYTES + sealed)]),
      "bytes after the end": Buffer.concat([stored, Buffer.alloc(20)]),
    };
    for (const [what, bad] of Object.entries(cases)) {
      await assert.rejects(decrypt(key, bad), (e: unknown) => e instanceof DecryptionError && /truncated|authentication|header/.test((e as Error).message), what);
    }
  });

  test("the wrong data key fails authentication, with the file named", async () => {
    const stored = await encrypt(key, Buffer.from("hello"), C);
    await assert.rejects(decrypt(crypto.randomBytes(32), stored, { name: "shard-0" }), /shard-0 failed authentication at chunk 0/);
  });
});

describe("the local keyring", () => {
  test("owner-only or refused; bad documents are refused naming the field", () => {
    const dir = tmp();
    assert.throws(() => new LocalKeyring(keyringFile(dir, { active: "k1", keys: { k1: KEY1 } }, 0o644)), (e: unknown) => e instanceof KeyringError && /readable or writable by others \(mode 644\).*chmod 600/.test((e as Error).message));
    assert.throws(() => new LocalKeyring(keyringFile(dir, { active: "k2", keys: { k1: KEY1 } })), /active must name one of the keys \(k1\)/);
    assert.throws(() => new LocalKeyring(keyringFile(dir, { active: "k1", keys: { k1: "c2hvcnQ=" } })), /keys\.k1 must be the base64 of exactly 32 bytes/);
    assert.throws(() => new LocalKeyring(path.join(dir, "none.json")), /cannot read the keyring .*ENOENT/);
    const ok = new LocalKeyring(keyringFile(dir, { active: "k1", keys: { k1: KEY1 } }));
    assert.equal(ok.activeKeyId(), "k1");
  });

  test("data keys wrap and unwrap; a missing key and a different key under the same id are named", async () => {
    const dir = tmp();
    const file = keyringFile(dir, { active: "k1", keys: { k1: KEY1 } });
    const ring = new LocalKeyring(file);
    const made = await ring.generateDataKey();
    assert.equal(made.keyId, "k1");
    assert.ok(!made.wrappedKey.includes(made.dataKey.toString("base64")));
    assert.deepEqual(await ring.unwrap(made), made.dataKey);
    // Rotation: a new active key, picked up from the file without a restart; the same data key re-wrapped.
    writeKeyring(file, withNewKey(readKeyringDoc(file), "k2"));
    assert.equal(ring.activeKeyId(), "k2");
    const moved = await ring.rewrap(made, "k2");
    assert.equal(moved.keyId, "k2");
    assert.deepEqual(await ring.unwrap(moved), made.dataKey);
    await assert.rejects(ring.unwrap({ keyId: "k7", wrappedKey: made.wrappedKey }), (e: unknown) => e instanceof KeyUnavailableError && e.keyId === "k7" && /master key "k7", which is not in the keyring/.test(e.message));
    const other = new LocalKeyring(keyringFile(tmp(), { active: "k1", keys: { k1: crypto.randomBytes(32).toString("base64") } }));
    await assert.rejects(other.unwrap(made), /master key "k1", but the key of that id .* does not open its data key/);
  });
});

describe("the encryption layer over a directory and over S3", () => {
  let s3: S3TestServer;
  let ring: LocalKeyring;
  // An RDB-looking payload with a known value: neither may appear in any stored byte.
  const KNOWN = "known-secret-value-7f3a9c";
  const plain = Buffer.concat([Buffer.from("REDIS0011"), ...Array.from({ length: 3000 }, (_, i) => Buffer.from(`key:${i}=${KNOWN}:${i};`)), crypto.randomBytes(100_000)]);
  const sha = crypto.createHash("sha256").update(plain).digest("hex");

  before(async () => {
    s3 = await startS3rver();
    await s3.createBucket("enc");
    ring = new LocalKeyring(keyringFile(tmp(), { active: "k1", keys: { k1: KEY1 } }));
  });
  after(async () => {
    await s3?.stop();
  });

  async function exercise(backend: BlobStore, storedBytes: () => Promise<Buffer[]>): Promise<void> {
    const store = new EncryptedBlobStore(backend, ring);
    const { dataKey: _unused, ...encryption } = await ring.generateDataKey();
    for (const compress of [true, false]) {
      const key = `backups/b1/shard-${compress ? 0 : 1}.rdb${compress ? ".gz" : ""}`;
      const w = store.createWriter(key, { compress, encryption });
      await pipeline(Readable.from([plain.subarray(0, 70_000), plain.subarray(70_000)]), w);
      const r = await w.commit();
      assert.equal(r.bytes, plain.length);
      assert.equal(r.sha256, sha);
      assert.equal(r.storedBytes, (await store.stat(key))!.size);
      assert.deepEqual(await collect(await store.openRead(key, { decompress: compress, encryption })), plain);
    }
    // A byte range of the uncompressed file, across chunk boundaries, as a download's Range asks.
    const key = "backups/b1/shard-1.rdb";
    for (const [s, e] of [[0, 0], [65_530, 65_600], [100_000, plain.length - 1], [plain.length - 5, plain.length + 100]] as const) {
      const got = await collect(await store.openRead(key, { encryption, start: s, end: e }));
      assert.deepEqual(got, plain.subarray(s, Math.min(e, plain.length - 1) + 1), `range ${s}-${e}`);
    }
    for (const bytes of await storedBytes()) {
      assert.equal(bytes.indexOf("REDIS"), -1, "the RDB magic is not stored in clear");
      assert.equal(bytes.indexOf(KNOWN), -1, "the known value is not stored in clear");
    }
    // Without its key the layer names the key; a plain read of the bytes is only ciphertext.
    await assert.rejects(store.openRead(key, { encryption: { keyId: "gone", wrappedKey: encryption.wrappedKey } }), /backups\/b1\/shard-1\.rdb is encrypted with master key "gone"/);
    await assert.rejects(new EncryptedBlobStore(backend, undefined).openRead(key, { encryption }), /no keyring is configured: start with --encryption-keys/);
    assert.throws(() => backend.createWriter("x/y", { encryption }), /cannot encrypt or decrypt by itself/);
  }

  test("a local directory: nothing plain is stored, everything reads back (whole, gunzipped, by range)", async () => {
    const root = tmp();
    await exercise(new LocalBlobStore(root), async () => {
      const files: string[] = [];
      const walk = (d: string): void => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) (e.isDirectory() ? walk : (p: string) => files.push(p))(path.join(d, e.name));
      };
      walk(root);
      assert.equal(files.length, 2);
      return files.map((f) => fs.readFileSync(f));
    });
  });

  test("an S3 bucket (s3rver): nothing plain is stored, everything reads back", async () => {
    const backend = s3.store("enc");
    try {
      await exercise(backend, async () => {
        const out: Buffer[] = [];
        for await (const b of backend.list("")) out.push(await collect(await backend.openRead(b.key)));
        assert.equal(out.length, 2);
        return out;
      });
    } finally {
      (backend as { destroy?: () => void }).destroy?.();
    }
  });
});
