// Downloads of encrypted backups. By default a link serves the plain RDB, decrypted while it streams (a whole
// file is also checked against the recorded SHA-256; a byte range is authenticated chunk by chunk). With
// --download-encrypted it serves the export file as stored, encrypted, as the cloud does: the caller decrypts it
// with the backup's DecryptKey (DescribeBackupDetail, given only over TLS to keys whose policy allows
// DescribeBackupDecryptKey) and `crs-backup decrypt`.
import type { Backup, StoredFile } from "../catalog/types";
import type { Config } from "../config";
import { backupKeyOf } from "../jobs/backups";
import { storedSize } from "../storage/encryption";
import type { WrappedKey } from "../storage/keys/provider";
import { downloadFileName } from "./links";

/** The CAM action a key's policy must allow for DescribeBackupDetail to answer DecryptKey. */
export const DECRYPT_KEY_ACTION = "DescribeBackupDecryptKey";

export interface DownloadForm {
  /** The data key to decrypt with while serving; undefined: the stored bytes are served as they are. */
  decrypt: WrappedKey | undefined;
  /** Whether the bytes served are the encrypted file. */
  encrypted: boolean;
}

/** How a backup's files are served under this configuration. */
export function downloadForm(config: Pick<Config, "downloadEncrypted">, b: Pick<Backup, "kmsKeyId" | "wrappedKey">): DownloadForm {
  const key = backupKeyOf(b);
  if (!key) return { decrypt: undefined, encrypted: false };
  return config.downloadEncrypted ? { decrypt: undefined, encrypted: true } : { decrypt: key, encrypted: false };
}

/** The size of the file a link serves. */
export function downloadSize(form: DownloadForm, f: Pick<StoredFile, "bytes">): number {
  return form.encrypted ? storedSize(f.bytes) : f.bytes;
}

/** The file name a link serves: `.rdb`, or `.rdb.enc` for the encrypted file. */
export function downloadName(form: DownloadForm, b: Pick<Backup, "instanceId" | "backupId">, shard: number): string {
  return `${downloadFileName(b, shard)}${form.encrypted ? ".enc" : ""}`;
}
