// The one error the RDB engine throws for bad input. It names the absolute byte offset in the stream where the
// problem was found and what the parser expected there, so an operator can look at the file with a hex dump
// (or compare with `redis-check-rdb`) instead of guessing.

export class RdbParseError extends Error {
  override name = "RdbParseError";
  /**
   * @param offset absolute byte offset in the RDB stream (0 = the 'R' of "REDIS"); for errors inside a DUMP
   *   payload, the offset inside the payload.
   * @param expected what the parser was looking for at that offset (e.g. "a value type byte").
   */
  constructor(readonly offset: number, readonly expected: string, detail: string) {
    super(`${detail} at offset ${offset} (expected ${expected})`);
  }
}

/** An RDB that is valid but that this engine (or the chosen target) cannot handle in the requested way. */
export class RdbUnsupportedError extends Error {
  override name = "RdbUnsupportedError";
}
