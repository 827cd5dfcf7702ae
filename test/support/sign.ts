// Hand-signed requests, for what the SDK cannot send (form bodies, proxy targets, finance hosts, bad bytes).
import { sha256Hex, tc3Signature, v1Signature, v1StringToSign } from "../../src/protocol/signature";

export interface V3Options {
  secretId: string;
  secretKey: string;
  action?: string;
  version?: string;
  region?: string;
  host: string;
  method?: "POST" | "GET";
  query?: string;
  body?: Buffer | string;
  contentType?: string;
  timestamp?: number;
  token?: string;
  language?: string;
  extraHeaders?: Record<string, string>;
  /** Headers signed besides content-type and host (e.g. x-tc-action), as a client may choose to. */
  alsoSign?: string[];
}

/** Headers (with Authorization) for a TC3-HMAC-SHA256 request. */
export function signV3(o: V3Options): Record<string, string> {
  const method = o.method ?? "POST";
  const ts = o.timestamp ?? Math.floor(Date.now() / 1000);
  const date = new Date(ts * 1000).toISOString().slice(0, 10);
  const contentType = o.contentType ?? (method === "GET" ? "application/x-www-form-urlencoded" : "application/json");
  const body = o.body ?? "";
  const h: Record<string, string> = {
    Host: o.host,
    "Content-Type": contentType,
    "X-TC-Action": o.action ?? "DescribeInstanceBackups",
    "X-TC-Version": o.version ?? "2018-04-12",
    "X-TC-Timestamp": String(ts),
    ...o.extraHeaders,
  };
  if (o.region !== undefined) h["X-TC-Region"] = o.region;
  else h["X-TC-Region"] = "ap-guangzhou";
  if (o.token) h["X-TC-Token"] = o.token;
  if (o.language) h["X-TC-Language"] = o.language;
  const signed = ["content-type", "host", ...(o.alsoSign ?? [])];
  const headerValues: Record<string, string> = {};
  for (const name of signed) headerValues[name] = (Object.entries(h).find(([k]) => k.toLowerCase() === name)?.[1] ?? "").trim().toLowerCase();
  const sig = tc3Signature({
    method, canonicalQuery: o.query ?? "", signedHeaders: signed, headerValues,
    payloadHash: sha256Hex(typeof body === "string" ? Buffer.from(body) : body), timestamp: String(ts), date, service: "redis", secretKey: o.secretKey,
  });
  h.Authorization = `TC3-HMAC-SHA256 Credential=${o.secretId}/${date}/redis/tc3_request, SignedHeaders=${signed.join(";")}, Signature=${sig}`;
  return h;
}

/** A urlencoded v1 parameter string (signed) for the given business parameters. */
export function signV1(o: { secretId: string; secretKey: string; host: string; method?: "GET" | "POST"; params: Record<string, string>; signatureMethod?: "HmacSHA1" | "HmacSHA256"; timestamp?: number; region?: string; action?: string }): string {
  const all: Record<string, string> = {
    Action: o.action ?? "DescribeInstanceBackups",
    Version: "2018-04-12",
    Region: o.region ?? "ap-guangzhou",
    Timestamp: String(o.timestamp ?? Math.floor(Date.now() / 1000)),
    Nonce: "0",
    SecretId: o.secretId,
    ...(o.signatureMethod ? { SignatureMethod: o.signatureMethod } : {}),
    ...o.params,
  };
  const pairs = Object.entries(all);
  const sig = v1Signature(o.secretKey, v1StringToSign(o.method ?? "POST", o.host, pairs), o.signatureMethod ?? "HmacSHA1");
  return [...pairs, ["Signature", sig]].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
}
