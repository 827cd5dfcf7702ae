// Download links, like the cloud's presigned COS links: DescribeBackupUrl hands out
// `<origin>/download/<token>/<file name>`, where the token is signed (HMAC-SHA256) with a secret generated once and
// kept in the catalogue — so a link issued by one node is honoured by every node and survives restarts — and
// carries the backup, the shard, the expiry (6 hours), the account and the download restriction in force when the
// link was issued.
import crypto from "node:crypto";
import type { Catalog } from "../catalog/catalog";
import type { Backup } from "../catalog/types";
import { constantTimeEqual } from "../protocol/constant-time";
import { AddressRule, LIMIT_TYPES, Restriction, ruleOf } from "./restrictions";

export const DOWNLOAD_PREFIX = "/download/";
/** How long a link works: the cloud's 6 hours. */
export const LINK_TTL_MS = 6 * 3600 * 1000;

export interface LinkClaims {
  /** Backup id. */
  b: string;
  /** Shard. */
  s: number;
  /** Expiry, epoch ms. */
  e: number;
  /** Account the link was issued to. */
  a: string;
  /** The restriction in force at issue time. */
  r: AddressRule;
}

const SECRET_SETTING = "download.signingKey";

function b64url(buf: Buffer): string {
  return buf.toString("base64url");
}

/** Signs and checks download tokens with a secret generated once per data directory. */
export class LinkSigner {
  private constructor(private readonly secret: Buffer) {}

  /** The signer of this catalogue: its secret is created by the first node that needs one and shared by all. */
  static async open(catalog: Catalog): Promise<LinkSigner> {
    const hex = await catalog.settingOnce(SECRET_SETTING, crypto.randomBytes(32).toString("hex"));
    return new LinkSigner(Buffer.from(hex, "hex"));
  }

  private mac(payload: string): Buffer {
    return crypto.createHmac("sha256", this.secret).update(payload).digest();
  }

  sign(claims: LinkClaims): string {
    const payload = b64url(Buffer.from(JSON.stringify(claims), "utf8"));
    return `${payload}.${b64url(this.mac(payload))}`;
  }

  /** The claims of a genuine token, else undefined (the expiry is the caller's to check). */
  verify(token: string): LinkClaims | undefined {
    const dot = token.indexOf(".");
    if (dot <= 0 || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) return undefined;
    const payload = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), "base64url");
    const expected = this.mac(payload);
    if (!constantTimeEqual(given, expected)) return undefined;
    try {
      const c = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as LinkClaims;
      if (typeof c.b !== "string" || !Number.isInteger(c.s) || typeof c.e !== "number" || typeof c.a !== "string" || !c.r || !LIMIT_TYPES.includes(c.r.t)) return undefined;
      return c;
    } catch {
      return undefined;
    }
  }
}

/** The file name a shard is offered under. */
export function downloadFileName(b: Pick<Backup, "instanceId" | "backupId">, shard: number): string {
  return `${b.instanceId}-${b.backupId}-shard-${shard}.rdb`.replace(/[^A-Za-z0-9._-]/g, "_");
}

/** A signed link to one shard of an exported backup, valid LINK_TTL_MS from now. */
export function issueLink(signer: LinkSigner, now: number, opts: { origin: string; backup: Backup; shard: number; accountId: string; restriction: Restriction }): string {
  const claims: LinkClaims = { b: opts.backup.backupId, s: opts.shard, e: now + LINK_TTL_MS, a: opts.accountId, r: ruleOf(opts.restriction) };
  const token = signer.sign(claims);
  return `${opts.origin}${DOWNLOAD_PREFIX}${token}/${downloadFileName(opts.backup, opts.shard)}`;
}
