// Key rotation (`crs-backup key-rotation`): a new active master key in the keyring file, then every live
// encrypted backup's data key re-wrapped under it — only the wrapped key in its catalogue record changes; the
// stored files are not touched or uploaded again. A key can be retired (removed from the keyring) only once no
// live backup (any status but -1 expired and -2 deleted, whose files are gone) is wrapped by it.
import type { Catalog } from "../catalog/catalog";
import type { Backup } from "../catalog/types";
import { readKeyringDoc, withNewKey, writeKeyring } from "../storage/keys/keyring";
import type { KeyProvider } from "../storage/keys/provider";
import { backupKeyOf } from "./backups";

export interface RotationOptions {
  catalog: Catalog;
  keys: KeyProvider;
  /** The keyring file to add the new key to (and retire keys from). */
  file: string;
  /** The new key's id (default k<n>); false: add none, re-wrap under the key already active. */
  newKeyId?: string | false;
}

export interface RotationReport {
  active: string;
  added?: string;
  rewrapped: number;
  alreadyActive: number;
  /** Backups that could not be re-wrapped (their key missing or wrong), with the reason. */
  failed: Array<{ backupId: string; keyId: string; reason: string }>;
}

const live = (b: Backup): boolean => b.status !== -1 && b.status !== -2;

/** Every live encrypted backup in the catalogue. */
async function encryptedBackups(catalog: Catalog): Promise<Backup[]> {
  const out: Backup[] = [];
  for (const i of await catalog.instances()) {
    for (const b of await catalog.backupsOfInstance(i.instanceId)) if (live(b) && backupKeyOf(b)) out.push(b);
  }
  return out;
}

/** A fresh id for a new key: k<n> with n one more than the highest in use. */
export function nextKeyId(ids: string[]): string {
  let n = 0;
  for (const id of ids) {
    const m = /^k(\d+)$/.exec(id);
    if (m) n = Math.max(n, Number(m[1]));
  }
  return `k${n + 1}`;
}

export async function rotateKeys(o: RotationOptions): Promise<RotationReport> {
  let added: string | undefined;
  if (o.newKeyId !== false) {
    const doc = readKeyringDoc(o.file);
    added = o.newKeyId ?? nextKeyId(Object.keys(doc.keys));
    writeKeyring(o.file, withNewKey(doc, added));
  }
  const active = o.keys.activeKeyId(); // the keyring reads the file again
  if (added !== undefined && active !== added) throw new Error(`the keyring in use is not ${o.file}, or it changed meanwhile: its active key is ${active}, not ${added}`);
  const report: RotationReport = { active, ...(added ? { added } : {}), rewrapped: 0, alreadyActive: 0, failed: [] };
  for (const b of await encryptedBackups(o.catalog)) {
    const w = backupKeyOf(b)!;
    if (w.keyId === active) {
      report.alreadyActive++;
      continue;
    }
    try {
      const next = await o.keys.rewrap(w, active);
      await o.catalog.updateBackup(b.backupId, { kmsKeyId: next.keyId, wrappedKey: next.wrappedKey });
      report.rewrapped++;
    } catch (err) {
      report.failed.push({ backupId: b.backupId, keyId: w.keyId, reason: (err as Error).message });
    }
  }
  return report;
}

/** Removes a key from the keyring; refused while it is active or wraps a live backup. */
export async function retireKey(o: Pick<RotationOptions, "catalog" | "file">, id: string): Promise<void> {
  const doc = readKeyringDoc(o.file);
  if (doc.keys[id] === undefined) throw new Error(`cannot retire ${JSON.stringify(id)}: the keyring ${o.file} has no such key (it has ${Object.keys(doc.keys).join(", ")})`);
  if (doc.active === id) throw new Error(`cannot retire ${JSON.stringify(id)}: it is the active key; rotate to a new one first`);
  const users = (await encryptedBackups(o.catalog)).filter((b) => b.kmsKeyId === id);
  if (users.length) {
    const shown = users.slice(0, 5).map((b) => b.backupId).join(", ");
    throw new Error(`cannot retire ${JSON.stringify(id)}: it still wraps ${users.length} live backup(s) (${shown}${users.length > 5 ? ", …" : ""}); re-wrap them first (crs-backup key-rotation --no-new-key) or delete them`);
  }
  const { [id]: _gone, ...keys } = doc.keys;
  writeKeyring(o.file, { active: doc.active, keys });
}
