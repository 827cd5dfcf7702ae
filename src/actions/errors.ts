// Domain errors as API errors, in one table. The jobs say what happened (src/jobs/errors.ts); this says which
// Tencent code and message that is — per action where the cloud's own codes differ (a backup in the wrong
// status is BackupStatusInvalid to DescribeBackupUrl but BackupStatusAbnormal to RestoreInstance). The pipeline
// applies it to whatever a handler throws, so handlers do not catch to translate.
import { CatalogFullError } from "../catalog/catalog";
import { BackupUnavailableError, InstanceBusyError, JobFailedError } from "../jobs/errors";
import { DiskSpaceError } from "../jobs/disk-space";
import { ApiError } from "../protocol/errors";
import { KeyUnavailableError } from "../storage/keys/provider";

type Rule = (err: unknown, action: string) => ApiError | undefined;

const RULES: Rule[] = [
  (err) => err instanceof InstanceBusyError ? new ApiError("ResourceUnavailable.InstanceLockedError", { instanceId: err.instanceId, reason: err.message }) : undefined,
  (err, action) => {
    if (!(err instanceof BackupUnavailableError)) return undefined;
    switch (err.reason) {
      case "missing": return new ApiError("InvalidParameterValue.BackupNotExists", { backupId: err.backupId });
      case "locked": return new ApiError("ResourceUnavailable.BackupLockedError", { backupId: err.backupId });
      case "shards": return new ApiError("UnsupportedOperation", { reason: err.message });
      case "status":
        return action === "RestoreInstance"
          ? new ApiError("ResourceUnavailable.BackupStatusAbnormal", { reason: err.message })
          : new ApiError("ResourceUnavailable.BackupStatusInvalid", { reason: err.message });
    }
  },
  // The details (paths, checksums) go to the log with the fault, not to the caller.
  (err) => err instanceof JobFailedError ? new ApiError("FailedOperation.SystemError", { reason: "the operation failed on the server and was undone; retry, and quote the RequestId if it persists" }) : undefined,
  // An encrypted backup asked for where its master key is not available: the message names the key id.
  (err) => err instanceof KeyUnavailableError ? new ApiError("ResourceUnavailable.InstanceStatusAbnormal", { reason: err.message.replace(/ in the keyring \/[^ ]+/, " in the keyring") }) : undefined,
  // Refused up front: the message says which disk is short, how much is free and what the watermark is.
  (err) => err instanceof DiskSpaceError ? new ApiError("ResourceInsufficient", { reason: err.message }) : undefined,
  // A full disk is not a bug: the caller can only wait, and the operator sees the cause in the log.
  (err) => {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    return err instanceof CatalogFullError || code === "ENOSPC" || code === "SQLITE_FULL" ? new ApiError("ResourceInsufficient") : undefined;
  },
];

/** The API error for anything a handler threw: an ApiError as it is, a domain error by the table, else undefined. */
export function apiErrorOf(err: unknown, action: string): ApiError | undefined {
  if (err instanceof ApiError) return err;
  for (const rule of RULES) {
    const e = rule(err, action);
    if (e) return e;
  }
  return undefined;
}
