// A test PKI made with the openssl CLI: a CA and a server certificate it signed, for HTTPS tests.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface TestPki {
  dir: string;
  ca: Buffer;
  cert: string;
  key: string;
}

/** A CA and a certificate for 127.0.0.1 and localhost signed by it, valid for a day (P-256 keys: quick to make). */
export function makePki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-tls-"));
  const f = (n: string) => path.join(dir, n);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "1", "-subj", "/CN=crs-backup test CA");
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", "/CN=127.0.0.1");
  fs.writeFileSync(f("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n");
  openssl("x509", "-req", "-in", f("server.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f("server.crt"), "-days", "1", "-extfile", f("ext.cnf"));
  return { dir, ca: fs.readFileSync(f("ca.crt")), cert: f("server.crt"), key: f("server.key") };
}

