// The digest of a backup: the `DEBUG DIGEST` its server would report for the data set, computed from the stored
// file once the transfer is done, never during it. A capture's socket must go as fast as `redis-cli --rdb`: the
// master's fork child lives until the replica has read the whole snapshot, and every key written meanwhile costs
// the master a copied page, so nothing may slow the reader. The stored (gzip) bytes are read here and handed to a
// DigestStream (a worker process at nice 19), which inflates, hashes and digests them; this process only reads.
// The digest is a proof, not part of the backup: if it cannot be computed (an RDB the engine does not read, a
// module type), the backup keeps no digest — the CRC-64 and SHA-256 checks are what make it valid — and the
// reason is kept.
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DigestStream } from "../rdb";

export interface CapturedDigest {
  digest?: string;
  keys?: number;
  /** Why there is no digest. */
  missing?: string;
}

/** A stored backup file as the digest reads it: its gzip bytes, and the check of its plain bytes against the record. */
export interface CompressedRdb {
  /** The stored (gzip) bytes, decrypted if need be. */
  open(): Promise<Readable>;
  /** Throws when the plain bytes' count and SHA-256 differ from what the backup recorded. */
  check(plain: { bytes: number; sha256: string }): void;
}

/**
 * Computes the digest of a stored (compressed) backup file. The plain bytes are checked against the record
 * (`file.check`), as every read of a backup is: a digest is only ever given for the bytes the backup holds.
 * Never rejects: a failure is the `missing` reason. An abort gives `missing` too.
 */
export async function digestCompressedRdb(file: CompressedRdb, signal?: AbortSignal): Promise<CapturedDigest> {
  const digest = new DigestStream({ gzip: true });
  try {
    await pipeline(await file.open(), digest, { signal });
    const r = await digest.result();
    if (r.plain) file.check(r.plain);
    if (r.moduleKeys > 0) return { keys: r.keys, missing: `${r.moduleKeys} key(s) of modules, whose digest only the module can compute` };
    return { digest: r.digest, keys: r.keys };
  } catch (err) {
    digest.destroy();
    return { missing: `the digest could not be computed: ${(err as Error).message}` };
  }
}
