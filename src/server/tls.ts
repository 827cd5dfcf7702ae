// The certificate and key of --tls-cert / --tls-key, read at start so a bad file stops the start with its name.
import fs from "node:fs";
import { createSecureContext } from "node:tls";

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/** Both files read and checked to belong together; undefined when neither option is given. */
export function loadTls(cert: string | undefined, key: string | undefined): TlsPair | undefined {
  if (!cert && !key) return undefined;
  if (!cert || !key) throw new Error("--tls-cert and --tls-key go together");
  const read = (file: string, what: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read the TLS ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const pair = { cert: read(cert, "certificate"), key: read(key, "key") };
  try {
    // Parses both and checks that the key belongs to the certificate, before anything else starts.
    createSecureContext(pair);
  } catch (err) {
    throw new Error(`the TLS certificate ${cert} and key ${key} cannot be used: ${(err as Error).message}`);
  }
  return pair;
}
