// The catalogue's schema: one migration history for both engines (the same versions, names, tables and
// columns; applied by migrator.ts), each version written once here. What an engine writes its own way comes from
// its EngineSchema (sqlite/migrations.ts, postgres/migrations.ts): the generated keys, migration 1's listing
// index, and the triggers that keep the listing counts and versions (SQLite triggers, PostgreSQL trigger
// functions over a sequence).
import type { Migration } from "./migrator";

export interface EngineSchema {
  /** A key the engine generates for a row (tasks.task_id), and one never reused (stream_segments.segment_id). */
  generatedKey: string;
  serialKey: string;
  /** Migration 1: the index DescribeInstanceBackups reads (with why it is shaped so). */
  backupsListing: string;
  /** Migration 2: what backup_versions needs first (PostgreSQL's sequence), a fresh version, the triggers. */
  beforeVersions: string;
  newVersion: string;
  listingTriggers: string;
  /** Migration 4: the byte sums filled in, and the triggers recreated to keep them. */
  fillBytes: string;
  bytesTriggers: string;
}

export function migrationsFor(e: EngineSchema): Migration[] {
  return [
    {
      version: 1,
      name: "accounts, credentials, instances, backups, tasks",
      sql: `
CREATE TABLE accounts (
  account_id TEXT PRIMARY KEY,
  created_at BIGINT NOT NULL
);
CREATE TABLE credentials (
  secret_id TEXT PRIMARY KEY,
  secret_key TEXT NOT NULL,
  account_id TEXT NOT NULL REFERENCES accounts(account_id),
  token TEXT,
  policy TEXT,
  created_at BIGINT NOT NULL
);
CREATE TABLE instances (
  instance_id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(account_id),
  region TEXT NOT NULL,
  name TEXT NOT NULL,
  redis_url TEXT,
  instance_type INTEGER NOT NULL DEFAULT 17,
  shard_num INTEGER NOT NULL DEFAULT 1,
  redis_version TEXT,
  mem_size_mb INTEGER NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  auto_backup_weekdays TEXT NOT NULL DEFAULT 'Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday',
  auto_backup_period TEXT NOT NULL DEFAULT '00:00-01:00',
  backup_storage_days INTEGER NOT NULL DEFAULT 7,
  last_auto_window BIGINT NOT NULL DEFAULT 0,
  deleted_at BIGINT
);
CREATE INDEX instances_by_account ON instances(account_id, region, instance_id);
CREATE TABLE backups (
  backup_id TEXT PRIMARY KEY,
  instance_id TEXT NOT NULL REFERENCES instances(instance_id) ON DELETE CASCADE,
  start_time BIGINT NOT NULL,
  end_time BIGINT,
  backup_type TEXT NOT NULL,
  status INTEGER NOT NULL,
  remark TEXT NOT NULL DEFAULT '',
  locked INTEGER NOT NULL DEFAULT 0,
  backup_size BIGINT NOT NULL DEFAULT 0,
  full_backup INTEGER NOT NULL DEFAULT 0,
  instance_type INTEGER NOT NULL,
  file_type TEXT NOT NULL DEFAULT '',
  expire_time BIGINT,
  encrypted INTEGER NOT NULL DEFAULT 0,
  files TEXT NOT NULL DEFAULT '[]',
  deleted_at BIGINT,
  -- Loaded from a fixture file: static data the lifecycle (expiry, purge, recovery) leaves as given.
  fixture INTEGER NOT NULL DEFAULT 0
);
${e.backupsListing}
CREATE INDEX backups_by_status ON backups(status, expire_time);
CREATE INDEX backups_locked ON backups(locked) WHERE locked = 1;
CREATE TABLE tasks (
  task_id ${e.generatedKey},
  instance_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  task_type TEXT NOT NULL,
  status TEXT NOT NULL,
  progress INTEGER NOT NULL DEFAULT 0,
  start_time BIGINT NOT NULL,
  end_time BIGINT,
  message TEXT NOT NULL DEFAULT '',
  backup_id TEXT
);
CREATE INDEX tasks_by_instance ON tasks(instance_id, start_time);
CREATE INDEX tasks_by_status ON tasks(status);
CREATE TABLE settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`,
    },
    {
      version: 2,
      name: "backup counts per instance and status, listing versions (for DescribeInstanceBackups), deleted-backup index",
      // TotalCount without a time window is a sum over at most six rows instead of a count(*) over the index.
      // backup_versions changes (to a fresh value) whenever an instance's listing order or membership may have
      // changed, by any connection or process, so an in-memory listing index can tell it is stale.
      sql: `
CREATE TABLE backup_counts (
  instance_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY (instance_id, status)
);
${e.beforeVersions}CREATE TABLE backup_versions (
  instance_id TEXT PRIMARY KEY,
  version BIGINT NOT NULL
);
INSERT INTO backup_counts(instance_id, status, n) SELECT instance_id, status, count(*) FROM backups GROUP BY instance_id, status;
INSERT INTO backup_versions(instance_id, version) SELECT instance_id, ${e.newVersion} FROM backups GROUP BY instance_id;
-- The scheduler's purge of deleted records (status -2, deleted_at past the audit window) otherwise reads every
-- status -2 row, blocking the event loop for 100+ ms per pass on a million-backup catalogue.
CREATE INDEX backups_deleted ON backups(status, deleted_at) WHERE deleted_at IS NOT NULL;
${e.listingTriggers}`,
    },
    {
      version: 3,
      name: "task queue: owner, lease, parameters and recovery state of each task",
      // A task is queued (preparing, no owner), claimed by one node (owner + lease_until, renewed while it runs)
      // and, if its owner dies, recovered by any node once the lease has lapsed.
      sql: `
ALTER TABLE tasks ADD COLUMN owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until BIGINT;
ALTER TABLE tasks ADD COLUMN params TEXT;
ALTER TABLE tasks ADD COLUMN state TEXT;
CREATE INDEX tasks_queue ON tasks(status, task_id) WHERE status IN ('preparing', 'running');
CREATE INDEX tasks_by_backup ON tasks(backup_id) WHERE backup_id IS NOT NULL;
`,
    },
    {
      version: 4,
      name: "bytes per instance and status beside the counts (catalogue size without a scan)",
      // The triggers of migration 2, recreated to keep the sum of backup_size too: stats() (metrics) read it from at
      // most six rows per instance instead of scanning every backup.
      sql: `
ALTER TABLE backup_counts ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
${e.fillBytes}
${e.bytesTriggers}`,
    },
    {
      version: 5,
      name: "backup source: which node an instance's backups snapshot, and where each backup's shards came from",
      // instances.backup_source: master | replica | prefer-replica (src/redis/capture/source.ts). backups.source: JSON,
      // per shard {shard, role, node, offset}; NULL on backups taken before.
      sql: `
ALTER TABLE instances ADD COLUMN backup_source TEXT NOT NULL DEFAULT 'master';
ALTER TABLE backups ADD COLUMN source TEXT;
`,
    },
    {
      version: 6,
      name: "second-level backup: stream settings and lease per instance, stream segments, stream bases",
      sql: `
CREATE TABLE stream_config (
  instance_id TEXT PRIMARY KEY REFERENCES instances(instance_id),
  mode TEXT NOT NULL DEFAULT 'NormalLevelBackup',
  since BIGINT,
  retention_days INTEGER NOT NULL DEFAULT 7,
  owner TEXT,
  lease_until BIGINT,
  status TEXT NOT NULL DEFAULT ''
);
CREATE TABLE stream_segments (
  segment_id ${e.serialKey},
  instance_id TEXT NOT NULL,
  shard INTEGER NOT NULL,
  replid TEXT NOT NULL,
  start_offset BIGINT NOT NULL,
  end_offset BIGINT NOT NULL,
  start_db INTEGER NOT NULL,
  end_db INTEGER NOT NULL,
  from_ms BIGINT NOT NULL,
  to_ms BIGINT NOT NULL,
  samples TEXT NOT NULL,
  blob_key TEXT,
  units INTEGER NOT NULL,
  bytes BIGINT NOT NULL,
  sha256 TEXT,
  created_at BIGINT NOT NULL
);
CREATE INDEX stream_segments_by_time ON stream_segments(instance_id, shard, to_ms);
CREATE TABLE stream_bases (
  backup_id TEXT PRIMARY KEY,
  instance_id TEXT NOT NULL,
  shard INTEGER NOT NULL,
  replid TEXT NOT NULL,
  offset_at BIGINT NOT NULL,
  taken_at BIGINT NOT NULL
);
CREATE INDEX stream_bases_by_instance ON stream_bases(instance_id, shard, taken_at);
`,
    },
    {
      version: 7,
      name: "encryption at rest: a backup's master key id and wrapped data key, an instance's encryption choice",
      // kms_key_id/wrapped_key: NULL for plain backups (and fixtures); key-rotation rewrites them in place.
      // encrypt_backups: NULL follows the server's --encrypt-backups, 1 always, 0 never.
      sql: `
ALTER TABLE backups ADD COLUMN kms_key_id TEXT;
ALTER TABLE backups ADD COLUMN wrapped_key TEXT;
ALTER TABLE instances ADD COLUMN encrypt_backups INTEGER;
CREATE INDEX backups_by_key ON backups(kms_key_id) WHERE kms_key_id IS NOT NULL;
`,
    },
    {
      version: 8,
      name: "second-level backup: the proof of each base (replay of the previous base + stream compared with it)",
      sql: `
ALTER TABLE stream_bases ADD COLUMN proof TEXT;
`,
    },
    {
      version: 9,
      // One row per instance this service provisions itself (CloneInstances): which node owns its process (the
      // node's --node-id, else the host name), the provider, its port and data directory, and its state (loading
      // until the clone task succeeds, then ready).
      name: "provisioned instances (CloneInstances): owner, provider, port, data directory, state",
      sql: `
CREATE TABLE provisioned_instances (
  instance_id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  provider TEXT NOT NULL DEFAULT 'local',
  port INTEGER NOT NULL UNIQUE,
  data_dir TEXT NOT NULL,
  state TEXT NOT NULL,
  task_id BIGINT,
  created_at BIGINT NOT NULL
);
`,
    },
    {
      version: 10,
      // NULL: none. Seconds from the first such segment until every shard has a base taken after it are not
      // restorable (jobs/point-in-time.ts): replay runs shard by shard, which is exact only while shards own
      // disjoint keys.
      // stream_config.epoch: when the stream last started afresh because the cluster's number of masters changed;
      // bases taken before it are never used again (their shards were another shape).
      name: "second-level backup: segments holding keys moved between a cluster's masters (slot migration); the stream's epoch (a changed number of masters)",
      sql: `
ALTER TABLE stream_segments ADD COLUMN key_moves INTEGER;
ALTER TABLE stream_config ADD COLUMN epoch BIGINT;
`,
    },
    {
      version: 11,
      // Every port a provisioned instance holds, one row per node: a cluster-shaped clone has one redis-server per
      // shard of its source (shard 0's port is also provisioned_instances.port, the address it is registered
      // with). The primary key holds each port once across all instances and nodes; rows made before this
      // migration get their one node. provisioned_instances.shape: 'cluster' for a cluster-shaped clone (its
      // nodes run with cluster-enabled, even a cluster of one master), NULL for one standalone server.
      name: "provisioned instances: one row per node and port, and the shape (cluster-shaped clones)",
      sql: `
ALTER TABLE provisioned_instances ADD COLUMN shape TEXT;
CREATE TABLE provisioned_nodes (
  port INTEGER PRIMARY KEY,
  instance_id TEXT NOT NULL,
  shard INTEGER NOT NULL
);
CREATE INDEX provisioned_nodes_instance ON provisioned_nodes (instance_id);
INSERT INTO provisioned_nodes (port, instance_id, shard) SELECT port, instance_id, 0 FROM provisioned_instances;
`,
    },
  ];
}
