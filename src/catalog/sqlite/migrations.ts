// The SQLite catalogue's text of the migrations that differ between engines (the history is ../schema.ts):
// generated keys, the listing index, and the listing triggers in SQLite's syntax. Applied in order on open and by
// `crs-backup migrate`.
import { migrationsFor } from "../schema";

export const migrations = migrationsFor({
  generatedKey: "INTEGER PRIMARY KEY",
  serialKey: "INTEGER PRIMARY KEY AUTOINCREMENT",
  backupsListing: `-- Covers DescribeInstanceBackups: equality on instance, range on start time, filter on status, order by
-- (start_time DESC, backup_id ASC) without touching the table until the page is chosen.
CREATE INDEX backups_listing ON backups(instance_id, start_time DESC, backup_id, status);`,
  beforeVersions: "",
  // A fresh random value: versions need only differ, not grow.
  newVersion: "random()",
  listingTriggers: `CREATE TRIGGER backups_listing_insert AFTER INSERT ON backups BEGIN
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
  fillBytes: "UPDATE backup_counts SET bytes = (SELECT coalesce(sum(b.backup_size), 0) FROM backups b WHERE b.instance_id = backup_counts.instance_id AND b.status = backup_counts.status);",
  bytesTriggers: `DROP TRIGGER backups_listing_insert;
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
});
