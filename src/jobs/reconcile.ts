// Storage against the catalogue, both ways. Every blob under backups/ and exports/ must belong to a backup that
// is meant to have it; anything else is an orphan (a crash between a file's commit and its record, a node that
// died mid-retirement) and is removed. Every file the catalogue lists must be in storage with its recorded size;
// a missing or short one is reported (never "repaired": a backup that lost its file is a fact to show).
//
// Blobs of work in progress are left alone: a backup at Status 1 whose task is queued or running, an export at
// Status 3 likewise — on any node. So reconciliation is safe at any time, on every node.
import type { Catalog } from "../catalog/catalog";
import type { Backup } from "../catalog/types";
import type { BlobStore } from "../storage/blob-store";
import { exportKey, removeBackupBlobs } from "./backups";
import { TASK } from "./tasks";

export interface ReconcileReport {
  /** Blobs checked. */
  blobs: number;
  /** Blobs no backup accounts for (removed unless dryRun). */
  orphans: string[];
  /** Catalogued files missing from storage. */
  missing: string[];
  /** Catalogued files whose stored size differs from the recorded one: "key: stored X, recorded Y". */
  sizeMismatch: string[];
  /** Backups whose files were left alone because work on them is in progress. */
  inProgress: number;
  removed: number;
}

const BLOB = /^(backups|exports)\/([^/]+)\/(.+)$/;

export async function reconcileStorage(o: { catalog: Catalog; store: BlobStore; dryRun?: boolean; checkFiles?: boolean }): Promise<ReconcileReport> {
  const { catalog, store } = o;
  const report: ReconcileReport = { blobs: 0, orphans: [], missing: [], sizeMismatch: [], inProgress: 0, removed: 0 };
  const seen = new Map<string, { backup: Backup | undefined; busy: boolean }>();
  const busyIds = new Set<string>();
  const lookup = async (backupId: string) => {
    let s = seen.get(backupId);
    if (!s) {
      const backup = await catalog.backup(backupId);
      let busy = false;
      if (backup && (backup.status === 1 || backup.status === 3)) {
        const types = backup.status === 1 ? [TASK.backup, TASK.autoBackup] : [TASK.exportBackup];
        busy = (await catalog.activeTasks(backup.instanceId, types)).some((t) => t.backupId === backupId);
      }
      s = { backup, busy };
      seen.set(backupId, s);
      if (busy) busyIds.add(backupId);
    }
    return s;
  };
  for (const prefix of ["backups/", "exports/"]) {
    for await (const blob of store.list(prefix)) {
      report.blobs++;
      const m = BLOB.exec(blob.key);
      const { backup, busy } = m ? await lookup(m[2]!) : { backup: undefined, busy: false };
      if (busy) continue;
      let wanted = false;
      if (backup && m) {
        if (m[1] === "backups") wanted = [2, 3, 4].includes(backup.status) && backup.files.some((f) => f.key === blob.key);
        else wanted = backup.status === 4 && backup.files.some((f) => exportKey(backup.backupId, f.shard) === blob.key);
      }
      if (wanted) continue;
      report.orphans.push(blob.key);
      if (!o.dryRun) {
        await store.remove(blob.key);
        report.removed++;
      }
    }
  }
  report.inProgress = busyIds.size;
  if (o.checkFiles) {
    for (const status of [2, 3, 4] as const) {
      for (const b of await catalog.backupsInStatus(status)) {
        for (const f of b.files) {
          const st = await store.stat(f.key);
          if (!st) report.missing.push(f.key);
          else if (f.storedBytes !== undefined && st.size !== f.storedBytes) report.sizeMismatch.push(`${f.key}: stored ${st.size} bytes, recorded ${f.storedBytes}`);
        }
      }
    }
  }
  return report;
}

/**
 * Backup states no task accounts for — what older versions, or a crash between writes that should have been one,
 * could leave: Status 3 with no export running goes back to 2; a lock no restore or export holds is released; a
 * Status 1 record with no backup task running is dropped with its files. Every claim writes its status (or lock)
 * and its task in one transaction, so on a consistent catalogue this finds nothing; it is safe on any node at any
 * time. Fixture records are static data and left as given.
 */
export async function sweepOrphanStates(o: { catalog: Catalog; store: BlobStore }): Promise<{ exports: number; locks: number; unfinished: number }> {
  const { catalog, store } = o;
  const out = { exports: 0, locks: 0, unfinished: 0 };
  const active = async (b: Backup, types: string[]) => (await catalog.activeTasks(b.instanceId, types)).some((t) => t.backupId === b.backupId);
  for (const b of await catalog.backupsInStatus(3)) {
    if (b.fixture || !b.files.length || (await active(b, [TASK.exportBackup]))) continue;
    for (const f of b.files) await store.remove(exportKey(b.backupId, f.shard));
    if (await catalog.transitionBackup(b.backupId, [3], 2, { locked: 0 }, 1)) out.exports++;
  }
  // Through the partial index on locked: a start must not read every kept backup of a large catalogue.
  for (const b of await catalog.lockedBackups()) {
    if (await active(b, [TASK.restore, TASK.exportBackup])) continue;
    await catalog.updateBackup(b.backupId, { locked: 0 });
    out.locks++;
  }
  for (const b of await catalog.backupsInStatus(1)) {
    if (b.fixture || (await active(b, [TASK.backup, TASK.autoBackup]))) continue;
    await removeBackupBlobs(store, b.backupId, b.files);
    await catalog.deleteBackupRecord(b.backupId);
    out.unfinished++;
  }
  return out;
}
