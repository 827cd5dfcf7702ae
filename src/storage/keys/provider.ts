// The master keys that wrap backups' data keys, behind one interface: a local keyring file now (keyring.ts); a
// KMS (Tencent KMS, AWS KMS, Vault transit) implements the same four operations later (GenerateDataKey, Decrypt,
// ReEncrypt, and knowing its key ids). Data keys are 32 random bytes, one per backup; only their wrapped form is
// stored (with the backup's record in the catalogue), never the plain key, and nothing here is ever logged.

/** A data key wrapped by a master key: what the catalogue keeps with a backup. */
export interface WrappedKey {
  /** The master key's id (KmsKeyId in the API). */
  keyId: string;
  /** The wrapped data key (base64). */
  wrappedKey: string;
}

export interface KeyProvider {
  /** Where the keys live, for messages (a file name, a KMS endpoint); never a secret. */
  describe(): string;
  /** The master key new data keys are wrapped with. */
  activeKeyId(): string;
  /** The ids of every master key the provider can use. */
  keyIds(): string[];
  /** A fresh data key and its wrapped form under the active master key. */
  generateDataKey(): Promise<WrappedKey & { dataKey: Buffer }>;
  /** The plain data key; rejects with a KeyUnavailableError naming the key id when it cannot. */
  unwrap(w: WrappedKey): Promise<Buffer>;
  /** The same data key wrapped under `toKeyId` (key rotation: the data itself is untouched). */
  rewrap(w: WrappedKey, toKeyId: string): Promise<WrappedKey>;
}

/** A backup's data key cannot be opened: its master key is missing, or is not the key it was wrapped with. */
export class KeyUnavailableError extends Error {
  override name = "KeyUnavailableError";
  readonly code = "EKEYUNAVAILABLE";
  constructor(readonly keyId: string, message: string) {
    super(message);
  }
}

/** For callers that find an encrypted backup but have no keys configured at all. */
export function noKeysError(keyId: string): KeyUnavailableError {
  return new KeyUnavailableError(keyId, `encrypted with master key ${JSON.stringify(keyId)}, but no keyring is configured: start with --encryption-keys FILE (CRS_ENCRYPTION_KEYS) holding that key`);
}
