// Versioned schema migrations of the SQLite catalogue (the PostgreSQL ones are in ../postgres/migrations.ts and
// keep the same tables, columns and numbering). Applied in order on open and by `crs-backup migrate`.

import type { Migration } from "../migrator";

export const migrations: Migration[] = [
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
-- Covers DescribeInstanceBackups: equality on instance, range on start time, filter on status, order by
-- (start_time DESC, backup_id ASC) without touching the table until the page is chosen.
CREATE INDEX backups_listing ON backups(instance_id, start_time DESC, backup_id, status);
CREATE INDEX backups_by_status ON backups(status, expire_time);
CREATE INDEX backups_locked ON backups(locked) WHERE locked = 1;
CREATE TABLE tasks (
  task_id INTEGER PRIMARY KEY,
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
    // backup_versions changes (to a fresh random value) whenever an instance's listing order or membership may
    // have changed, by any connection or process, so an in-memory listing index can tell it is stale.
    // Triggers are SQLite syntax; a PostgreSQL backend does the same with trigger functions.
    sql: `
CREATE TABLE backup_counts (
  instance_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY (instance_id, status)
);
CREATE TABLE backup_versions (
  instance_id TEXT PRIMARY KEY,
  version BIGINT NOT NULL
);
INSERT INTO backup_counts(instance_id, status, n) SELECT instance_id, status, count(*) FROM backups GROUP BY instance_id, status;
INSERT INTO backup_versions(instance_id, version) SELECT instance_id, random() FROM backups GROUP BY instance_id;
-- The scheduler's purge of deleted records (status -2, deleted_at past the audit window) otherwise reads every
-- status -2 row, blocking the event loop for 100+ ms per pass on a million-backup catalogue.
CREATE INDEX backups_deleted ON backups(status, deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TRIGGER backups_listing_insert AFTER INSERT ON backups BEGIN
  INSERT INTO backup_counts(instance_id, status, n) VALUES (new.instance_id, new.status, 1)
    ON CONFLICT(instance_id, status) DO UPDATE SET n = n + 1;
  INSERT INTO backup_versions(instance_id, version) VALUES (new.instance_id, random())
    ON CONFLICT(instance_id) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER backups_listing_delete AFTER DELETE ON backups BEGIN
  UPDATE backup_counts SET n = n - 1 WHERE instance_id = old.instance_id AND status = old.status;
  INSERT INTO backup_versions(instance_id, version) VALUES (old.instance_id, random())
    ON CONFLICT(instance_id) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER backups_listing_update AFTER UPDATE OF backup_id, instance_id, start_time, status ON backups BEGIN
  UPDATE backup_counts SET n = n - 1 WHERE instance_id = old.instance_id AND status = old.status;
  INSERT INTO backup_counts(instance_id, status, n) VALUES (new.instance_id, new.status, 1)
    ON CONFLICT(instance_id, status) DO UPDATE SET n = n + 1;
  INSERT INTO backup_versions(instance_id, version) VALUES (old.instance_id, random())
    ON CONFLICT(instance_id) DO UPDATE SET version = excluded.version;
  INSERT INTO backup_versions(instance_id, version) VALUES (new.instance_id, random())
    ON CONFLICT(instance_id) DO UPDATE SET version = excluded.version;
END;
`,
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
UPDATE backup_counts SET bytes = (SELECT coalesce(sum(b.backup_size), 0) FROM backups b WHERE b.instance_id = backup_counts.instance_id AND b.status = backup_counts.status);
DROP TRIGGER backups_listing_insert;
DROP TRIGGER backups_listing_delete;
DROP TRIGGER backups_listing_update;
CREATE TRIGGER backups_listing_insert AFTER INSERT ON backups BEGIN
  INSERT INTO backup_counts(instance_id, status, n, bytes) VALUES (new.instance_id, new.status, 1, new.backup_size)
    ON CONFLICT(instance_id, status) DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;
  INSERT INTO backup_versions(instance_id, version) VALUES (new.instance_id, random())
    ON CONFLICT(instance_id) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER backups_listing_delete AFTER DELETE ON backups BEGIN
  UPDATE backup_counts SET n = n - 1, bytes = bytes - old.backup_size WHERE instance_id = old.instance_id AND status = old.status;
  INSERT INTO backup_versions(instance_id, version) VALUES (old.instance_id, random())
    ON CONFLICT(instance_id) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER backups_listing_update AFTER UPDATE OF backup_id, instance_id, start_time, status ON backups BEGIN
  UPDATE backup_counts SET n = n - 1, bytes = bytes - old.backup_size WHERE instance_id = old.instance_id AND status = old.status;
  INSERT INTO backup_counts(instance_id, status, n, bytes) VALUES (new.instance_id, new.status, 1, new.backup_size)
    ON CONFLICT(instance_id, status) DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;
  INSERT INTO backup_versions(instance_id, version) VALUES (old.instance_id, random())
    ON CONFLICT(instance_id) DO UPDATE SET version = excluded.version;
  INSERT INTO backup_versions(instance_id, version) VALUES (new.instance_id, random())
    ON CONFLICT(instance_id) DO UPDATE SET version = excluded.version;
END;
-- A size that changes in place (a backup finishing) moves its bytes without touching the listing's version.
CREATE TRIGGER backups_size_update AFTER UPDATE OF backup_size ON backups WHEN old.status = new.status AND old.instance_id = new.instance_id BEGIN
  UPDATE backup_counts SET bytes = bytes - old.backup_size + new.backup_size WHERE instance_id = new.instance_id AND status = new.status;
END;
`,
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
  segment_id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    // h17b (the integrator renumbers): the proof run's outcome is kept with the base it checked.
    name: "second-level backup: the proof of each base (replay of the previous base + stream compared with it)",
    sql: `
ALTER TABLE stream_bases ADD COLUMN proof TEXT;
`,
  },
];
