// Moving an embedded installation (a data directory: SQLite catalogue + local files) into the catalogue and
// storage this process is configured with (PostgreSQL, S3, or another directory), without touching the source:
// the SQLite file is read from a private copy and the files are only read.
//
// Resumable: each backup's files are copied (stored bytes as they are, no recompression) and verified —
// decompressed and checked against the recorded size and SHA-256 — before its record is written, so a record in
// the target means its files are there and sound; a rerun skips what is already there (records by id, files by
// their stored size). Exports are not copied (they are re-made on the next download): an exported backup
// arrives as a kept one (Status 2). Backups in progress at the source (Status 1) are left out.
import Database from "better-sqlite3";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import type { Catalog } from "../catalog/catalog";
import { BACKUP_COLUMNS, Row, toBackup, toCredential, toInstance, toTask } from "../catalog/rows";
import { catalogFile, filesDir } from "../config";
import type { BlobStore } from "../storage/blob-store";
import { LocalBlobStore } from "../storage/local";
import { verifiedRead } from "../storage/integrity";
import { backupFiles } from "./backups";

export interface MigrateReport {
  credentials: number;
  instances: number;
  backups: { copied: number; alreadyThere: number; skipped: number };
  files: { copied: number; alreadyThere: number; bytes: number };
  tasks: number;
  settings: number;
}

export interface MigrateOptions {
  fromDir: string;
  catalog: Catalog;
  store: BlobStore;
  onProgress?(done: number, total: number, label: string): void;
}

/**
 * Reads the source catalogue from a private copy: even a read-only SQLite connection creates -wal and -shm files
 * beside a WAL database, and the source must stay exactly as it is. Returns the copy and its remover.
 */
function openSource(dir: string): { db: Database.Database; dispose(): void } {
  const file = catalogFile(dir);
  if (!fs.existsSync(file)) throw new Error(`no catalogue at ${path.resolve(file)}: --from must be a crs-backup data directory`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "crs-migrate-"));
  fs.chmodSync(tmp, 0o700);
  const copy = path.join(tmp, "catalog.db");
  fs.copyFileSync(file, copy);
  if (fs.existsSync(`${file}-wal`)) fs.copyFileSync(`${file}-wal`, `${copy}-wal`);
  const db = new Database(copy, { fileMustExist: true });
  return { db, dispose: () => {
    db.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  } };
}

export async function migrateData(o: MigrateOptions): Promise<MigrateReport> {
  const opened = openSource(o.fromDir);
  const db = opened.db;
  const source = new LocalBlobStore(filesDir(o.fromDir));
  const { catalog, store } = o;
  const report: MigrateReport = { credentials: 0, instances: 0, backups: { copied: 0, alreadyThere: 0, skipped: 0 }, files: { copied: 0, alreadyThere: 0, bytes: 0 }, tasks: 0, settings: 0 };
  try {
    const all = <T>(sql: string, map: (r: Row) => T): T[] => (db.prepare(sql).all() as Row[]).map(map);
    // Settings first: the link-signing secret among them (links issued by the old server keep working) — unless
    // the target already has its own.
    for (const r of all("SELECT name, value FROM settings", (x) => x)) {
      const name = r.name as string;
      if (name.startsWith("migrate-data.")) continue;
      if ((await catalog.settingOnce(name, r.value as string)) === r.value) report.settings++;
    }
    for (const c of all("SELECT secret_id, secret_key, account_id, token, policy FROM credentials", toCredential)) {
      await catalog.putCredential(c);
      report.credentials++;
    }
    for (const i of all("SELECT * FROM instances", toInstance)) {
      await catalog.upsertInstance(i);
      await catalog.updateInstance(i.instanceId, {
        shardNum: i.shardNum, redisVersion: i.redisVersion, memSizeMb: i.memSizeMb, autoBackupWeekDays: i.autoBackupWeekDays, autoBackupPeriod: i.autoBackupPeriod,
        lastAutoWindow: i.lastAutoWindow, ...(i.deletedAt !== undefined ? { deletedAt: i.deletedAt } : {}),
      });
      report.instances++;
    }
    // A source not yet migrated to the newest schema lacks its newest columns (a backup's key id: none then).
    const have = new Set(all("PRAGMA table_info(backups)", (r) => r.name as string));
    const columns = BACKUP_COLUMNS.split(", ").map((c) => (have.has(c) ? c : `NULL AS ${c}`)).join(", ");
    const backups = all(`SELECT ${columns} FROM backups ORDER BY start_time`, toBackup);
    let done = 0;
    for (const b of backups) {
      done++;
      o.onProgress?.(done, backups.length, b.backupId);
      if (b.status === 1) {
        report.backups.skipped++;
        continue;
      }
      if (await catalog.backup(b.backupId)) {
        report.backups.alreadyThere++;
        continue;
      }
      for (const f of backupFiles(b)) {
        const have = await store.stat(f.key);
        const stored = await source.stat(f.key);
        if (!stored) throw new Error(`backup ${b.backupId}: its file ${f.key} is missing at the source (run crs-backup storage check there)`);
        if (have && have.size === stored.size) report.files.alreadyThere++;
        else {
          const writer = store.createWriter(f.key, { compress: false });
          try {
            await pipeline(await source.openRead(f.key), writer);
            await writer.commit();
          } catch (err) {
            await writer.abort();
            throw err;
          }
          report.files.copied++;
          report.files.bytes += stored.size;
        }
        // The copy is sound only if it decompresses to exactly what was captured.
        await pipeline(await verifiedRead(store, f, { decompress: true }), new Writable({ write: (_c, _e, cb) => cb() }));
      }
      // Exports are not copied: an exported (or exporting) backup arrives kept, and nothing holds it.
      const status = b.status === 3 || b.status === 4 ? 2 : b.status;
      await catalog.upsertBackup({ ...b, status, locked: b.fixture ? b.locked : 0 });
      report.backups.copied++;
    }
    // Task history once (task ids are the target's own): terminal tasks only.
    const marker = `migrate-data.tasks:${path.resolve(o.fromDir)}`;
    if (!(await catalog.setting(marker))) {
      await catalog.transaction(async (tx) => {
        for (const t of all("SELECT * FROM tasks WHERE status IN ('succeed', 'failed') ORDER BY task_id", toTask)) {
          const { taskId: _drop, owner: _o, leaseUntil: _l, ...rest } = t;
          await tx.insertTask(rest);
          report.tasks++;
        }
        await tx.putSetting(marker, new Date().toISOString());
      });
    }
    return report;
  } finally {
    opened.dispose();
  }
}
