// The jobs' refusals and failures, as the domain says them. Each carries what an answer needs (which instance,
// which backup, why); the API's codes for them are chosen in one table (src/actions/errors.ts), not here.

/** Work on an instance is refused: another operation holds it (a backup in progress, a restore), or it is gone. */
export class InstanceBusyError extends Error {
  override name = "InstanceBusyError";
  constructor(readonly instanceId: string, message: string) {
    super(message);
  }
}

export type BackupUnavailableReason =
  /** No such backup (any more). */
  | "missing"
  /** Its status does not allow it (1 still being taken, -1 expired, -2 deleted, a catalogue-only record). */
  | "status"
  /** Another operation holds it (an export, a restore). */
  | "locked"
  /** Not possible with this many shards (a cluster backup). */
  | "shards";

/** A backup cannot be used for this now. */
export class BackupUnavailableError extends Error {
  override name = "BackupUnavailableError";
  constructor(readonly reason: BackupUnavailableReason, message: string, readonly backupId = "") {
    super(message);
  }
}

/** A job ran and failed (I/O, bytes that do not match their record); what it changed has been undone. */
export class JobFailedError extends Error {
  override name = "JobFailedError";
}
