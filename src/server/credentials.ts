// The server's first key: CRS_SECRET_ID / CRS_SECRET_KEY, or one generated on a first start and shown until a
// start has shown it. Also how a new key pair is made (the `key create` and `key rotate` commands).
import type { Catalog } from "../catalog/catalog";
import { DEFAULT_ACCOUNT } from "./seed";
import { randomString } from "../jobs/instances";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** Settings that remember a generated key until it has been shown, and which key was generated. */
const GENERATED = "credentials.generated";
const UNSHOWN = "credentials.generated.unshown";

export interface GeneratedKey {
  secretId: string;
  secretKey: string;
}

/** A fresh SecretId (AKID + 32 characters) and SecretKey (32 characters). */
export function newKeyPair(): GeneratedKey {
  return { secretId: `AKID${randomString(32, ALNUM)}`, secretKey: randomString(32, ALNUM) };
}

/**
 * CRS_SECRET_ID / CRS_SECRET_KEY define the default account's key. With no credential configured at all, one is
 * generated and stored; it is returned (to be printed) on every start until a start has shown it, so a first
 * start that fails to listen does not lose it. Returns notes for the operator as well.
 */
export async function ensureCredentials(catalog: Catalog, env: NodeJS.ProcessEnv): Promise<{ generated?: GeneratedKey; notes: string[] }> {
  const id = env.CRS_SECRET_ID;
  const key = env.CRS_SECRET_KEY;
  const notes: string[] = [];
  if (id || key) {
    if (!id || !key) throw new Error("set both CRS_SECRET_ID and CRS_SECRET_KEY, or neither");
    await catalog.putCredential({ secretId: id, secretKey: key, accountId: DEFAULT_ACCOUNT });
    const generated = await catalog.setting(GENERATED);
    if (generated && generated !== id && (await catalog.credential(generated))) {
      notes.push(`CRS_SECRET_ID is set, so ${id} is a key of account ${DEFAULT_ACCOUNT}; the key generated earlier (${generated}) still works too — revoke it with: crs-backup key revoke ${generated}`);
    }
    return { notes };
  }
  const unshown = await catalog.setting(UNSHOWN);
  if (unshown) {
    const c = await catalog.credential(unshown);
    if (c) return { generated: { secretId: c.secretId, secretKey: c.secretKey }, notes };
  }
  if ((await catalog.credentialCount()) > 0) return { notes };
  const generated = newKeyPair();
  await catalog.transaction(async (tx) => {
    await tx.putCredential({ ...generated, accountId: DEFAULT_ACCOUNT });
    await tx.putSetting(GENERATED, generated.secretId);
    await tx.putSetting(UNSHOWN, generated.secretId);
  });
  return { generated, notes };
}

/** Prints a generated key (once the server listens) and records that it has been shown. */
export async function announceGeneratedKey(catalog: Catalog, generated: GeneratedKey, out: (line: string) => void): Promise<void> {
  out(`crs-backup: no credentials were configured, so these were generated for account ${DEFAULT_ACCOUNT} and stored in the catalogue (${catalog.describe()}); they are shown until a server has started with them once:`);
  out(`  SecretId:  ${generated.secretId}`);
  out(`  SecretKey: ${generated.secretKey}`);
  await catalog.putSetting(UNSHOWN, "").catch(() => undefined);
}
