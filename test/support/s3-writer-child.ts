// Child process for the crash test: streams random bytes into an S3BlobStore writer until it is killed.
//   node s3-writer-child.js ENDPOINT BUCKET PREFIX KEY
import crypto from "node:crypto";
import { S3BlobStore } from "../../src/storage/s3";
import { S3RVER_CREDENTIALS } from "./s3";

async function main(): Promise<void> {
  const [endpoint, bucket, prefix, key] = process.argv.slice(2);
  const store = new S3BlobStore({ bucket, prefix, endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS, partSizeBytes: 5 * 1024 * 1024 });
  const writer = store.createWriter(key);
  const block = crypto.randomBytes(256 * 1024);
  for (;;) {
    if (!writer.write(block)) await new Promise((resolve) => writer.once("drain", resolve));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
