// Opens the blob store a URL names: `file:PATH` or a plain path (the embedded default), or `s3://bucket/prefix`.
import path from "node:path";
import type { S3Options } from "../config";
import type { BlobStore } from "./blob-store";
import { LocalBlobStore } from "./local";

export async function openBlobStore(url: string, _s3: S3Options): Promise<BlobStore> {
  if (/^s3:\/\//i.test(url)) throw new Error("s3:// storage is not available in this build");
  const dir = url.startsWith("file:") ? url.slice("file:".length) : url;
  return new LocalBlobStore(path.resolve(dir));
}
