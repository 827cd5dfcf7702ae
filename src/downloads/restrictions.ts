// Download restrictions (Describe/ModifyBackupDownloadRestriction): validation, storage per account and region in
// the catalogue's settings, and enforcement against a caller's address. VPC lists are accepted and stored but
// cannot be enforced here (there are no VPCs); only LimitIp decides under Customize.
import net from "node:net";
import type { CatalogTx } from "../catalog/catalog";
import { ApiError } from "../protocol/errors";
import { normalizeAddress } from "../address";

export { normalizeAddress };

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
export interface AddressRule {
  t: LimitType;
  c?: Comparison;
  ip?: string[];
}

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
export async function accountRestriction(catalog: Pick<CatalogTx, "setting">, accountId: string, region: string): Promise<Restriction> {
  const raw = await catalog.setting(restrictionSetting(accountId, region));
  if (!raw) return { ...DEFAULT_RESTRICTION };
  const stored = JSON.parse(raw) as Restriction;
  return { ...DEFAULT_RESTRICTION, ...stored };
}

export async function putAccountRestriction(catalog: Pick<CatalogTx, "putSetting">, accountId: string, region: string, r: Restriction): Promise<void> {
  await catalog.putSetting(restrictionSetting(accountId, region), JSON.stringify(r));
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
export function addressAllowed(rule: AddressRule, rawAddress: string): boolean {
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

export function ruleOf(r: Restriction): AddressRule {
  return r.LimitType === "Customize" ? { t: r.LimitType, c: r.IpComparisonSymbol, ip: r.LimitIp } : { t: r.LimitType };
}

export function describeRule(rule: AddressRule): string {
  if (rule.t === "LimitOnlyIntranet") return "LimitType LimitOnlyIntranet admits loopback and private addresses only";
  if (rule.t === "Customize") return `LimitType Customize admits addresses ${rule.c === "NotIn" ? "not " : ""}in LimitIp`;
  return "";
}
