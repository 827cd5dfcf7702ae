// Tencent Cloud API signatures: TC3-HMAC-SHA256 (v3) and HmacSHA1/HmacSHA256 (v1). Pure functions; the
// gateway decides which inputs to try (e.g. Host with and without its port).
import crypto from "node:crypto";
import { LRUCache } from "lru-cache";

export const TC3_ALGORITHM = "TC3-HMAC-SHA256";
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

/** One-shot `crypto.hash` (Node >= 20.12): about a third of createHash's cost for a request-sized input. */
export function sha256Hex(data: string | Buffer): string {
  return crypto.hash("sha256", data, "hex");
}

function hmac(key: string | Buffer, data: string, alg = "sha256"): Buffer {
  return crypto.createHmac(alg, key).update(data, "utf8").digest();
}

export interface Tc3Input {
  method: string;
  /** Raw query string as received, without `?` (empty for POST). */
  canonicalQuery: string;
  /** Signed header names, lower case, in the order of SignedHeaders. */
  signedHeaders: string[];
  /** Values for the signed headers, already lower-cased and trimmed. */
  headerValues: Record<string, string>;
  /** hex sha256 of the raw body, or of the literal UNSIGNED-PAYLOAD. */
  payloadHash: string;
  timestamp: string;
  date: string;
  service: string;
  secretKey: string;
}

export function tc3CanonicalRequest(i: Tc3Input): string {
  const names = [...i.signedHeaders].sort();
  const canonicalHeaders = names.map((n) => `${n}:${i.headerValues[n] ?? ""}\n`).join("");
  return [i.method.toUpperCase(), "/", i.canonicalQuery, canonicalHeaders, i.signedHeaders.join(";"), i.payloadHash].join("\n");
}

/**
 * The derived signing key depends only on key, date and service, so it is memoised (as the cloud SDKs do):
 * three of the four HMACs of a signature. Every request's signature is still computed and compared in full.
 */
const signingKeys = new LRUCache<string, Buffer>({ max: 1000 });

function tc3SigningKey(secretKey: string, date: string, service: string): Buffer {
  const memo = `${date}\n${service}\n${secretKey}`;
  let k = signingKeys.get(memo);
  if (!k) {
    const kDate = hmac(`TC3${secretKey}`, date);
    const kService = hmac(kDate, service);
    k = hmac(kService, "tc3_request");
    signingKeys.set(memo, k);
  }
  return k;
}

export function tc3Signature(i: Tc3Input): string {
  const scope = `${i.date}/${i.service}/tc3_request`;
  const stringToSign = `${TC3_ALGORITHM}\n${i.timestamp}\n${scope}\n${sha256Hex(tc3CanonicalRequest(i))}`;
  return crypto.createHmac("sha256", tc3SigningKey(i.secretKey, i.date, i.service)).update(stringToSign, "utf8").digest("hex");
}

export interface ParsedAuthorization {
  secretId: string;
  date: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

const MAX_AUTHORIZATION = 4096;

/** Parses `TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=a;b, Signature=hex`. */
export function parseTc3Authorization(header: string): ParsedAuthorization | string {
  // A real one is about 200 characters; a longer one is refused before anything in it is used.
  if (header.length > MAX_AUTHORIZATION) return `longer than ${MAX_AUTHORIZATION} characters`;
  const m = /^TC3-HMAC-SHA256\s+(.*)$/.exec(header.trim());
  if (!m) return "the algorithm must be TC3-HMAC-SHA256";
  const fields = new Map<string, string>();
  for (const part of m[1]!.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) return `malformed element ${JSON.stringify(part.trim())}`;
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get("Credential");
  const signedHeaders = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (!credential) return "Credential is missing";
  if (!signedHeaders) return "SignedHeaders is missing";
  if (!signature) return "Signature is missing";
  const scope = credential.split("/");
  if (scope.length !== 4 || scope[3] !== "tc3_request" || !scope[0] || !scope[2]) {
    return "Credential must be SecretId/Date/Service/tc3_request";
  }
  if (!/^\d{4}-\d{2}-\d{2}$/.test(scope[1]!)) return "the date in Credential must be YYYY-MM-DD";
  if (!/^[0-9a-f]{64}$/.test(signature)) return "Signature must be 64 lower-case hex digits";
  const names = signedHeaders.split(";").map((s) => s.trim().toLowerCase());
  if (names.some((n) => !n)) return "SignedHeaders has an empty name";
  if (!names.includes("content-type") || !names.includes("host")) return "SignedHeaders must include content-type and host";
  return { secretId: scope[0], date: scope[1]!, service: scope[2], signedHeaders: names, signature };
}

export type V1Method = "HmacSHA1" | "HmacSHA256";

/** StringToSign of v1: METHOD + host + "/?" + sorted name=value pairs with raw (decoded) values. */
export function v1StringToSign(method: string, host: string, params: ReadonlyArray<readonly [string, string]>): string {
  const sorted = params.filter(([k]) => k !== "Signature").sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${method.toUpperCase()}${host}/?${sorted.map(([k, v]) => `${k}=${v}`).join("&")}`;
}

export function v1Signature(secretKey: string, stringToSign: string, method: V1Method): string {
  return crypto.createHmac(method === "HmacSHA256" ? "sha256" : "sha1", secretKey).update(stringToSign, "utf8").digest("base64");
}
