// Why a task failed, as one word of a small closed set: the `reason` label of crs_backup_tasks_failed_total.
// A label must never carry an error message (unbounded values: every message would be a new time series), so
// the error is classified by its type and code, and by its message only as a last resort.
import { CaptureError } from "../redis/capture/capture";
import { RestoreError } from "../redis/restore/errors";
import { S3StorageError } from "../storage/s3-errors";

export const FAILURE_REASONS = [
  /** The Redis server (or a cluster node) could not be reached, or the connection was lost. */
  "connect",
  /** The Redis server refused our credentials or permissions (NOAUTH, WRONGPASS, NOPERM). */
  "auth",
  /** The Redis server refused to replicate (SYNC/PSYNC refused or renamed). */
  "sync_refused",
  /** Nothing arrived for the capture's or restore's timeout. */
  "stall",
  /** The blob store failed: disk full, permissions, S3 refused or unreachable, a missing file. */
  "storage",
  /** The data is damaged: an RDB that does not validate, a stored file that does not match its record. */
  "corrupt",
  /** A restore target that cannot take the data (a replica, cluster mode, too old, failed to load). */
  "rejected",
  /** Cancelled: shut down, the lease lost, or recovered after the node running it died. */
  "interrupted",
  "other",
] as const;

export type FailureReason = (typeof FAILURE_REASONS)[number];

const CONNECT_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EPIPE"]);
const STORAGE_CODES = new Set(["ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "EIO", "ENOENT", "EMFILE"]);

function ofCapture(code: CaptureError["code"]): FailureReason {
  switch (code) {
    case "CONNECT":
    case "CLOSED":
      return "connect";
    case "AUTH":
    case "NODE_NOT_ALLOWED":
      return "auth";
    case "SYNC_REFUSED": return "sync_refused";
    case "STALL": return "stall";
    case "CORRUPT": return "corrupt";
    case "STORAGE": return "storage";
    case "ABORTED": return "interrupted";
    default: return "other";
  }
}

function ofRestore(kind: RestoreError["kind"]): FailureReason {
  switch (kind) {
    case "auth":
    case "permission":
      return "auth";
    case "connect": return "connect";
    case "unsupported": return "rejected";
    case "source": return "storage";
    case "load": return "corrupt";
    case "timeout": return "stall";
    case "aborted": return "interrupted";
    default: return "other";
  }
}

/** The reason of one error (following `cause`), or undefined when its type says nothing. */
function classify(err: unknown, depth = 0): FailureReason | undefined {
  if (!err || typeof err !== "object" || depth > 5) return undefined;
  if (err instanceof CaptureError) {
    // A sink failure wraps the store's error; the kind of store error says more than "storage" alone.
    return ofCapture(err.code);
  }
  if (err instanceof RestoreError) return ofRestore(err.kind);
  if (err instanceof S3StorageError) return "storage";
  const code = String((err as { code?: unknown }).code ?? "");
  if (code === "EINTEGRITY") return "corrupt";
  if (CONNECT_CODES.has(code)) return "connect";
  if (STORAGE_CODES.has(code)) return "storage";
  if (/^SQLITE_FULL|^53100$/.test(code)) return "storage";
  return classify((err as { cause?: unknown }).cause, depth + 1);
}

/**
 * The reason a task failed: from the error's type and code, else (an error that carries neither, or only
 * the task's message) from a few unambiguous words of the message, else "other".
 */
export function failureReason(err: unknown, message: string, aborted = false): FailureReason {
  if (aborted) return "interrupted";
  const byType = classify(err);
  if (byType) return byType;
  if (/^cancelled:|^interrupted:|lease (was )?lost|lease could not be renewed|could not be recorded before/i.test(message)) return "interrupted";
  if (/\bNOAUTH\b|\bWRONGPASS\b|\bNOPERM\b|invalid password/i.test(message)) return "auth";
  if (/ECONNREFUSED|EHOSTUNREACH|ENOTFOUND|connection (refused|lost|closed)/i.test(message)) return "connect";
  if (/does not match its record|not written intact|corrupt/i.test(message)) return "corrupt";
  if (/ENOSPC|no space left/i.test(message)) return "storage";
  return "other";
}
