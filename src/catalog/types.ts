// The catalogue's records, as every backend stores them and every caller reads them (catalog.ts is the
// interface over them).
import type { BackupSource, SegmentMeta, SnapshotSource } from "../records";

export interface Policy {
  /** Allowed actions; absent = every action. */
  Actions?: string[];
  /** Allowed instance ids; absent = every instance of the account. */
  Instances?: string[];
}

export interface Credential {
  secretId: string;
  secretKey: string;
  accountId: string;
  token?: string;
  policy?: Policy;
}

export interface Instance {
  instanceId: string;
  accountId: string;
  region: string;
  name: string;
  /** redis://, rediss://, redis-sentinel:// (src/redis/client/url.ts); absent for catalogue-only (fixture) instances. */
  redisUrl?: string;
  /** Which node a backup snapshots (src/redis/capture/source.ts); absent = master. */
  backupSource?: BackupSource;
  instanceType: number;
  shardNum: number;
  redisVersion?: string;
  /** Memory size in MB (maxmemory, or used memory when unlimited) as last probed. */
  memSizeMb: number;
  createdAt: number;
  autoBackupWeekDays: string[];
  autoBackupPeriod: string;
  backupStorageDays: number;
  /** Start of the last automatic-backup window that was served (epoch ms), so a window fires once. */
  lastAutoWindow: number;
  /** Set when the instance was removed; its backups stay listed as deleted for the audit trail. */
  deletedAt?: number;
  /** Encrypt this instance's new backups (true), never (false), or as the server's --encrypt-backups says (absent). */
  encryptBackups?: boolean;
}

/** The instance fields that change after registration. */
export type InstanceFields = Partial<Pick<Instance, "name" | "instanceType" | "shardNum" | "redisVersion" | "memSizeMb" | "deletedAt" | "autoBackupWeekDays" | "autoBackupPeriod" | "backupStorageDays" | "lastAutoWindow" | "redisUrl" | "backupSource">> & {
  /** null: back to the server's choice. */
  encryptBackups?: boolean | null;
};

export type BackupStatus = 1 | 2 | 3 | 4 | -1 | -2;
export const BACKUP_STATUSES: readonly BackupStatus[] = [1, 2, 3, 4, -1, -2];

export interface StoredFile {
  /** Blob key of the stored (compressed) file. */
  key: string;
  /** Size and SHA-256 of the plain RDB bytes. */
  bytes: number;
  sha256: string;
  shard: number;
  /** Bytes the blob occupies in storage (compressed); absent on records made before it was recorded. */
  storedBytes?: number;
  /** The `DEBUG DIGEST` of the shard's data set, computed from the RDB while it was captured (40 hex digits). */
  digest?: string;
  /** Keys in the shard's RDB, counted while it was captured. */
  keys?: number;
  /** A cluster shard's inclusive slot ranges when it was captured (a cluster-shaped clone assigns them again). */
  slots?: Array<[number, number]>;
}

export interface Backup {
  backupId: string;
  instanceId: string;
  startTime: number;
  endTime?: number;
  backupType: string;
  status: BackupStatus;
  remark: string;
  locked: number;
  backupSize: number;
  fullBackup: number;
  instanceType: number;
  fileType: string;
  expireTime?: number;
  encrypted: boolean;
  /** An encrypted backup's master key id (KmsKeyId) and its data key wrapped by it (storage/keys/); absent on fixtures. */
  kmsKeyId?: string;
  wrappedKey?: string;
  files: StoredFile[];
  /** Per shard, the node the snapshot was taken from and its replication offset (absent on older records). */
  source?: SnapshotSource[];
  deletedAt?: number;
  /** Loaded from a fixture file: left as given by expiry, purge and recovery. */
  fixture?: boolean;
}

export type TaskStatus = "preparing" | "running" | "succeed" | "failed";

export interface Task {
  taskId: number;
  instanceId: string;
  accountId: string;
  taskType: string;
  status: TaskStatus;
  progress: number;
  startTime: number;
  endTime?: number;
  message: string;
  backupId?: string;
  /** The node running the task (claimed from the queue), while it runs. */
  owner?: string;
  /** Until when the owner's claim holds (epoch ms); the owner renews it, a lapsed one is recovered by any node. */
  leaseUntil?: number;
  /** What the job needs to run (JSON): e.g. a backup's remark and retention, a restore's target. */
  params?: Record<string, unknown>;
  /** What recovery needs to know if the owner dies (JSON): e.g. the endpoint a restore target replicates from. */
  state?: Record<string, unknown>;
}

/** The task fields that change while it runs. */
export type TaskFields = Partial<Pick<Task, "status" | "progress" | "endTime" | "message" | "backupId" | "state" | "owner" | "leaseUntil">>;

export interface BackupQuery {
  instanceId: string;
  limit: number;
  offset: number;
  begin?: number;
  end?: number;
  statuses?: number[];
}

export interface TaskQuery {
  accountId: string;
  region?: string;
  instanceId?: string;
  /** Only tasks of these instances (a credential's policy). */
  instanceIds?: string[];
  instanceName?: string;
  taskTypes?: string[];
  statuses?: TaskStatus[];
  begin?: number;
  end?: number;
  limit: number;
  offset: number;
}

/** DescribeInstances' BackupMode: second-level backup is the replication stream (point-in-time recovery). */
export type BackupMode = "SecondLevelBackup" | "NormalLevelBackup";

/** An instance's stream settings and the lease of the node streaming it. */
export interface StreamConfig {
  instanceId: string;
  mode: BackupMode;
  /** When second-level backup was switched on (epoch ms): DescribeSecondLevelBackupInfo's StartTimestamp. */
  since?: number;
  retentionDays: number;
  /** The node streaming it, and until when its claim holds (renewed; another node takes over once it lapses). */
  owner?: string;
  leaseUntil?: number;
  /** What the streaming node last said (connected, the error it retries after), for operators. */
  status: string;
  /**
   * When the stream last started afresh because the cluster's number of masters changed (epoch ms; `since` moved
   * with it): bases taken before it are never used by a restore, since their shards were another shape.
   */
  epoch?: number;
}

/** One committed stream segment: its stored metadata (src/redis/stream/segments.ts) and its row. */
export interface StreamSegment extends SegmentMeta {
  segmentId: number;
  instanceId: string;
  shard: number;
  createdAt: number;
}

/** A base of the stream: a backup whose RDB is the master's data set at (replid, offset). */
export interface StreamBase {
  backupId: string;
  instanceId: string;
  shard: number;
  replid: string;
  offset: number;
  takenAt: number;
  /** The proof run's outcome for this base (absent: not run, e.g. the first base of a stream). */
  proof?: StreamProof;
}

/** The outcome of replaying the previous base + the stream up to a base's offset (jobs/stream-proof.ts). */
export interface StreamProof {
  /** true: the replay's DEBUG DIGEST equals the base's ("the stream is complete"). */
  ok: boolean;
  /** When it ran (epoch ms). */
  at: number;
  /** The base replayed from. */
  previous: string;
  units: number;
  /** What was compared, or the first difference, or why it could not run. */
  detail: string;
  /** false when the proof could not run at all (no digest, no redis-server): neither pass nor fail. */
  ran?: boolean;
}

/** Where a provisioned instance (CloneInstances) is: loading (its clone task runs), ready, or being removed. */
export type ProvisionedState = "loading" | "ready" | "removing";

/** An instance whose Redis server this service runs itself (src/instances/). */
export interface ProvisionedInstance {
  instanceId: string;
  /** The node that runs and supervises its process (--node-id, else the host name). */
  owner: string;
  /** `local`: a redis-server process of the owner (src/instances/local.ts). */
  provider: string;
  port: number;
  /**
   * A cluster-shaped clone: the port of each shard's node, in shard order (the first is `port`); each node's
   * directory is `dataDir`/shard-<n>. Absent: one standalone server in `dataDir`.
   */
  clusterPorts?: number[];
  /** Its own owner-only directory (DATA/instances/<id>). */
  dataDir: string;
  state: ProvisionedState;
  /** The clone task that made it. */
  taskId?: number;
  createdAt: number;
}
