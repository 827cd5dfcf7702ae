// The one error type restoreRdb rejects with. `kind` lets callers map failures to API errors without parsing
// messages (e.g. 'auth' -> InvalidParameterValue.PasswordError).

export type RestoreErrorKind =
  /** The target rejected our credentials (wrong/missing password or ACL user). Nothing was changed. */
  | "auth"
  /** Authenticated, but the user may not run REPLICAOF/INFO (ACL NOPERM, renamed command). Nothing was changed. */
  | "permission"
  /** The target (or, for the connect-back, our listener) could not be reached. */
  | "connect"
  /** The target cannot take part: it is a replica, in cluster mode, already loading, too old for the RDB... */
  | "unsupported"
  /** The RDB source failed (open/read error, wrong length). */
  | "source"
  /** The RDB is corrupt, or the target refused/failed to load it. */
  | "load"
  /** No progress within timeoutMs. */
  | "timeout"
  /** The caller's AbortSignal fired. */
  | "aborted";

/**
 * How far restoreRdb got: before "transfer" the target's data was not changed (in "connect-back" it may have
 * been told REPLICAOF and released again, or refused it).
 */
export type RestorePhase = "prepare" | "connect-back" | "transfer" | "load" | "finish";

export class RestoreError extends Error {
  override name = "RestoreError";
  /** Set by restoreRdb on the errors it rejects with. */
  phase?: RestorePhase;
  constructor(readonly kind: RestoreErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
