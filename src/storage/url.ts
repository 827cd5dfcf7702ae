// Where backups are stored, from `--storage URL` / CRS_STORAGE and the S3 options:
//
//   (none)               DATA/files (the embedded default)
//   /abs/dir, rel/dir    a directory
//   file:PATH            the same (file:///abs/dir also works)
//   s3://bucket[/prefix] an S3-compatible object store, with
//       --s3-endpoint URL    http(s)://host[:port] of a non-AWS store (MinIO, Ceph RGW, Tencent COS's
//                            https://cos.<region>.myqcloud.com); AWS's endpoint for --s3-region when absent
//       --s3-region NAME     default: AWS_REGION, else us-east-1
//       --s3-path-style      address the bucket in the path (MinIO, Ceph RGW and IP endpoints need it)
//       --s3-key-file FILE   the access key, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN)
//
// A key file is either JSON {"accessKeyId": "...", "secretAccessKey": "...", "sessionToken": "..."(optional)}
// or plain text: the access key id on the first line, the secret on the second (a session token may follow on
// a third); blank lines and surrounding spaces are ignored. The SDK's other credential sources (profiles,
// instance metadata) are deliberately not consulted: the store's credentials are always the ones configured.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BlobStore, checkKey, StoreCapability } from "./blob-store";
import { LocalBlobStore } from "./local";
import type { S3BlobStore as S3Store, S3Credentials } from "./s3";

export type StorageConfig =
  | { kind: "file"; root: string }
  | {
    kind: "s3";
    bucket: string;
    /** "" or ending in "/". */
    prefix: string;
    region: string;
    endpoint?: string;
    forcePathStyle: boolean;
    credentials: S3Credentials;
    /** Where the credentials came from, for messages ("AWS_ACCESS_KEY_ID" or the key file's path). */
    credentialsFrom: string;
  };

export interface StorageUrlOptions {
  /** The directory used when no URL is given (DATA/files). */
  defaultDir: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
  s3KeyFile?: string;
  /** Default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** A configuration mistake; the message names the option to fix. */
export class StorageConfigError extends Error {
  override name = "StorageConfigError";
}

const URL_OPTION = "--storage (CRS_STORAGE)";

export function parseStorageUrl(url: string | undefined, opts: StorageUrlOptions): StorageConfig {
  const env = opts.env ?? process.env;
  const raw = url?.trim() ?? "";
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(raw)?.[1]?.toLowerCase();
  if (scheme !== "s3") {
    for (const [value, name] of [[opts.s3Endpoint, "--s3-endpoint"], [opts.s3KeyFile, "--s3-key-file"], [opts.s3Region, "--s3-region"]] as const) {
      if (value !== undefined && value !== "") throw new StorageConfigError(`${name} applies only to s3:// storage, but ${URL_OPTION} is ${raw ? JSON.stringify(raw) : "not set (local directory)"}`);
    }
    if (opts.s3PathStyle) throw new StorageConfigError(`--s3-path-style applies only to s3:// storage, but ${URL_OPTION} is ${raw ? JSON.stringify(raw) : "not set (local directory)"}`);
  }
  if (!raw) return { kind: "file", root: path.resolve(opts.defaultDir) };
  // One letter before ':' is a Windows drive, not a scheme.
  if (scheme === undefined || scheme.length === 1) return { kind: "file", root: path.resolve(raw) };
  if (scheme === "file") {
    let p: string;
    try {
      p = raw.startsWith("file://") ? fileURLToPath(raw) : raw.slice("file:".length);
    } catch (err) {
      throw new StorageConfigError(`${URL_OPTION}: invalid file URL ${JSON.stringify(raw)}: ${(err as Error).message}`);
    }
    if (!p) throw new StorageConfigError(`${URL_OPTION}: file: needs a directory, e.g. file:/var/lib/crs-backup/files`);
    return { kind: "file", root: path.resolve(p) };
  }
  if (scheme !== "s3") throw new StorageConfigError(`${URL_OPTION}: unsupported storage ${JSON.stringify(raw)}; use a directory, file:PATH or s3://bucket/prefix`);
  return parseS3(raw, opts, env);
}

function parseS3(raw: string, opts: StorageUrlOptions, env: NodeJS.ProcessEnv): StorageConfig {
  const m = /^s3:\/\/([^/?#]*)(\/[^?#]*)?$/i.exec(raw);
  if (!m) throw new StorageConfigError(`${URL_OPTION}: expected s3://bucket or s3://bucket/prefix, got ${JSON.stringify(raw)}`);
  const bucket = m[1];
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes("..")) {
    throw new StorageConfigError(`${URL_OPTION}: invalid bucket name ${JSON.stringify(bucket)} (3-63 lowercase letters, digits, '.' and '-')`);
  }
  let prefix = (m[2] ?? "").replace(/^\/+/, "").replace(/\/+$/, "");
  if (prefix) {
    try {
      checkKey(prefix);
    } catch {
      throw new StorageConfigError(`${URL_OPTION}: invalid prefix ${JSON.stringify(prefix)} in ${JSON.stringify(raw)} (no empty, '.' or '..' segments)`);
    }
    prefix += "/";
  }

  let endpoint: string | undefined;
  if (opts.s3Endpoint) {
    let u: URL;
    try {
      u = new URL(opts.s3Endpoint);
    } catch {
      throw new StorageConfigError(`--s3-endpoint: not a URL: ${JSON.stringify(opts.s3Endpoint)} (e.g. http://127.0.0.1:9000)`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new StorageConfigError(`--s3-endpoint must start with http:// or https://, got ${JSON.stringify(opts.s3Endpoint)}`);
    if (u.username || u.password) throw new StorageConfigError("--s3-endpoint must not contain credentials; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or --s3-key-file");
    if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash) throw new StorageConfigError(`--s3-endpoint must be scheme://host[:port] without a path, got ${JSON.stringify(opts.s3Endpoint)}`);
    endpoint = `${u.protocol}//${u.host}`;
  }

  const region = opts.s3Region || env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1";
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/i.test(region)) throw new StorageConfigError(`--s3-region: invalid region ${JSON.stringify(region)}`);

  const { credentials, from } = opts.s3KeyFile ? readKeyFile(opts.s3KeyFile) : envCredentials(env);
  return { kind: "s3", bucket, prefix, region, endpoint, forcePathStyle: opts.s3PathStyle === true, credentials, credentialsFrom: from };
}

function envCredentials(env: NodeJS.ProcessEnv): { credentials: S3Credentials; from: string } {
  const id = env.AWS_ACCESS_KEY_ID?.trim();
  const secret = env.AWS_SECRET_ACCESS_KEY?.trim();
  if (!id && !secret) throw new StorageConfigError("s3:// storage needs an access key: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --s3-key-file");
  if (!id) throw new StorageConfigError("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  if (!secret) throw new StorageConfigError("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
  const token = env.AWS_SESSION_TOKEN?.trim();
  return { credentials: { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) }, from: "AWS_ACCESS_KEY_ID" };
}

/** Reads a key file (see the top of this file). Messages never quote its content. */
export function readKeyFile(file: string): { credentials: S3Credentials; from: string } {
  const where = `--s3-key-file ${JSON.stringify(file)}`;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new StorageConfigError(`${where}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let id: unknown;
  let secret: unknown;
  let token: unknown;
  if (text.trimStart().startsWith("{")) {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new StorageConfigError(`${where}: not valid JSON`);
    }
    ({ accessKeyId: id, secretAccessKey: secret, sessionToken: token } = doc);
    if (typeof id !== "string" || !id.trim() || typeof secret !== "string" || !secret.trim()) {
      throw new StorageConfigError(`${where}: JSON needs non-empty string fields "accessKeyId" and "secretAccessKey"`);
    }
    if (token !== undefined && typeof token !== "string") throw new StorageConfigError(`${where}: "sessionToken" must be a string`);
  } else {
    const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    if (lines.length < 2 || lines.length > 3) {
      throw new StorageConfigError(`${where}: expected the access key id on the first line and the secret on the second (or JSON {"accessKeyId","secretAccessKey"}), found ${lines.length} non-empty line(s)`);
    }
    [id, secret, token] = lines;
  }
  const t = typeof token === "string" && token.trim() ? token.trim() : undefined;
  return { credentials: { accessKeyId: (id as string).trim(), secretAccessKey: (secret as string).trim(), ...(t ? { sessionToken: t } : {}) }, from: file };
}

/** Where the configuration stores blobs, for messages (no secret). */
export function describeStorage(config: StorageConfig): string {
  if (config.kind === "file") return `file:${config.root}`;
  return `s3://${config.bucket}/${config.prefix}${config.endpoint ? ` @ ${config.endpoint}` : ` (${config.region})`}`;
}

export function openBlobStore(config: StorageConfig, tuning: { partSizeBytes?: number; queueSize?: number; staleGraceMs?: number; onUnsupported?: (c: StoreCapability) => void } = {}): BlobStore {
  if (config.kind === "file") return new LocalBlobStore(config.root);
  // Loaded only when an S3 store is configured: the AWS SDK is large, and the embedded default never needs it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { S3BlobStore } = require("./s3") as { S3BlobStore: typeof S3Store };
  return new S3BlobStore({
    bucket: config.bucket, prefix: config.prefix, region: config.region, endpoint: config.endpoint, forcePathStyle: config.forcePathStyle,
    credentials: config.credentials, ...tuning,
  });
}
