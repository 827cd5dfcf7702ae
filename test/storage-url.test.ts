// --storage URL / CRS_STORAGE and the S3 options: what each form means, precise errors naming the option, key
// files, and a store opened from a URL that really stores in s3rver.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LocalBlobStore } from "../src/storage/local";
import { S3BlobStore } from "../src/storage/s3";
import { describeStorage, openBlobStore, parseStorageUrl, StorageConfigError, StorageUrlOptions } from "../src/storage/url";
import { startS3rver } from "./support/s3";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "crs-storage-url-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const KEYS = { AWS_ACCESS_KEY_ID: "AKIAEXAMPLEID", AWS_SECRET_ACCESS_KEY: "top-secret-value" };
const base: StorageUrlOptions = { defaultDir: "/var/lib/crs/files", env: {} };
const s3opts = (o: Partial<StorageUrlOptions> = {}): StorageUrlOptions => ({ ...base, env: { ...KEYS }, ...o });

function keyFile(name: string, content: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, content, { mode: 0o600 });
  return f;
}

function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StorageConfigError, String(e));
    assert.match(e.message, re);
    assert.ok(!e.message.includes("top-secret-value"), e.message);
    return true;
  });
}

describe("parseStorageUrl", () => {
  test("directories: default, plain paths, file: URLs", () => {
    assert.deepEqual(parseStorageUrl(undefined, base), { kind: "file", root: "/var/lib/crs/files" });
    assert.deepEqual(parseStorageUrl("  ", base), { kind: "file", root: "/var/lib/crs/files" });
    assert.deepEqual(parseStorageUrl("/srv/backups", base), { kind: "file", root: "/srv/backups" });
    assert.deepEqual(parseStorageUrl("rel/dir", base), { kind: "file", root: path.resolve("rel/dir") });
    assert.deepEqual(parseStorageUrl("./a:b", base), { kind: "file", root: path.resolve("a:b") });
    assert.deepEqual(parseStorageUrl("file:/srv/x", base), { kind: "file", root: "/srv/x" });
    assert.deepEqual(parseStorageUrl("file:rel", base), { kind: "file", root: path.resolve("rel") });
    assert.deepEqual(parseStorageUrl("file:///srv/with%20space", base), { kind: "file", root: "/srv/with space" });
    rejects(() => parseStorageUrl("file:", base), /file: needs a directory/);
    rejects(() => parseStorageUrl("gs://bucket/x", base), /^--storage \(CRS_STORAGE\): unsupported storage "gs:\/\/bucket\/x"; use a directory, file:PATH or s3:\/\/bucket\/prefix$/);
  });

  test("s3: bucket, prefix, region, endpoint, path style, credentials from the environment", () => {
    assert.deepEqual(parseStorageUrl("s3://my-bucket", s3opts()), {
      kind: "s3", bucket: "my-bucket", prefix: "", region: "us-east-1", endpoint: undefined, forcePathStyle: false,
      credentials: { accessKeyId: "AKIAEXAMPLEID", secretAccessKey: "top-secret-value" }, credentialsFrom: "AWS_ACCESS_KEY_ID",
    });
    const c = parseStorageUrl("s3://backups-1250000000/crs/prod/", s3opts({ s3Endpoint: "https://cos.ap-guangzhou.myqcloud.com/", s3Region: "ap-guangzhou", env: { ...KEYS, AWS_SESSION_TOKEN: "tok" } }));
    assert.equal(c.kind, "s3");
    if (c.kind !== "s3") return;
    assert.equal(c.prefix, "crs/prod/");
    assert.equal(c.region, "ap-guangzhou");
    assert.equal(c.endpoint, "https://cos.ap-guangzhou.myqcloud.com");
    assert.equal(c.credentials.sessionToken, "tok");
    assert.equal(describeStorage(c), "s3://backups-1250000000/crs/prod/ @ https://cos.ap-guangzhou.myqcloud.com");
    const m = parseStorageUrl("s3://minio-bucket/x", s3opts({ s3Endpoint: "http://127.0.0.1:9000", s3PathStyle: true, env: { ...KEYS, AWS_REGION: "eu-west-1" } }));
    assert.ok(m.kind === "s3" && m.forcePathStyle && m.region === "eu-west-1" && m.prefix === "x/");
    assert.equal(describeStorage(m), "s3://minio-bucket/x/ @ http://127.0.0.1:9000");
    assert.equal(describeStorage(parseStorageUrl("s3://b-1/", s3opts({ s3Region: "ap-beijing" }))), "s3://b-1/ (ap-beijing)");
  });

  test("s3: precise errors naming the option", () => {
    rejects(() => parseStorageUrl("s3://", s3opts()), /--storage \(CRS_STORAGE\): invalid bucket name ""/);
    rejects(() => parseStorageUrl("s3://Upper_Case", s3opts()), /invalid bucket name "Upper_Case" \(3-63 lowercase letters, digits, '\.' and '-'\)/);
    rejects(() => parseStorageUrl("s3://ok-bucket/a/../b", s3opts()), /invalid prefix "a\/\.\.\/b"/);
    rejects(() => parseStorageUrl("s3://ok-bucket/a//b", s3opts()), /invalid prefix/);
    rejects(() => parseStorageUrl("s3://ok-bucket/x?versionId=1", s3opts()), /expected s3:\/\/bucket or s3:\/\/bucket\/prefix/);
    rejects(() => parseStorageUrl("s3://ok-bucket", s3opts({ s3Endpoint: "minio:9000" })), /^--s3-endpoint must start with http:\/\/ or https:\/\//);
    rejects(() => parseStorageUrl("s3://ok-bucket", s3opts({ s3Endpoint: "not a url" })), /^--s3-endpoint: not a URL/);
    rejects(() => parseStorageUrl("s3://ok-bucket", s3opts({ s3Endpoint: "http://user:top-secret-value@host:9000" })), /^--s3-endpoint must not contain credentials/);
    rejects(() => parseStorageUrl("s3://ok-bucket", s3opts({ s3Endpoint: "http://host:9000/path" })), /^--s3-endpoint must be scheme:\/\/host\[:port\] without a path/);
    rejects(() => parseStorageUrl("s3://ok-bucket", s3opts({ s3Region: "us east" })), /^--s3-region: invalid region "us east"/);
    rejects(() => parseStorageUrl("s3://ok-bucket", { ...base, env: {} }), /needs an access key: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --s3-key-file/);
    rejects(() => parseStorageUrl("s3://ok-bucket", { ...base, env: { AWS_ACCESS_KEY_ID: "x" } }), /^AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not$/);
    rejects(() => parseStorageUrl("s3://ok-bucket", { ...base, env: { AWS_SECRET_ACCESS_KEY: "top-secret-value" } }), /^AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not$/);
    // S3 options with a local store are a mistake, not something to ignore.
    rejects(() => parseStorageUrl(undefined, { ...base, s3Endpoint: "http://h:1" }), /^--s3-endpoint applies only to s3:\/\/ storage, but --storage \(CRS_STORAGE\) is not set \(local directory\)$/);
    rejects(() => parseStorageUrl("/srv/x", { ...base, s3PathStyle: true }), /^--s3-path-style applies only to s3:\/\/ storage, but --storage \(CRS_STORAGE\) is "\/srv\/x"$/);
    rejects(() => parseStorageUrl("file:/x", { ...base, s3KeyFile: "/k" }), /^--s3-key-file applies only to s3:\/\/ storage/);
  });

  test("key files: JSON or two lines; they take precedence over the environment", () => {
    const json = keyFile("k.json", JSON.stringify({ accessKeyId: "AKIDJSON", secretAccessKey: "top-secret-value" }));
    const lines = keyFile("k.txt", "\n  AKIDLINES  \r\ntop-secret-value\n\n");
    const three = keyFile("k3.txt", "AKID3\ntop-secret-value\nsession-tok\n");
    const a = parseStorageUrl("s3://bkt", s3opts({ s3KeyFile: json }));
    assert.ok(a.kind === "s3");
    assert.deepEqual([a.credentials, a.credentialsFrom], [{ accessKeyId: "AKIDJSON", secretAccessKey: "top-secret-value" }, json]);
    const b = parseStorageUrl("s3://bkt", s3opts({ s3KeyFile: lines }));
    assert.ok(b.kind === "s3");
    assert.deepEqual(b.credentials, { accessKeyId: "AKIDLINES", secretAccessKey: "top-secret-value" });
    const c = parseStorageUrl("s3://bkt", { ...base, s3KeyFile: three });
    assert.ok(c.kind === "s3");
    assert.deepEqual(c.credentials, { accessKeyId: "AKID3", secretAccessKey: "top-secret-value", sessionToken: "session-tok" });

    rejects(() => parseStorageUrl("s3://bkt", s3opts({ s3KeyFile: path.join(tmp, "absent") })), /^--s3-key-file ".*absent": cannot read it \(ENOENT\)$/);
    rejects(() => parseStorageUrl("s3://bkt", s3opts({ s3KeyFile: keyFile("bad.json", '{"accessKeyId": "x", top-secret-value') })), /: not valid JSON$/);
    rejects(() => parseStorageUrl("s3://bkt", s3opts({ s3KeyFile: keyFile("half.json", '{"accessKeyId": "x", "secret": "top-secret-value"}') })), /JSON needs non-empty string fields "accessKeyId" and "secretAccessKey"/);
    rejects(() => parseStorageUrl("s3://bkt", s3opts({ s3KeyFile: keyFile("one.txt", "top-secret-value\n") })), /expected the access key id on the first line and the secret on the second .* found 1 non-empty line\(s\)/);
  });

  test("openBlobStore: a directory, or s3rver through a key file", async () => {
    const local = openBlobStore(parseStorageUrl(`file:${path.join(tmp, "files")}`, base));
    assert.ok(local instanceof LocalBlobStore);
    await local.probe();
    assert.equal(local.describe(), `file:${path.join(tmp, "files")}`);
    assert.equal((fs.statSync(path.join(tmp, "files")).mode & 0o777), 0o700);

    const s3 = await startS3rver();
    try {
      await s3.createBucket("from-url");
      const kf = keyFile("s3rver.json", JSON.stringify(s3.credentials));
      const cfg = parseStorageUrl("s3://from-url/crs", { ...base, s3Endpoint: s3.endpoint, s3PathStyle: true, s3KeyFile: kf });
      const store = openBlobStore(cfg);
      assert.ok(store instanceof S3BlobStore);
      assert.equal(store.describe(), `s3://from-url/crs/ @ ${s3.endpoint}`);
      await store.probe();
      const w = store.createWriter("backups/x/shard-0.rdb.gz", { compress: true });
      w.end(Buffer.from("hello"));
      const res = await w.commit();
      assert.equal(res.bytes, 5);
      // It is under the prefix in the bucket.
      const keys: string[] = [];
      for await (const b of s3.store("from-url").list("")) keys.push(b.key);
      assert.deepEqual(keys, ["crs/backups/x/shard-0.rdb.gz"]);
      const missing = openBlobStore(parseStorageUrl("s3://not-there", { ...base, s3Endpoint: s3.endpoint, s3PathStyle: true, s3KeyFile: kf }));
      await assert.rejects(missing.probe(), /the bucket of s3:\/\/not-there\/ @ http:\/\/127\.0\.0\.1:\d+ does not exist/);
    } finally {
      await s3.stop();
    }
  });
});
