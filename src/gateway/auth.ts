// Authentication of both signature styles against the catalogue's credentials.
import type { IncomingHttpHeaders } from "node:http";
import { constantTimeEqual } from "../protocol/constant-time";
import { ApiError } from "../protocol/errors";
import { SECRET_ID_PATTERN } from "../protocol/ids";
import {
  parseTc3Authorization, sha256Hex, tc3Signature, UNSIGNED_PAYLOAD, v1Signature, v1StringToSign, V1Method,
} from "../protocol/signature";
import type { Credential } from "../catalog/types";
import type { RequestHost } from "./host";

export const TIMESTAMP_WINDOW_S = 300;

export interface CredentialSource {
  credential(secretId: string): Promise<Credential | undefined> | Credential | undefined;
}

/** A verified request: the credential and the signature it carried (for the replay checks). */
export interface Authenticated {
  credential: Credential;
  signature: string;
  /** TC3: whether X-TC-Action is among the signed headers (then the signature holds for that action only). */
  actionSigned?: boolean;
}

function checkTimestamp(text: string | undefined, name: string, nowS: number): number {
  if (text === undefined || text === "") throw new ApiError("MissingParameter", { name });
  if (!/^\d{1,12}$/.test(text)) throw new ApiError("InvalidParameter", { reason: `\`${name}\` must be a Unix timestamp in seconds, got ${JSON.stringify(text.slice(0, 40))}` });
  const ts = Number(text);
  if (Math.abs(nowS - ts) > TIMESTAMP_WINDOW_S) throw new ApiError("AuthFailure.SignatureExpire");
  return ts;
}

async function lookup(source: CredentialSource, secretId: string): Promise<Credential> {
  if (!SECRET_ID_PATTERN.test(secretId)) throw new ApiError("AuthFailure.InvalidSecretId");
  const c = await source.credential(secretId);
  if (!c) throw new ApiError("AuthFailure.SecretIdNotFound");
  return c;
}

function checkToken(c: Credential, token: string | undefined): void {
  const sent = token ?? "";
  const expected = c.token ?? "";
  if (!constantTimeEqual(sent, expected)) throw new ApiError("AuthFailure.TokenFailure");
}

export interface V3Request {
  method: string;
  host: RequestHost;
  rawQuery: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export async function authenticateV3(req: V3Request, source: CredentialSource, nowS: number): Promise<Authenticated> {
  const header = req.headers.authorization;
  if (header === undefined || header === "") throw new ApiError("MissingParameter", { name: "Authorization" });
  const auth = parseTc3Authorization(header);
  if (typeof auth === "string") throw new ApiError("AuthFailure.InvalidAuthorization", { reason: auth });
  const timestampText = headerValue(req.headers, "x-tc-timestamp");
  const ts = checkTimestamp(timestampText, "X-TC-Timestamp", nowS);
  const credential = await lookup(source, auth.secretId);
  const date = new Date(ts * 1000).toISOString().slice(0, 10);
  if (auth.date !== date) {
    throw new ApiError("AuthFailure.SignatureFailure", { reason: `The date ${auth.date} in Credential is not the UTC date ${date} of X-TC-Timestamp.` });
  }
  const unsigned = headerValue(req.headers, "x-tc-content-sha256") === UNSIGNED_PAYLOAD;
  const payloadHash = sha256Hex(unsigned ? UNSIGNED_PAYLOAD : req.body);
  const headerValues: Record<string, string> = {};
  for (const name of auth.signedHeaders) headerValues[name] = (headerValue(req.headers, name) ?? "").trim().toLowerCase();
  // The Node SDK signs the host without its port while sending it with one; Go and Python sign it as sent.
  // Stopping at the first match reveals nothing secret: which variant matched is the client's own choice.
  const ok = [...req.host.signed].reverse().some((host) => {
    headerValues.host = host;
    const expected = tc3Signature({
      method: req.method, canonicalQuery: req.rawQuery, signedHeaders: auth.signedHeaders, headerValues, payloadHash,
      timestamp: timestampText!, date: auth.date, service: auth.service, secretKey: credential.secretKey,
    });
    return constantTimeEqual(expected, auth.signature);
  });
  if (!ok) throw new ApiError("AuthFailure.SignatureFailure", { reason: "" });
  checkToken(credential, headerValue(req.headers, "x-tc-token"));
  return { credential, signature: auth.signature, actionSigned: auth.signedHeaders.includes("x-tc-action") };
}

export interface V1Request {
  method: string;
  host: RequestHost;
  /** All decoded parameters, common ones included, in the order received. */
  pairs: ReadonlyArray<readonly [string, string]>;
  common: Map<string, string>;
}

export async function authenticateV1(req: V1Request, source: CredentialSource, nowS: number): Promise<Authenticated> {
  const signature = req.common.get("Signature");
  const secretId = req.common.get("SecretId");
  if (!secretId) throw new ApiError("MissingParameter", { name: "SecretId" });
  if (!signature) throw new ApiError("MissingParameter", { name: "Signature" });
  const nonce = req.common.get("Nonce");
  if (nonce === undefined || nonce === "") throw new ApiError("MissingParameter", { name: "Nonce" });
  if (!/^\d{1,20}$/.test(nonce)) throw new ApiError("InvalidParameter", { reason: "`Nonce` must be a non-negative integer" });
  const methodName = req.common.get("SignatureMethod") ?? "HmacSHA1";
  if (methodName !== "HmacSHA1" && methodName !== "HmacSHA256") {
    throw new ApiError("InvalidParameterValue", { reason: "`SignatureMethod` must be HmacSHA1 or HmacSHA256" });
  }
  checkTimestamp(req.common.get("Timestamp"), "Timestamp", nowS);
  const credential = await lookup(source, secretId);
  // The Go SDK leaves empty values out of what it signs; the Node SDK signs the host with its port.
  const nonEmpty = req.pairs.filter(([, v]) => v !== "");
  const variants = nonEmpty.length === req.pairs.length ? [req.pairs] : [req.pairs, nonEmpty];
  // The Node SDK signs v1 with the host's port.
  const ok = req.host.signed.some((host) =>
    variants.some((pairs) => constantTimeEqual(v1Signature(credential.secretKey, v1StringToSign(req.method, host, pairs), methodName as V1Method), signature)));
  if (!ok) throw new ApiError("AuthFailure.SignatureFailure", { reason: "" });
  checkToken(credential, req.common.get("Token"));
  return { credential, signature };
}

export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(",") : v;
}
