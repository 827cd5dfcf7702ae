// What the API's identifiers look like. Checked before any lookup, so a caller-chosen string that cannot be an id
// never reaches the catalogue or a cache behind it.

/** `crs-` and 8 lower-case letters or digits. */
export const INSTANCE_ID_PATTERN = /^crs-[a-z0-9]{8}$/;

/**
 * A SecretId: real ones are `AKID` + 32 letters and digits; fixtures may hold other short ASCII ids. Anything else
 * is refused before any lookup.
 */
export const SECRET_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** Schema bound of ids: long enough for any id we issue or a fixture holds, short enough to be cheap. */
export const ID_MAX_LENGTH = 64;
