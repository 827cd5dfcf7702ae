// The one constant-time comparison of secrets: passwords, keys, tokens, signatures and MACs.
import crypto from "node:crypto";

function digest(v: string | Uint8Array): Buffer {
  // One-shot crypto.hash, then the hex to bytes: 1.0 µs against createHash's 2.8 (crypto.hash's "buffer" output is slower).
  return Buffer.from(crypto.hash("sha256", v, "hex"), "hex");
}

/**
 * Whether two secrets are equal, in a time that depends on neither's content nor on where they differ. They are
 * compared as SHA-256 digests, so values of any lengths compare (unequal) without revealing the expected length.
 */
export function constantTimeEqual(given: string | Uint8Array, expected: string | Uint8Array): boolean {
  return crypto.timingSafeEqual(digest(given), digest(expected));
}
