// Console sessions: a SecretId/SecretKey is exchanged once for a stateless cookie signed (HMAC-SHA256) with a
// secret kept in the catalogue's settings, so every node sharing the catalogue accepts it. The cookie carries the
// SecretId, an expiry and a fingerprint of the key (and token) it was issued for; the credential is looked up on
// every call, so a deleted credential, or one whose key or token was changed, is refused at once.
import crypto from "node:crypto";
import { parseCookie, stringifySetCookie } from "cookie";
import type { Catalog } from "../catalog/catalog";
import { constantTimeEqual } from "../protocol/constant-time";
import type { Credential } from "../catalog/types";

export const SESSION_COOKIE = "crs_console";
export const SESSION_TTL_MS = 12 * 3600 * 1000;
const SECRET_SETTING = "console.sessionKey";

export interface SessionClaims {
  /** SecretId. */
  s: string;
  /** Expiry, epoch ms. */
  e: number;
  /** Fingerprint of the SecretKey and Token the session was issued for. */
  k: string;
}

export type LoginFailure = "unknown" | "key" | "token";

export class SessionSigner {
  private secret: Buffer | undefined;

  constructor(private readonly catalog: Catalog, private readonly now: () => number = Date.now) {}

  private async key(): Promise<Buffer> {
    if (!this.secret) {
      // The first node to need one stores it; racing nodes all read back the one stored.
      const hex = await this.catalog.settingOnce(SECRET_SETTING, crypto.randomBytes(32).toString("hex"));
      this.secret = Buffer.from(hex, "hex");
    }
    return this.secret;
  }

  private async mac(payload: string): Promise<Buffer> {
    return crypto.createHmac("sha256", await this.key()).update(payload).digest();
  }

  /** What binds a session to the key material it was issued for, without revealing it. */
  private async fingerprint(c: Credential): Promise<string> {
    const h = crypto.createHmac("sha256", await this.key()).update("fingerprint\0").update(c.secretKey).update("\0").update(c.token ?? "");
    return h.digest("base64url").slice(0, 22);
  }

  /**
   * Checks a SecretId/SecretKey (and Token, which a temporary credential must send) against the catalogue;
   * the comparisons take the same time whether or not the SecretId exists.
   */
  async login(secretId: string, secretKey: string, token: string | undefined): Promise<{ credential: Credential } | { failure: LoginFailure }> {
    const c = await this.catalog.credential(secretId);
    const keyOk = constantTimeEqual(secretKey, c?.secretKey ?? crypto.randomBytes(16).toString("hex"));
    if (!c) return { failure: "unknown" };
    if (!keyOk) return { failure: "key" };
    if (!constantTimeEqual(token ?? "", c.token ?? "")) return { failure: "token" };
    return { credential: c };
  }

  async issue(c: Credential): Promise<{ cookie: string; expires: number }> {
    const expires = this.now() + SESSION_TTL_MS;
    const claims: SessionClaims = { s: c.secretId, e: expires, k: await this.fingerprint(c) };
    const payload = Buffer.from(JSON.stringify(claims), "utf8").toString("base64url");
    return { cookie: `${payload}.${(await this.mac(payload)).toString("base64url")}`, expires };
  }

  /** The credential of a genuine, unexpired session whose credential still exists unchanged; else undefined. */
  async verify(cookie: string | undefined): Promise<{ credential: Credential; expires: number } | undefined> {
    if (!cookie || cookie.length > 1024 || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(cookie)) return undefined;
    const dot = cookie.indexOf(".");
    const payload = cookie.slice(0, dot);
    const given = Buffer.from(cookie.slice(dot + 1), "base64url");
    const expected = await this.mac(payload);
    if (!constantTimeEqual(given, expected)) return undefined;
    let claims: SessionClaims;
    try {
      claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as SessionClaims;
    } catch {
      return undefined;
    }
    if (typeof claims.s !== "string" || typeof claims.e !== "number" || typeof claims.k !== "string") return undefined;
    if (claims.e <= this.now()) return undefined;
    const c = await this.catalog.credential(claims.s);
    if (!c || !constantTimeEqual(claims.k, await this.fingerprint(c))) return undefined;
    return { credential: c, expires: claims.e };
  }
}

/** One cookie's value from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  return header ? parseCookie(header)[name] : undefined;
}

export function sessionCookie(value: string, maxAgeS: number, secure: boolean): string {
  return stringifySetCookie(SESSION_COOKIE, value, { path: "/console", maxAge: maxAgeS, httpOnly: true, sameSite: "strict", secure });
}
