// Every setting of a crs-backup process, in one table: its command-line flag, its environment variable, its key
// in a config file (JSON or YAML), how its text is read and checked. A value comes from the first of: the flag,
// the environment, the config file, the default. An unknown key in a config file, or a value that does not
// read, is an error naming where it came from (`--port`, `CRS_PORT`, `crs-backup.yaml: port`).
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { Config, DEFAULTS } from "../config";
import { DEFAULT_REGIONS } from "../protocol/regions";
import { LOG_LEVELS, LogLevel } from "../log";
import { LocalTime } from "../protocol/time";
import { parseIpOrCidr } from "../downloads/restrictions";
import { parsePortRange } from "../instances/supervisor";

export class UsageError extends Error {
  override name = "UsageError";
}

type Kind = "ports" | "string" | "file" | "int" | "port" | "bool" | "list" | "cidrs" | "ratelimit" | "loglevel" | "tz" | "seconds" | "onoff" | "bytes" | "choice";

export interface Setting {
  /** The config-file key (camelCase of the flag). */
  key: string;
  flag: string;
  env: string;
  kind: Kind;
  help: string;
  /** Which commands take it: "all", or only serve. */
  scope: "all" | "serve";
  /** min/max for numbers. */
  min?: number;
  max?: number;
  /** The values a "choice" takes. */
  choices?: readonly string[];
}

export const SETTINGS: Setting[] = [
  { key: "host", flag: "--host <address>", env: "CRS_HOST", kind: "string", scope: "serve", help: "address to listen on (default 127.0.0.1)" },
  { key: "port", flag: "--port <n>", env: "CRS_PORT", kind: "port", scope: "serve", help: "port to listen on, 0 picks a free one (default 9000)" },
  { key: "data", flag: "--data <dir>", env: "CRS_DATA", kind: "string", scope: "all", help: "data directory of the embedded catalogue and files (default ./data)" },
  { key: "catalog", flag: "--catalog <url>", env: "CRS_CATALOG", kind: "string", scope: "all", help: "catalogue: a path, sqlite:PATH or postgres://user:pass@host:port/db (default DATA/catalog.db)" },
  { key: "storage", flag: "--storage <url>", env: "CRS_STORAGE", kind: "string", scope: "all", help: "backup files: a directory, file:PATH or s3://bucket/prefix (default DATA/files)" },
  { key: "s3Endpoint", flag: "--s3-endpoint <url>", env: "CRS_S3_ENDPOINT", kind: "string", scope: "all", help: "S3-compatible endpoint (MinIO, Ceph RGW, Tencent COS); default AWS" },
  { key: "s3Region", flag: "--s3-region <region>", env: "CRS_S3_REGION", kind: "string", scope: "all", help: "S3 region (default us-east-1)" },
  { key: "s3PathStyle", flag: "--s3-path-style", env: "CRS_S3_PATH_STYLE", kind: "bool", scope: "all", help: "path-style S3 addressing (MinIO, Ceph)" },
  { key: "s3KeyFile", flag: "--s3-key-file <file>", env: "CRS_S3_KEY_FILE", kind: "string", scope: "all", help: "file with the S3 access key, instead of AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" },
  { key: "seed", flag: "--seed <file>", env: "CRS_SEED", kind: "string", scope: "serve", help: "fixture file loaded at start, all or nothing" },
  { key: "tz", flag: "--tz <zone>", env: "CRS_TZ", kind: "tz", scope: "all", help: "time zone of every time string in the API (default Asia/Shanghai)" },
  { key: "rateLimit", flag: "--rate-limit <n|Action=n...>", env: "CRS_RATE_LIMIT", kind: "ratelimit", scope: "serve", help: "requests per second per account and action (default 20; 0 = off); Action=N for one action" },
  { key: "rateLimitStore", flag: "--rate-limit-store <url>", env: "CRS_RATE_LIMIT_STORE", kind: "string", scope: "serve", help: "redis://… to share the rate limit between nodes" },
  { key: "regions", flag: "--regions <list>", env: "CRS_REGIONS", kind: "list", scope: "all", help: "comma-separated regions this server knows (default: Tencent's public regions)" },
  { key: "domain", flag: "--domain <domain>", env: "CRS_DOMAIN", kind: "string", scope: "all", help: "domain of finance-region hosts (default tencentcloudapi.com)" },
  { key: "advertiseHost", flag: "--advertise-host <address>", env: "CRS_ADVERTISE_HOST", kind: "string", scope: "all", help: "address a Redis being restored connects back to (default 127.0.0.1)" },
  { key: "auditDays", flag: "--audit-days <n>", env: "CRS_AUDIT_DAYS", kind: "int", min: 0, max: 36500, scope: "serve", help: "days records of deleted and expired backups are kept (default 90)" },
  { key: "autoBackups", flag: "--auto-backups <on|off>", env: "CRS_AUTO_BACKUPS", kind: "onoff", scope: "serve", help: "take automatic backups on each instance's schedule (default on)" },
  { key: "captureDigest", flag: "--capture-digest <on|off>", env: "CRS_CAPTURE_DIGEST", kind: "onoff", scope: "all", help: "compute each backup's DEBUG DIGEST from its stored file after the transfer, at low priority (default on)" },
  { key: "captureMode", flag: "--capture-mode <spool|direct>", env: "CRS_CAPTURE_MODE", kind: "choice", choices: ["spool", "direct"], scope: "all", help: "spool: a capture writes the raw snapshot to DATA/spool as fast as the disk takes it, closes the replication link, then compresses, hashes and stores it (default); direct: compress and store on the socket's path" },
  { key: "concurrency", flag: "--concurrency <n>", env: "CRS_CONCURRENCY", kind: "int", min: 1, max: 256, scope: "serve", help: "simultaneous backups/restores on this node (default 2)" },
  { key: "leaseSeconds", flag: "--lease-seconds <n>", env: "CRS_LEASE_SECONDS", kind: "seconds", min: 1, max: 3600, scope: "all", help: "how long a node's claim on a task holds unrenewed (default 30)" },
  { key: "nodeId", flag: "--node-id <id>", env: "CRS_NODE_ID", kind: "string", scope: "serve", help: "this node's name in task leases (default serve:<host>:<pid>:<random>)" },
  { key: "keepAliveTimeout", flag: "--keep-alive-timeout <seconds>", env: "CRS_KEEP_ALIVE_TIMEOUT", kind: "seconds", min: 1, max: 3600, scope: "serve", help: "idle keep-alive connections are kept this long (default 65)" },
  { key: "clusterHosts", flag: "--cluster-hosts <list>", env: "CRS_CLUSTER_HOSTS", kind: "list", scope: "all", help: "hosts a Redis Cluster may announce nodes on besides the registered one" },
  { key: "workers", flag: "--workers <n>", env: "CRS_WORKERS", kind: "int", min: 1, max: 64, scope: "serve", help: "start N server processes on this port, each a node (needs a PostgreSQL catalogue; default 1)" },
  { key: "schedulerInterval", flag: "--scheduler-interval <seconds>", env: "CRS_SCHEDULER_INTERVAL", kind: "seconds", min: 1, max: 3600, scope: "serve", help: "how often automatic backups and retention are checked (default 30)" },
  { key: "downloadRedirect", flag: "--download-redirect", env: "CRS_DOWNLOAD_REDIRECT", kind: "bool", scope: "serve", help: "with S3 storage, answer a download link with a redirect to a pre-signed object URL instead of streaming it" },
  { key: "logLevel", flag: "--log-level <level>", env: "CRS_LOG_LEVEL", kind: "loglevel", scope: "all", help: "fatal, error, warn, info (default), debug, trace or silent" },
  { key: "tlsCert", flag: "--tls-cert <file>", env: "CRS_TLS_CERT", kind: "file", scope: "serve", help: "PEM certificate (chain) file: serve HTTPS (with --tls-key)" },
  { key: "tlsKey", flag: "--tls-key <file>", env: "CRS_TLS_KEY", kind: "file", scope: "serve", help: "PEM private key file of --tls-cert" },
  { key: "metrics", flag: "--metrics <on|off>", env: "CRS_METRICS", kind: "onoff", scope: "serve", help: "serve Prometheus metrics at /metrics (default on; /healthz and /readyz always answer)" },
  { key: "metricsAllow", flag: "--metrics-allow <list>", env: "CRS_METRICS_ALLOW", kind: "cidrs", scope: "serve", help: "comma-separated addresses or CIDR blocks that may read /metrics (default: any)" },
  { key: "minFreeSpace", flag: "--min-free-space <size>", env: "CRS_MIN_FREE_SPACE", kind: "bytes", scope: "all", help: "a backup is refused (ResourceInsufficient) when the storage's or the catalogue's disk has less free space than 1.2x the instance's last backup, or than this (default 64MB; bytes, or with KB, MB, GB)" },
  { key: "diskReserve", flag: "--disk-reserve <size>", env: "CRS_DISK_RESERVE", kind: "bytes", scope: "serve", help: "space kept in DATA/catalog.reserve and released when the SQLite catalogue's disk is full, so failures can still be recorded (default 4MB; 0 = none)" },
  { key: "encryptionKeys", flag: "--encryption-keys <file>", env: "CRS_ENCRYPTION_KEYS", kind: "file", scope: "all", help: "keyring of the master keys that wrap encrypted backups' data keys: JSON {\"active\":\"k1\",\"keys\":{\"k1\":\"<base64 of 32 bytes>\"}}, owner-only (chmod 600)" },
  { key: "encryptBackups", flag: "--encrypt-backups <on|off>", env: "CRS_ENCRYPT_BACKUPS", kind: "onoff", scope: "all", help: "encrypt every new backup (AES-256-GCM) unless its instance chooses otherwise (default off; needs --encryption-keys)" },
  { key: "pitrBaseEvery", flag: "--pitr-base-every <seconds>", env: "CRS_PITR_BASE_EVERY", kind: "seconds", min: 1, max: 86400, scope: "serve", help: "second-level backup: take a new base this often (default: in each instance's automatic-backup window, and at least daily)" },
  { key: "pitrRebaseAfter", flag: "--pitr-rebase-after <seconds>", env: "CRS_PITR_REBASE_AFTER", kind: "seconds", min: 1, max: 86400, scope: "serve", help: "second-level backup of a cluster: every shard takes a new base this long after keys last moved between its masters (a slot migration; the seconds in between are not restorable; default 10)" },
  { key: "streamCommitS3", flag: "--stream-commit-s3 <seconds>", env: "CRS_STREAM_COMMIT_S3", kind: "seconds", min: 1, max: 60, scope: "serve", help: "second-level backup on S3 storage: group-commit the stream this often, the RPO bound (default 5; one PUT per streaming shard per interval while writes arrive, none idle; local storage: 1 s)" },
  { key: "downloadEncrypted", flag: "--download-encrypted <on|off>", env: "CRS_DOWNLOAD_ENCRYPTED", kind: "onoff", scope: "serve", help: "download links of encrypted backups serve the encrypted file (DecryptKey in DescribeBackupDetail, over TLS) instead of the plain RDB (default off)" },
  { key: "cloneRedisServer", flag: "--clone-redis-server <path>", env: "CRS_CLONE_REDIS_SERVER", kind: "string", scope: "serve", help: "CloneInstances: the redis-server binary clones run (default: redis-server on PATH)" },
  { key: "clonePorts", flag: "--clone-ports <from-to>", env: "CRS_CLONE_PORTS", kind: "ports", scope: "serve", help: "CloneInstances: the ports clones listen on, on --advertise-host (default 7400-7499)" },
];

export type RawValues = Record<string, unknown>;

/** commander's option name for a setting (its camelCase attribute). */
export function attributeOf(s: Setting): string {
  return s.flag.split(" ")[0]!.slice(2).replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

interface Parsed {
  rateLimit?: number;
  rateLimits?: Map<string, number>;
  value?: unknown;
}

function parseValue(s: Setting, raw: unknown, where: string): Parsed {
  const text = typeof raw === "string" ? raw.trim() : raw;
  const bad = (why: string) => new UsageError(`${where}: ${why}, got ${JSON.stringify(raw)}`);
  switch (s.kind) {
    case "string":
      if (typeof text !== "string" || text === "") throw bad("must be a non-empty string");
      return { value: text };
    case "file": {
      if (typeof text !== "string" || text === "") throw bad("must be a file name");
      try {
        fs.accessSync(text, fs.constants.R_OK);
      } catch (err) {
        throw new UsageError(`${where}: cannot read ${text} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      return { value: text };
    }
    case "cidrs": {
      const list = Array.isArray(text) ? text.map(String) : typeof text === "string" ? text.split(",") : undefined;
      if (!list) throw bad("must be a comma-separated list of addresses or CIDR blocks");
      const items = list.map((x) => x.trim()).filter(Boolean);
      const wrong = items.find((x) => !parseIpOrCidr(x));
      if (wrong !== undefined) throw new UsageError(`${where}: ${JSON.stringify(wrong)} is not an IPv4/IPv6 address or CIDR block`);
      return { value: items };
    }
    case "list": {
      const list = Array.isArray(text) ? text.map(String) : typeof text === "string" ? text.split(",") : undefined;
      if (!list) throw bad("must be a comma-separated list");
      const items = list.map((x) => x.trim()).filter(Boolean);
      if (!items.length && s.key === "regions") throw bad("needs at least one region");
      return { value: items };
    }
    case "int":
    case "port":
    case "seconds": {
      const n = typeof text === "number" ? text : typeof text === "string" && /^-?\d+$/.test(text) ? Number(text) : NaN;
      const min = s.kind === "port" ? 0 : s.min ?? 0;
      const max = s.kind === "port" ? 65535 : s.max ?? Number.MAX_SAFE_INTEGER;
      if (!Number.isSafeInteger(n) || n < min || n > max) throw bad(`must be a whole number from ${min} to ${max}`);
      return { value: n };
    }
    case "ports": {
      const range = parsePortRange(String(text ?? ""));
      if (!range) throw bad("must be a port range FROM-TO (1024 to 65535, FROM <= TO)");
      return { value: range };
    }
    case "bool":
      if (text === true || text === "true" || text === "1" || text === "yes") return { value: true };
      if (text === false || text === "false" || text === "0" || text === "no") return { value: false };
      throw bad("must be true or false");
    case "bytes": {
      // 67108864, 64MB, 64MiB, 64M, 512KB: binary units, as the server prints sizes.
      const m = /^(\d+)\s*(?:([KMGT])(?:i?B)?|B)?$/i.exec(String(text ?? "").trim());
      const n = m ? Number(m[1]) * 1024 ** (m[2] ? "KMGT".indexOf(m[2].toUpperCase()) + 1 : 0) : NaN;
      if (!Number.isSafeInteger(n)) throw bad("must be a size in bytes, or with a unit KB, MB, GB or TB (binary: 1MB = 1048576 bytes)");
      return { value: n };
    }
    case "choice":
      if (typeof text !== "string" || !(s.choices ?? []).includes(text)) throw bad(`must be one of ${(s.choices ?? []).join(", ")}`);
      return { value: text };
    case "onoff":
      if (text === "on" || text === true || text === "true") return { value: true };
      if (text === "off" || text === false || text === "false") return { value: false };
      throw bad("must be on or off");
    case "loglevel":
      if (typeof text !== "string" || !(LOG_LEVELS as readonly string[]).includes(text)) throw bad(`must be one of ${LOG_LEVELS.join(", ")}`);
      return { value: text as LogLevel };
    case "tz":
      if (typeof text !== "string") throw bad("must be an IANA time zone name");
      try {
        return { value: new LocalTime(text).timeZone };
      } catch (err) {
        throw new UsageError(`${where}: ${(err as Error).message}`);
      }
    case "ratelimit": {
      const items = Array.isArray(text) ? text.map(String) : typeof text === "number" ? [String(text)] : typeof text === "string" ? text.split(",") : undefined;
      if (!items) throw bad("takes N or Action=N (requests per second; 0 turns it off)");
      const out: Parsed = { rateLimits: new Map() };
      for (const v of items.map((x) => x.trim()).filter(Boolean)) {
        const m = /^(?:([A-Za-z]+)=)?(\d+)$/.exec(v);
        if (!m) throw new UsageError(`${where} takes N or Action=N (requests per second; 0 turns it off), got ${JSON.stringify(v)}`);
        if (m[1]) out.rateLimits!.set(m[1], Number(m[2]));
        else out.rateLimit = Number(m[2]);
      }
      return out;
    }
  }
}

/** Reads a config file: JSON, or YAML by extension; every key must be a known setting. */
export function readConfigFile(file: string, scope: "serve" | "all"): RawValues {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(`--config ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${path.basename(file)}: not valid ${/\.ya?ml$/i.test(file) ? "YAML" : "JSON"}: ${(err as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new UsageError(`${path.basename(file)}: must hold an object of settings`);
  const known = SETTINGS.filter((s) => scope === "serve" || s.scope === "all").map((s) => s.key);
  const all = SETTINGS.map((s) => s.key);
  for (const k of Object.keys(doc)) {
    if (!all.includes(k)) throw new UsageError(`${path.basename(file)}: unknown key ${JSON.stringify(k)} (known: ${all.join(", ")})`);
    if (!known.includes(k)) continue; // a serve-only key in a shared file is fine for other commands
  }
  return doc as RawValues;
}

/**
 * The Config in force: for each setting the flag, else the environment, else the config file, else the default.
 * `flags` are commander's parsed options (only those given on the command line are set).
 */
export function resolveConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv, scope: "serve" | "all"): Config {
  const configFile = (flags.config as string | undefined) ?? env.CRS_CONFIG;
  const file = configFile ? readConfigFile(configFile, scope) : {};
  const fileName = configFile ? path.basename(configFile) : "";
  const cfg: Config = { ...DEFAULTS, regions: [...DEFAULT_REGIONS], clusterHosts: [], metricsAllow: [] };
  for (const s of SETTINGS) {
    if (scope === "all" && s.scope === "serve") continue;
    const attr = attributeOf(s);
    let raw: unknown;
    let where: string;
    if (flags[attr] !== undefined) {
      raw = flags[attr];
      where = s.flag.split(" ")[0]!;
    } else if (env[s.env] !== undefined && env[s.env] !== "") {
      raw = env[s.env];
      where = s.env;
    } else if (file[s.key] !== undefined) {
      raw = file[s.key];
      where = `${fileName}: ${s.key}`;
    } else continue;
    const parsed = parseValue(s, raw, where);
    switch (s.key) {
      case "data": cfg.dataDir = parsed.value as string; break;
      case "s3Endpoint": cfg.s3 = { ...cfg.s3, endpoint: parsed.value as string }; break;
      case "s3Region": cfg.s3 = { ...cfg.s3, region: parsed.value as string }; break;
      case "s3PathStyle": cfg.s3 = { ...cfg.s3, pathStyle: parsed.value as boolean }; break;
      case "s3KeyFile": cfg.s3 = { ...cfg.s3, keyFile: parsed.value as string }; break;
      case "rateLimit":
        if (parsed.rateLimit !== undefined) cfg.rateLimit = parsed.rateLimit;
        cfg.rateLimits = parsed.rateLimits;
        break;
      case "leaseSeconds": cfg.leaseMs = (parsed.value as number) * 1000; break;
      case "keepAliveTimeout": cfg.keepAliveTimeoutMs = (parsed.value as number) * 1000; break;
      case "schedulerInterval": cfg.schedulerIntervalMs = (parsed.value as number) * 1000; break;
      case "minFreeSpace": cfg.minFreeBytes = parsed.value as number; break;
      case "diskReserve": cfg.diskReserveBytes = parsed.value as number; break;
      case "pitrBaseEvery": cfg.pitrBaseEveryMs = (parsed.value as number) * 1000; break;
      case "pitrRebaseAfter": cfg.pitrRebaseAfterMs = (parsed.value as number) * 1000; break;
      case "streamCommitS3": cfg.streamCommitS3Ms = (parsed.value as number) * 1000; break;
      default: (cfg as unknown as Record<string, unknown>)[s.key] = parsed.value;
    }
  }
  if (cfg.encryptBackups && cfg.encryptionKeys === undefined) {
    throw new UsageError("--encrypt-backups on (CRS_ENCRYPT_BACKUPS) needs --encryption-keys FILE (CRS_ENCRYPTION_KEYS): the keyring whose active key wraps the backups' data keys");
  }
  if ((cfg.tlsCert === undefined) !== (cfg.tlsKey === undefined)) {
    throw new UsageError(cfg.tlsCert === undefined ? "--tls-key (CRS_TLS_KEY) needs --tls-cert (CRS_TLS_CERT) too" : "--tls-cert (CRS_TLS_CERT) needs --tls-key (CRS_TLS_KEY) too");
  }
  return cfg;
}
