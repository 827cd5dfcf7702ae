// What a crs-backup process is told: the settings of `serve` (and the subset every other command shares), their
// defaults, and where the catalogue and the files live by default.
import path from "node:path";
import type { Logger, LogLevel } from "./log";
import { DEFAULT_REGIONS } from "./protocol/regions";

/**
 * The time of a process: every timestamp it writes and, for the task queue, every wait (src/queue/clock.ts).
 * A clock with `sleep` runs the queue's waits on its own time (tests advance it); without, real timers do.
 */
export interface Clock {
  now(): number;
  /** Resolves once `ms` of this clock's time has passed. */
  sleep?(ms: number): Promise<void>;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface S3Options {
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  /** A file with the access key (instead of AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */
  keyFile?: string;
}

export interface Config {
  host: string;
  port: number;
  /** The embedded defaults' home: catalog.db, files/, server.pid. */
  dataDir: string;
  /** `sqlite:PATH`, a path, or `postgres://…`; default sqlite:DATA/catalog.db. */
  catalog?: string;
  /** `file:PATH`, a path, or `s3://bucket/prefix`; default file:DATA/files. */
  storage?: string;
  s3?: S3Options;
  seed?: string;
  tz: string;
  /** Requests per second per account and action; 0 = off. */
  rateLimit: number;
  rateLimits?: ReadonlyMap<string, number>;
  /** `redis://…` to share the rate limit between nodes; default: each node keeps its own. */
  rateLimitStore?: string;
  regions: string[];
  domain: string;
  /** Address target Redis servers use to reach this node's replication endpoint during a restore. */
  advertiseHost: string;
  /** Days a deleted or expired backup's record is kept for the audit trail. */
  auditDays: number;
  /** How often the scheduler runs (automatic backups, retention); 0 = only when tick() is called. */
  schedulerIntervalMs: number;
  /** Whether instances are backed up on their schedules at all. */
  autoBackups: boolean;
  /**
   * Whether each backup's DEBUG DIGEST is computed from its stored file after the transfer (a nice-19 worker
   * process, jobs/digests.ts): the proof that restores and `crs-backup verify` check against. Off, backups have
   * none and restores verify by a second read.
   */
  captureDigest: boolean;
  /**
   * How a capture moves the snapshot (docs/storage.md "The spool"): `spool` writes the raw RDB to DATA/spool as
   * fast as the disk takes it and closes the replication link before compressing, hashing and storing it;
   * `direct` does all of that on the socket's path (the master's fork lives as long as storage takes).
   */
  captureMode: "spool" | "direct";
  /** Simultaneous backups/restores on this node; more wait in the queue. */
  concurrency: number;
  /** How long a node's claim on a task holds without renewal; a dead node's tasks are recovered after it. */
  leaseMs: number;
  /** How often a node looks for queued tasks and lapsed leases. */
  pollMs: number;
  /** Who this node is in task leases; default serve:<host>:<pid>:<random>. */
  nodeId?: string;
  /** How long an idle keep-alive connection is kept open. */
  keepAliveTimeoutMs: number;
  /** Hosts a Redis Cluster may announce its nodes on, besides each instance's registered host. */
  clusterHosts: string[];
  logLevel: LogLevel;
  /** Server processes `serve` starts on this port (each a node); more than one needs a shared catalogue. */
  workers: number;
  /** With an object store that can pre-sign, answer download links with a redirect to the store. */
  downloadRedirect: boolean;
  /** PEM certificate chain file: with tlsKey, everything on the port (API, downloads, console, metrics) is HTTPS. */
  tlsCert?: string;
  /** PEM private key file of tlsCert. */
  tlsKey?: string;
  /** Whether GET /metrics answers (Prometheus text); /healthz and /readyz always do. */
  metrics: boolean;
  /** Addresses and CIDR blocks that may read /metrics; empty = any address that reaches the port. */
  metricsAllow: string[];
  /**
   * The floor of the free-space watermark a backup needs on the local storage's and the SQLite catalogue's disks
   * (the watermark is 1.2x the instance's last backup size, and at least this); below it a backup is refused up
   * front with ResourceInsufficient.
   */
  minFreeBytes: number;
  /** Size of the file kept next to the SQLite catalogue and released when it cannot record for a full disk; 0 = none. */
  diskReserveBytes: number;
  /** The master keys of encrypted backups: a keyring file (storage/keys/keyring.ts); absent = none. */
  encryptionKeys?: string;
  /** Encrypt the new backups of every instance that does not choose for itself (needs encryptionKeys). */
  encryptBackups: boolean;
  /**
   * Download links of encrypted backups serve the encrypted file as stored (DescribeBackupDetail then gives
   * DecryptKey to callers allowed it, over TLS) instead of the plain RDB decrypted while streaming.
   */
  downloadEncrypted: boolean;
  /**
   * Second-level backup: a new base every this many ms (jobs/stream-bases.ts); absent = once per the instance's
   * automatic-backup window, and at least once a day.
   */
  pitrBaseEveryMs?: number;
  /**
   * Second-level backup of a cluster: every shard takes a new base this long after keys last moved between its
   * masters (a slot migration); the seconds from the move until then are reported missing. Default 10 s.
   */
  pitrRebaseAfterMs?: number;
  /** CloneInstances: the redis-server binary a clone runs (default: redis-server on PATH). */
  cloneRedisServer: string;
  /** CloneInstances: the ports clones listen on (on advertiseHost), inclusive. */
  clonePorts: { from: number; to: number };
  /**
   * Second-level backup: the group-commit interval (the RPO bound) when the storage is S3; local storage always
   * commits every second. Default 5000 ms.
   */
  streamCommitS3Ms: number;
  /** Injected by tests and tools. */
  clock?: Clock;
  logger?: Logger;
}

export const DEFAULTS: Config = {
  host: "127.0.0.1",
  port: 9000,
  dataDir: "./data",
  tz: "Asia/Shanghai",
  rateLimit: 20,
  domain: "tencentcloudapi.com",
  regions: DEFAULT_REGIONS,
  advertiseHost: "127.0.0.1",
  auditDays: 90,
  schedulerIntervalMs: 30_000,
  autoBackups: true,
  captureDigest: true,
  captureMode: "spool",
  concurrency: 2,
  leaseMs: 30_000,
  pollMs: 1_000,
  keepAliveTimeoutMs: 65_000,
  clusterHosts: [],
  streamCommitS3Ms: 5_000,
  logLevel: "info",
  workers: 1,
  downloadRedirect: false,
  metrics: true,
  metricsAllow: [],
  minFreeBytes: 64 * 1024 * 1024,
  diskReserveBytes: 4 * 1024 * 1024,
  encryptBackups: false,
  downloadEncrypted: false,
  cloneRedisServer: "redis-server",
  clonePorts: { from: 7400, to: 7499 },
};

export function catalogFile(dataDir: string): string {
  return path.join(dataDir, "catalog.db");
}

/** Where captures spool their snapshots before storing them (docs/storage.md "The spool"). */
export function spoolDir(dataDir: string): string {
  return path.join(dataDir, "spool");
}

export function filesDir(dataDir: string): string {
  return path.join(dataDir, "files");
}

/** The catalogue URL in force: the configured one, or the embedded SQLite file in the data directory. */
export function catalogUrl(c: Pick<Config, "catalog" | "dataDir">): string {
  return c.catalog ?? `sqlite:${catalogFile(c.dataDir)}`;
}

/** The storage URL in force: the configured one, or the files folder in the data directory. */
export function storageUrl(c: Pick<Config, "storage" | "dataDir">): string {
  return c.storage ?? `file:${filesDir(c.dataDir)}`;
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** Whether anything lives in the data directory (the embedded catalogue, local files or the server lock). */
export function dataDirUsed(c: Pick<Config, "catalog" | "storage">): boolean {
  return c.catalog === undefined || c.storage === undefined || !isPostgresUrl(c.catalog);
}
