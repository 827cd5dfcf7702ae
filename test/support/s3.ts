// A real S3 server for tests and benchmarks: s3rver (the npm S3 emulator, storing in its own temp directory)
// in a CHILD process on a free port, so that the memory of the process under test is its own, and a test can
// kill writers without killing the server.
//
// s3rver 3.7.1 implements multipart uploads (create, upload part, complete) but not ListMultipartUploads,
// ListParts nor AbortMultipartUpload, which S3BlobStore.removeStale() and lib-storage's abort path need. The
// child adds those three operations in front of s3rver's router, over s3rver's own on-disk upload records
// (<dir>/<bucket>/._S3rver_uploads/<uploadId>/{key,metadata,<part>,<part>.md5}), answering the XML documented
// in the S3 API reference. Everything else is s3rver's (signature V4 checks included). `{ plain: true }` runs
// s3rver as published instead (ListMultipartUploads answers NotImplemented, the other two MethodNotAllowed),
// for the tests of a store without them.
//
//   const s3 = await startS3rver();            // { endpoint, credentials, dir, ... }
//   await s3.createBucket("backups");
//   const store = s3.store("backups", { prefix: "crs" });
//   ...
//   await s3.stop();
//
// Run alone (`node dist/test/support/s3.js --serve DIR [--plain]`) it prints {"port":N} and serves until SIGTERM.
import { ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { track } from "./reaper";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { S3BlobStore, S3StoreOptions } from "../../src/storage/s3";

/** s3rver's only account. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export interface S3TestServer {
  endpoint: string;
  port: number;
  /** s3rver's data directory. */
  dir: string;
  proc: ChildProcess;
  credentials: { accessKeyId: string; secretAccessKey: string };
  createBucket(name: string): Promise<void>;
  /** An S3BlobStore on this server (path-style, us-east-1, s3rver's credentials unless given). */
  store(bucket: string, opts?: Partial<S3StoreOptions>): S3BlobStore;
  /** Incomplete multipart uploads as s3rver keeps them on disk: [{ uploadId, key }] (checked without S3). */
  uploadsOnDisk(bucket: string): Promise<Array<{ uploadId: string; key: string }>>;
  /** Stops the server and removes its directory (unless it was given). */
  stop(): Promise<void>;
}

export async function startS3rver(opts: { dir?: string; plain?: boolean } = {}): Promise<S3TestServer> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "crs-s3rver-"));
  const proc = track(spawn(process.execPath, [__filename, "--serve", dir, ...(opts.plain ? ["--plain"] : [])], { stdio: ["ignore", "pipe", "inherit"] }));
  const port = await new Promise<number>((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stdout! });
    const timer = setTimeout(() => reject(new Error("s3rver did not start within 20 s")), 20_000);
    rl.once("line", (line) => {
      clearTimeout(timer);
      rl.close();
      try {
        resolve((JSON.parse(line) as { port: number }).port);
      } catch {
        reject(new Error(`s3rver printed ${JSON.stringify(line)}`));
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with ${code} before it listened`));
    });
  });
  proc.stdout!.resume();
  let exited = false;
  proc.once("exit", () => (exited = true));
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
  return {
    endpoint,
    port,
    dir,
    proc,
    credentials: S3RVER_CREDENTIALS,
    createBucket: async (name) => {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    store: (bucket, o = {}) => new S3BlobStore({ bucket, endpoint, region: "us-east-1", forcePathStyle: true, credentials: S3RVER_CREDENTIALS, ...o }),
    uploadsOnDisk: (bucket) => readUploads(path.join(dir, bucket)),
    stop: async () => {
      client.destroy();
      if (!exited) {
        await new Promise<void>((resolve) => {
          proc.once("exit", () => resolve());
          proc.kill("SIGTERM");
        });
      }
      if (!opts.dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

// ---- the child: s3rver plus the three multipart operations it lacks ----

const UPLOADS = "._S3rver_uploads";

async function readUploads(bucketDir: string): Promise<Array<{ uploadId: string; key: string; initiated: Date }>> {
  const root = path.join(bucketDir, UPLOADS);
  let ids: string[];
  try {
    ids = await fsp.readdir(root);
  } catch {
    return [];
  }
  const out: Array<{ uploadId: string; key: string; initiated: Date }> = [];
  for (const uploadId of ids) {
    try {
      const keyFile = path.join(root, uploadId, "key");
      const [key, st] = await Promise.all([fsp.readFile(keyFile, "utf8"), fsp.stat(keyFile)]);
      out.push({ uploadId, key, initiated: st.mtime });
    } catch {
      /* being created or removed */
    }
  }
  return out;
}

const xmlEscape = (s: string): string => s.replace(/[<>&'"]/g, (c) => `&${({ "<": "lt", ">": "gt", "&": "amp", "'": "apos", '"': "quot" } as Record<string, string>)[c]};`);
const el = (name: string, value: string | number | boolean): string => `<${name}>${xmlEscape(String(value))}</${name}>`;
const XMLNS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';

interface KoaLikeContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  type: string;
}
type Next = () => Promise<unknown>;

function q(ctx: KoaLikeContext, name: string): string | undefined {
  const v = ctx.query[name];
  return Array.isArray(v) ? v[0] : v;
}

function s3Error(ctx: KoaLikeContext, status: number, code: string, message: string): void {
  ctx.status = status;
  ctx.type = "application/xml";
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${el("Code", code)}${el("Message", message)}</Error>`;
}

function multipartShim(dir: string): (ctx: KoaLikeContext, next: Next) => Promise<unknown> {
  return async (ctx, next) => {
    const segs = ctx.path.split("/").slice(1);
    const bucket = decodeURIComponent(segs[0] ?? "");
    const key = segs.slice(1).map(decodeURIComponent).join("/");
    const listUploads = ctx.method === "GET" && !key && "uploads" in ctx.query;
    const uploadId = q(ctx, "uploadId");
    const listParts = ctx.method === "GET" && key && uploadId !== undefined;
    const abort = ctx.method === "DELETE" && key && uploadId !== undefined;
    if (!listUploads && !listParts && !abort) return next();
    // s3rver's authentication runs inside its router; insist on its access key at least.
    const auth = String(ctx.headers.authorization ?? "");
    if (!auth.includes(`Credential=${S3RVER_CREDENTIALS.accessKeyId}/`)) return s3Error(ctx, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
    const bucketDir = path.join(dir, bucket);
    if (!bucket || !fs.existsSync(bucketDir)) return s3Error(ctx, 404, "NoSuchBucket", "The specified bucket does not exist");
    const uploads = await readUploads(bucketDir);

    if (listUploads) {
      const prefix = q(ctx, "prefix") ?? "";
      const keyMarker = q(ctx, "key-marker") ?? "";
      const idMarker = q(ctx, "upload-id-marker") ?? "";
      const max = Math.min(1000, Number(q(ctx, "max-uploads") ?? 1000));
      const sorted = uploads
        .filter((u) => u.key.startsWith(prefix))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiated.getTime() - b.initiated.getTime() || (a.uploadId < b.uploadId ? -1 : 1)))
        .filter((u) => !keyMarker || u.key > keyMarker || (u.key === keyMarker && idMarker !== "" && u.uploadId > idMarker));
      const page = sorted.slice(0, max);
      const truncated = sorted.length > page.length;
      const last = page[page.length - 1];
      ctx.status = 200;
      ctx.type = "application/xml";
      ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult ${XMLNS}>${el("Bucket", bucket)}${el("KeyMarker", keyMarker)}${el("UploadIdMarker", idMarker)}` +
        `${el("NextKeyMarker", truncated ? last.key : "")}${el("NextUploadIdMarker", truncated ? last.uploadId : "")}${el("Prefix", prefix)}${el("MaxUploads", max)}${el("IsTruncated", truncated)}` +
        page.map((u) => `<Upload>${el("Key", u.key)}${el("UploadId", u.uploadId)}${el("Initiated", u.initiated.toISOString())}${el("StorageClass", "STANDARD")}</Upload>`).join("") +
        "</ListMultipartUploadsResult>";
      return;
    }

    const upload = uploads.find((u) => u.uploadId === uploadId && u.key === key);
    if (!upload) return s3Error(ctx, 404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.");
    const uploadDir = path.join(bucketDir, UPLOADS, upload.uploadId);
    if (abort) {
      await fsp.rm(uploadDir, { recursive: true, force: true });
      ctx.status = 204;
      ctx.body = null;
      return;
    }
    const marker = Number(q(ctx, "part-number-marker") ?? 0);
    const max = Math.min(1000, Number(q(ctx, "max-parts") ?? 1000));
    const numbers = (await fsp.readdir(uploadDir)).filter((f) => /^\d+$/.test(f)).map(Number).filter((n) => n > marker).sort((a, b) => a - b);
    const page = numbers.slice(0, max);
    const truncated = numbers.length > page.length;
    const parts: string[] = [];
    for (const n of page) {
      const st = await fsp.stat(path.join(uploadDir, String(n)));
      const md5 = await fsp.readFile(path.join(uploadDir, `${n}.md5`), "utf8").catch(() => "");
      parts.push(`<Part>${el("PartNumber", n)}${el("LastModified", st.mtime.toISOString())}${el("ETag", `"${md5}"`)}${el("Size", st.size)}</Part>`);
    }
    ctx.status = 200;
    ctx.type = "application/xml";
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult ${XMLNS}>${el("Bucket", bucket)}${el("Key", key)}${el("UploadId", upload.uploadId)}${el("PartNumberMarker", marker)}` +
      `${el("NextPartNumberMarker", page.length ? page[page.length - 1] : marker)}${el("MaxParts", max)}${el("IsTruncated", truncated)}${parts.join("")}</ListPartsResult>`;
  };
}

async function serve(dir: string, plain: boolean): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require("s3rver") as new (o: object) => { middleware: unknown[]; run(): Promise<{ port: number }>; close(): Promise<void> };
  const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: dir });
  if (!plain) server.middleware.unshift(multipartShim(dir)); // before s3rver's router, which answers these with errors
  const { port } = await server.run();
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.once("SIGTERM", () => {
    setTimeout(() => process.exit(0), 2000).unref(); // a client still holding a connection
    server.close().finally(() => process.exit(0));
  });
}

if (require.main === module && process.argv[2] === "--serve") {
  serve(process.argv[3], process.argv[4] === "--plain").catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
