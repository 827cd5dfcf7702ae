// Backup file downloads served by this server, like the cloud's presigned COS links: DescribeBackupUrl hands out
// `<origin>/download/<token>/<file name>`, where the token is signed with a server secret (HMAC-SHA256) and
// carries the backup, the shard, the expiry (6 hours), the account and the download restriction in force when
// the link was issued. A GET (or HEAD) checks the signature, the expiry, the caller's address against that
// restriction and the backup's status, then streams the exported RDB file, whole or one byte range.
//
// Download restrictions (Describe/ModifyBackupDownloadRestriction) are kept per account and region in the
// catalogue's settings. VPC lists are accepted and stored but cannot be enforced here.
import crypto from "node:crypto";
import type http from "node:http";
import net from "node:net";
import { pipeline } from "node:stream";
import { exportKey } from "../jobs/backups";
import type { Catalog } from "../catalog/sqlite/sqlite";
import type { Backup } from "../catalog/types";
import { ApiError } from "../protocol/errors";
import type { Services } from "../services";
import type { RawHandler } from "../gateway/server";

export const DOWNLOAD_PREFIX = "/download/";
/** How long a link works: the cloud's 6 hours. */
export const LINK_TTL_MS = 6 * 3600 * 1000;
/** At most this many LimitIp / LimitVpc entries (they travel inside every link). */
export const MAX_LIMIT_ENTRIES = 100;

export type LimitType = "NoLimit" | "LimitOnlyIntranet" | "Customize";
export type Comparison = "In" | "NotIn";
export const LIMIT_TYPES: readonly LimitType[] = ["NoLimit", "LimitOnlyIntranet", "Customize"];

export interface LimitVpcItem {
  Region: string;
  VpcList: string[];
}

/** A download restriction as the API shows it. */
export interface Restriction {
  LimitType: LimitType;
  VpcComparisonSymbol: "In";
  IpComparisonSymbol: Comparison;
  LimitVpc: LimitVpcItem[];
  LimitIp: string[];
}

export const DEFAULT_RESTRICTION: Restriction = { LimitType: "NoLimit", VpcComparisonSymbol: "In", IpComparisonSymbol: "In", LimitVpc: [], LimitIp: [] };

/** What a link carries of a restriction: only what can be enforced from an address. */
interface AddressRule {
  t: LimitType;
  c?: Comparison;
  ip?: string[];
}

// --- restrictions: validation, storage, enforcement ---

/** Parses `a.b.c.d`, an IPv6 address, or either with `/prefix`; undefined when it is neither. */
export function parseIpOrCidr(entry: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  const slash = entry.indexOf("/");
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const v = net.isIP(address);
  if (v === 0) return undefined;
  const family = v === 4 ? "ipv4" : "ipv6";
  const max = v === 4 ? 32 : 128;
  if (slash < 0) return { address, prefix: max, family };
  const p = entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) return undefined;
  return { address, prefix: Number(p), family };
}

/** Validates restriction parameters (as the actions receive them) into a Restriction; throws InvalidParameterValue. */
export function checkRestriction(p: { LimitType?: string; VpcComparisonSymbol?: string; IpComparisonSymbol?: string; LimitVpc?: Array<{ Region?: string; VpcList?: string[] }>; LimitIp?: string[] }): Restriction {
  const bad = (reason: string) => new ApiError("InvalidParameterValue", { reason });
  if (!LIMIT_TYPES.includes(p.LimitType as LimitType)) {
    throw bad(`\`LimitType\` must be NoLimit, LimitOnlyIntranet or Customize, got ${JSON.stringify(String(p.LimitType).slice(0, 40))}`);
  }
  if (p.VpcComparisonSymbol !== undefined && p.VpcComparisonSymbol !== "In") {
    throw bad(`\`VpcComparisonSymbol\` can only be In, got ${JSON.stringify(p.VpcComparisonSymbol.slice(0, 40))}`);
  }
  if (p.IpComparisonSymbol !== undefined && p.IpComparisonSymbol !== "In" && p.IpComparisonSymbol !== "NotIn") {
    throw bad(`\`IpComparisonSymbol\` must be In or NotIn, got ${JSON.stringify(p.IpComparisonSymbol.slice(0, 40))}`);
  }
  const ips = p.LimitIp ?? [];
  const vpcs = p.LimitVpc ?? [];
  if (ips.length > MAX_LIMIT_ENTRIES) throw bad(`\`LimitIp\` may have at most ${MAX_LIMIT_ENTRIES} entries, got ${ips.length}`);
  if (vpcs.length > MAX_LIMIT_ENTRIES) throw bad(`\`LimitVpc\` may have at most ${MAX_LIMIT_ENTRIES} entries, got ${vpcs.length}`);
  ips.forEach((ip, i) => {
    if (!parseIpOrCidr(ip.trim())) throw bad(`\`LimitIp.${i}\` is not an IPv4/IPv6 address or CIDR block: ${JSON.stringify(ip.slice(0, 64))}`);
  });
  vpcs.forEach((v, i) => {
    (v.VpcList ?? []).forEach((id, j) => {
      if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(id)) throw bad(`\`LimitVpc.${i}.VpcList.${j}\` is not a VPC id: ${JSON.stringify(id.slice(0, 64))}`);
    });
  });
  const type = p.LimitType as LimitType;
  if (type === "Customize" && ips.length === 0 && vpcs.length === 0) {
    throw bad("`LimitType` Customize needs `LimitIp` (or `LimitVpc`) entries");
  }
  return {
    LimitType: type,
    VpcComparisonSymbol: "In",
    IpComparisonSymbol: (p.IpComparisonSymbol as Comparison | undefined) ?? "In",
    LimitVpc: vpcs.map((v) => ({ Region: v.Region ?? "", VpcList: [...(v.VpcList ?? [])] })),
    LimitIp: ips.map((ip) => ip.trim()),
  };
}

function restrictionSetting(accountId: string, region: string): string {
  return `download.restriction.${accountId}.${region}`;
}

/** The account's download restriction in a region (the default: NoLimit). */
export function accountRestriction(catalog: Catalog, accountId: string, region: string): Restriction {
  const raw = catalog.setting(restrictionSetting(accountId, region));
  if (!raw) return { ...DEFAULT_RESTRICTION };
  const stored = JSON.parse(raw) as Restriction;
  return { ...DEFAULT_RESTRICTION, ...stored };
}

export function putAccountRestriction(catalog: Catalog, accountId: string, region: string, r: Restriction): void {
  catalog.putSetting(restrictionSetting(accountId, region), JSON.stringify(r));
}

/** The addresses LimitOnlyIntranet admits: loopback and private ranges. */
const INTRANET = (() => {
  const list = new net.BlockList();
  list.addSubnet("127.0.0.0", 8, "ipv4");
  list.addSubnet("10.0.0.0", 8, "ipv4");
  list.addSubnet("172.16.0.0", 12, "ipv4");
  list.addSubnet("192.168.0.0", 16, "ipv4");
  list.addAddress("::1", "ipv6");
  list.addSubnet("fc00::", 7, "ipv6");
  return list;
})();

/** A socket's remote address as a plain address: IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes IPv4. */
export function normalizeAddress(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1]! : address;
}

function inList(entries: readonly string[], address: string): boolean {
  const family = net.isIP(address) === 4 ? "ipv4" : "ipv6";
  const list = new net.BlockList();
  for (const e of entries) {
    const parsed = parseIpOrCidr(e);
    if (!parsed) continue;
    try {
      list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    } catch {
      // An address BlockList cannot take never matches.
    }
  }
  return list.check(address, family);
}

/** Whether a caller at `address` may download under `rule`. */
function addressAllowed(rule: AddressRule, rawAddress: string): boolean {
  const address = normalizeAddress(rawAddress);
  if (net.isIP(address) === 0) return rule.t === "NoLimit";
  const family = net.isIP(address) === 4 ? "ipv4" : "ipv6";
  switch (rule.t) {
    case "NoLimit":
      return true;
    case "LimitOnlyIntranet":
      return INTRANET.check(address, family);
    case "Customize": {
      const listed = inList(rule.ip ?? [], address);
      return (rule.c ?? "In") === "In" ? listed : !listed;
    }
  }
}

/** Whether a caller at `address` may download under restriction `r` (exported for tests and tools). */
export function restrictionAllows(r: Restriction, address: string): boolean {
  return addressAllowed(ruleOf(r), address);
}

function ruleOf(r: Restriction): AddressRule {
  return r.LimitType === "Customize" ? { t: r.LimitType, c: r.IpComparisonSymbol, ip: r.LimitIp } : { t: r.LimitType };
}

function describeRule(rule: AddressRule): string {
  if (rule.t === "LimitOnlyIntranet") return "LimitType LimitOnlyIntranet admits loopback and private addresses only";
  if (rule.t === "Customize") return `LimitType Customize admits addresses ${rule.c === "NotIn" ? "not " : ""}in LimitIp`;
  return "";
}

// --- links ---

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
  private secret: Buffer | undefined;

  constructor(private readonly catalog: Catalog) {}

  private key(): Buffer {
    if (!this.secret) {
      let hex = this.catalog.setting(SECRET_SETTING);
      if (!hex) {
        this.catalog.putSetting(SECRET_SETTING, crypto.randomBytes(32).toString("hex"));
        // Re-read: if another process stored one first, both use the stored one.
        hex = this.catalog.setting(SECRET_SETTING)!;
      }
      this.secret = Buffer.from(hex, "hex");
    }
    return this.secret;
  }

  private mac(payload: string): Buffer {
    return crypto.createHmac("sha256", this.key()).update(payload).digest();
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
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return undefined;
    try {
      const c = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as LinkClaims;
      if (typeof c.b !== "string" || !Number.isInteger(c.s) || typeof c.e !== "number" || typeof c.a !== "string" || !c.r || !LIMIT_TYPES.includes(c.r.t)) return undefined;
      return c;
    } catch {
      return undefined;
    }
  }
}

const signers = new WeakMap<Catalog, LinkSigner>();

export function signerOf(catalog: Catalog): LinkSigner {
  let s = signers.get(catalog);
  if (!s) {
    s = new LinkSigner(catalog);
    signers.set(catalog, s);
  }
  return s;
}

/** The file name a shard is offered under. */
export function downloadFileName(b: Pick<Backup, "instanceId" | "backupId">, shard: number): string {
  return `${b.instanceId}-${b.backupId}-shard-${shard}.rdb`.replace(/[^A-Za-z0-9._-]/g, "_");
}

/** A signed link to one shard of an exported backup, valid LINK_TTL_MS from now. */
export function issueLink(services: Services, opts: { origin: string; backup: Backup; shard: number; accountId: string; restriction: Restriction }): string {
  const claims: LinkClaims = { b: opts.backup.backupId, s: opts.shard, e: services.clock.now() + LINK_TTL_MS, a: opts.accountId, r: ruleOf(opts.restriction) };
  const token = signerOf(services.catalog).sign(claims);
  return `${opts.origin}${DOWNLOAD_PREFIX}${token}/${downloadFileName(opts.backup, opts.shard)}`;
}

// --- the HTTP handler ---

type Range = { start: number; end: number };

/** One `bytes=` range against a file of `size` bytes: the range, "invalid" (-> 416), or undefined (whole file). */
export function parseRange(header: string | undefined, size: number): Range | "invalid" | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return "invalid";
  if (size === 0) return "invalid";
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "invalid";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  if (start >= size) return "invalid";
  if (m[2] === "") return { start, end: size - 1 };
  const last = Number(m[2]);
  if (last < start) return "invalid";
  return { start, end: Math.min(last, size - 1) };
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export interface DownloadHandlerOptions {
  log?: (line: string) => void;
}

/** The `/download/` route: see the file's header. */
export function createDownloadHandler(services: Services, opts: DownloadHandlerOptions = {}): RawHandler {
  const { catalog, store, clock } = services;
  const signer = signerOf(catalog);
  const log = opts.log ?? (() => undefined);

  return (req, res) => {
    const requestId = crypto.randomUUID();
    const method = req.method ?? "";
    const address = normalizeAddress(req.socket.remoteAddress ?? "");
    let backupId = "-";
    let shard = -1;
    const done = (status: number, bytes: number) => log(`${new Date().toISOString()} download backup=${backupId} shard=${shard} ip=${address} status=${status} bytes=${bytes}`);

    const refuse = (status: number, code: string, message: string, extra: http.OutgoingHttpHeaders = {}) => {
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message><RequestId>${requestId}</RequestId></Error>\n`;
      res.writeHead(status, { "Content-Type": "application/xml", "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-store", "X-Request-Id": requestId, ...extra });
      res.end(method === "HEAD" ? undefined : body);
      done(status, 0);
    };

    const serve = async (): Promise<void> => {
      if (method !== "GET" && method !== "HEAD") return refuse(405, "MethodNotAllowed", `the method ${method.slice(0, 20)} is not allowed on a download link; use GET or HEAD`, { Allow: "GET, HEAD" });
      const url = req.url ?? "";
      const at = url.indexOf(DOWNLOAD_PREFIX);
      const rest = url.slice(at + DOWNLOAD_PREFIX.length).split("?")[0]!;
      const token = rest.split("/")[0]!;
      const claims = signer.verify(token);
      if (!claims) return refuse(403, "InvalidToken", "the download link is not valid: its signature does not match");
      backupId = claims.b;
      shard = claims.s;
      const now = clock.now();
      if (now >= claims.e) return refuse(403, "ExpiredToken", `the download link expired at ${new Date(claims.e).toISOString()}; call DescribeBackupUrl for a new one`);
      if (!addressAllowed(claims.r, address)) {
        return refuse(403, "AccessDenied", `downloads from ${address} are not allowed: ${describeRule(claims.r)} (the restriction in force when the link was issued)`);
      }
      const b = catalog.backup(claims.b);
      const instance = b ? catalog.instance(b.instanceId) : undefined;
      if (!b || !instance || instance.accountId !== claims.a) return refuse(404, "NoSuchKey", `the backup ${claims.b} does not exist`);
      if (b.status === -1 || b.status === -2) return refuse(410, "Gone", `the backup ${b.backupId} is no longer available (${b.status === -1 ? "Status -1: expired" : "Status -2: deleted"})`);
      if (b.status !== 4) return refuse(404, "NoSuchKey", `the backup ${b.backupId} is not exported now (Status ${b.status}); call DescribeBackupUrl again`);
      const file = b.files.find((f) => f.shard === claims.s);
      const key = exportKey(b.backupId, claims.s);
      const st = file ? await store.stat(key) : undefined;
      if (!file || !st) return refuse(404, "NoSuchKey", `the export file of shard ${claims.s} of backup ${b.backupId} is missing; call DescribeBackupUrl again`);
      const size = st.size;
      const range = parseRange(req.headers.range, size);
      if (range === "invalid") {
        return refuse(416, "InvalidRange", `the range ${JSON.stringify(String(req.headers.range).slice(0, 80))} cannot be served from a file of ${size} bytes (one range of the form bytes=a-b, a- or -n)`, { "Content-Range": `bytes */${size}`, "Accept-Ranges": "bytes" });
      }
      const headers: http.OutgoingHttpHeaders = {
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "Content-Disposition": `attachment; filename="${downloadFileName(b, claims.s)}"`,
        ETag: `"${file.sha256}"`,
        "Cache-Control": "private, no-store",
        "X-Request-Id": requestId,
      };
      const status = range ? 206 : 200;
      const length = range ? range.end - range.start + 1 : size;
      headers["Content-Length"] = length;
      if (range) headers["Content-Range"] = `bytes ${range.start}-${range.end}/${size}`;
      if (method === "HEAD" || length === 0) {
        res.writeHead(status, headers);
        res.end();
        return done(status, 0);
      }
      let stream;
      try {
        stream = await store.openRead(key, range ? { start: range.start, end: range.end } : {});
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return refuse(404, "NoSuchKey", `the export file of shard ${claims.s} of backup ${b.backupId} is gone`);
        throw err;
      }
      res.writeHead(status, headers);
      // pipeline() gives backpressure and destroys the file stream if the client goes away.
      pipeline(stream, res, (err) => {
        if (err) log(`  download of backup ${backupId} shard ${shard} ended early: ${err.message}`);
        done(status, err ? -1 : length);
      });
    };

    serve().catch((err: unknown) => {
      log(`  download failure: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      if (!res.headersSent) refuse(500, "InternalError", "an internal error occurred; retry later");
      else res.destroy();
    });
  };
}
