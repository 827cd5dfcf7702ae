// The local keyring: master keys in a JSON file the operator controls (`--encryption-keys FILE`,
// CRS_ENCRYPTION_KEYS), {"active": "k1", "keys": {"k1": "<base64 of 32 random bytes>", ...}}. The file must be
// owner-only (no group or other permission bits, owned by this user) or it is refused. It is read again whenever
// it changes (mtime, size, inode), so a rotation by `crs-backup key-rotation` reaches running servers without a
// restart. Data keys are wrapped with AES-256-GCM under the master key, the key id bound as associated data.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { KeyProvider, KeyUnavailableError, WrappedKey } from "./provider";

export const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The keyring file cannot be used: unreadable, not owner-only, not valid. Says which file and what to fix. */
export class KeyringError extends Error {
  override name = "KeyringError";
}

export interface KeyringDoc {
  active: string;
  keys: Record<string, string>;
}

interface Loaded {
  active: string;
  keys: Map<string, Buffer>;
  stamp: string;
}

const aad = (keyId: string): Buffer => Buffer.from(`crs-backup data key v1|${keyId}`, "utf8");

/** Wraps a 32-byte data key under a master key: base64(nonce 12 || ciphertext 32 || tag 16). */
export function wrapDataKey(master: Buffer, keyId: string, dataKey: Buffer): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv("aes-256-gcm", master, iv);
  c.setAAD(aad(keyId));
  const body = Buffer.concat([c.update(dataKey), c.final()]);
  return Buffer.concat([iv, body, c.getAuthTag()]).toString("base64");
}

/** The plain data key, or undefined when `master` is not the key it was wrapped with (or it was altered). */
export function unwrapDataKey(master: Buffer, keyId: string, wrapped: string): Buffer | undefined {
  const raw = Buffer.from(wrapped, "base64");
  if (raw.length !== 12 + 32 + 16) return undefined;
  try {
    const d = crypto.createDecipheriv("aes-256-gcm", master, raw.subarray(0, 12));
    d.setAAD(aad(keyId));
    d.setAuthTag(raw.subarray(44));
    return Buffer.concat([d.update(raw.subarray(12, 44)), d.final()]);
  } catch {
    return undefined;
  }
}

/** Checks a keyring document; throws KeyringError naming `where` and the field. */
export function checkKeyringDoc(doc: unknown, where: string): Map<string, Buffer> {
  const bad = (why: string) => new KeyringError(`${where}: ${why} (expected {"active": "k1", "keys": {"k1": "<base64 of 32 random bytes>"}})`);
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw bad("must hold a JSON object");
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (k !== "active" && k !== "keys") throw bad(`unknown field ${JSON.stringify(k)}`);
  if (typeof d.keys !== "object" || d.keys === null || Array.isArray(d.keys)) throw bad("keys must be an object of key id to base64 key");
  const keys = new Map<string, Buffer>();
  for (const [id, v] of Object.entries(d.keys as Record<string, unknown>)) {
    if (!KEY_ID_PATTERN.test(id)) throw bad(`key id ${JSON.stringify(id.slice(0, 80))} must be 1-64 letters, digits, '.', '_' or '-'`);
    const raw = typeof v === "string" && /^[A-Za-z0-9+/]+={0,2}$/.test(v) ? Buffer.from(v, "base64") : undefined;
    if (!raw || raw.length !== 32) throw bad(`keys.${id} must be the base64 of exactly 32 bytes (openssl rand -base64 32)`);
    keys.set(id, raw);
  }
  if (typeof d.active !== "string" || !keys.has(d.active)) throw bad(`active must name one of the keys (${[...keys.keys()].join(", ") || "none given"})`);
  return keys;
}

function stampOf(st: fs.Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** Reads the keyring file, refusing one that others may read or write or that another user owns. */
function load(file: string): Loaded {
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(file);
    if (!st.isFile()) throw new KeyringError(`the keyring ${file} is not a file`);
    if ((st.mode & 0o077) !== 0) {
      throw new KeyringError(`the keyring ${file} is readable or writable by others (mode ${(st.mode & 0o777).toString(8).padStart(3, "0")}): it must be owner-only; run chmod 600 ${file}`);
    }
    if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
      throw new KeyringError(`the keyring ${file} belongs to user ${st.uid}, not to this process's user ${process.getuid()}: it must be owner-only`);
    }
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof KeyringError) throw err;
    throw new KeyringError(`cannot read the keyring ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new KeyringError(`the keyring ${file} is not valid JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  const keys = checkKeyringDoc(doc, `the keyring ${file}`);
  return { active: (doc as KeyringDoc).active, keys, stamp: stampOf(st) };
}

/** Writes a keyring atomically (temp file, fsync, rename), owner-only. */
export function writeKeyring(file: string, doc: KeyringDoc): void {
  checkKeyringDoc(doc, `the keyring ${file}`);
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${crypto.randomBytes(6).toString("hex")}.tmp`);
  const fd = fs.openSync(temp, "wx", 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(doc, null, 2)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(temp, file);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw err;
  }
}

/** A new keyring document: the keys of `doc` plus a fresh random key `id`, made active. */
export function withNewKey(doc: KeyringDoc | undefined, id: string): KeyringDoc {
  if (!KEY_ID_PATTERN.test(id)) throw new KeyringError(`key id ${JSON.stringify(id)} must be 1-64 letters, digits, '.', '_' or '-'`);
  if (doc?.keys[id] !== undefined) throw new KeyringError(`the keyring already has a key ${JSON.stringify(id)}; choose another id`);
  return { active: id, keys: { ...(doc?.keys ?? {}), [id]: crypto.randomBytes(32).toString("base64") } };
}

/** The keyring document as it is in the file (for key-rotation, which rewrites it). */
export function readKeyringDoc(file: string): KeyringDoc {
  const l = load(file);
  return { active: l.active, keys: Object.fromEntries([...l.keys].map(([id, k]) => [id, k.toString("base64")])) };
}

export class LocalKeyring implements KeyProvider {
  private current: Loaded;

  /** Reads the file now: a bad keyring stops the start (KeyringError). */
  constructor(readonly file: string) {
    this.file = path.resolve(file);
    this.current = load(this.file);
  }

  /** The keys in force: the file again if it changed since it was read. */
  private keys(): Loaded {
    let stamp: string | undefined;
    try {
      stamp = stampOf(fs.statSync(this.file));
    } catch {
      stamp = undefined; // gone for a moment (an editor's rename): keep what was read
    }
    if (stamp !== undefined && stamp !== this.current.stamp) this.current = load(this.file);
    return this.current;
  }

  describe(): string {
    return `the keyring ${this.file}`;
  }

  activeKeyId(): string {
    return this.keys().active;
  }

  keyIds(): string[] {
    return [...this.keys().keys.keys()];
  }

  private master(keyId: string): Buffer {
    const k = this.keys().keys.get(keyId);
    if (!k) throw new KeyUnavailableError(keyId, `encrypted with master key ${JSON.stringify(keyId)}, which is not in ${this.describe()} (it has ${this.keyIds().join(", ")})`);
    return k;
  }

  async generateDataKey(): Promise<WrappedKey & { dataKey: Buffer }> {
    const keyId = this.activeKeyId();
    const dataKey = crypto.randomBytes(32);
    return { keyId, wrappedKey: wrapDataKey(this.master(keyId), keyId, dataKey), dataKey };
  }

  async unwrap(w: WrappedKey): Promise<Buffer> {
    const dataKey = unwrapDataKey(this.master(w.keyId), w.keyId, w.wrappedKey);
    if (!dataKey) throw new KeyUnavailableError(w.keyId, `encrypted with master key ${JSON.stringify(w.keyId)}, but the key of that id in ${this.describe()} does not open its data key (a different key under the same id, or a damaged record)`);
    return dataKey;
  }

  async rewrap(w: WrappedKey, toKeyId: string): Promise<WrappedKey> {
    const dataKey = await this.unwrap(w);
    return { keyId: toKeyId, wrappedKey: wrapDataKey(this.master(toKeyId), toKeyId, dataKey) };
  }
}
