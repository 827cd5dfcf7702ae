// The region catalogue and the endpoint rules: finance regions are isolated and must be called on their own
// host, and a finance host serves only its own region.
import { ApiError } from "./errors";

export const DEFAULT_REGIONS = [
  "ap-guangzhou", "ap-shanghai", "ap-nanjing", "ap-beijing", "ap-chengdu", "ap-chongqing", "ap-hongkong", "ap-taipei",
  "ap-singapore", "ap-jakarta", "ap-bangkok", "ap-seoul", "ap-tokyo", "ap-mumbai", "na-siliconvalley", "na-ashburn",
  "na-toronto", "sa-saopaulo", "eu-frankfurt", "eu-moscow", "ap-shanghai-fsi", "ap-shenzhen-fsi", "ap-beijing-fsi",
];

export const FINANCE_REGIONS: ReadonlySet<string> = new Set(["ap-shanghai-fsi", "ap-shenzhen-fsi", "ap-beijing-fsi"]);

export class RegionRules {
  private readonly regions: Set<string>;
  private readonly financeHosts = new Map<string, string>();

  constructor(regions: readonly string[], readonly domain: string) {
    this.regions = new Set(regions);
    for (const r of regions) if (FINANCE_REGIONS.has(r)) this.financeHosts.set(this.hostFor(r), r);
  }

  hostFor(region: string): string {
    return `redis.${region}.${this.domain}`;
  }

  has(region: string): boolean {
    return this.regions.has(region);
  }

  list(): string[] {
    return [...this.regions];
  }

  /** Throws UnsupportedRegion when the region is unknown or the host does not fit it. `host` has no port. */
  check(region: string, host: string): void {
    if (!this.regions.has(region)) {
      throw new ApiError("UnsupportedRegion", { reason: `\`${region}\` is not a region of this service` });
    }
    const finance = FINANCE_REGIONS.has(region);
    const hostRegion = this.financeHosts.get(host.toLowerCase());
    if (finance && hostRegion !== region) {
      throw new ApiError("UnsupportedRegion", { reason: `the finance region \`${region}\` must be called on the host ${this.hostFor(region)}, not ${host}` });
    }
    if (!finance && hostRegion !== undefined) {
      throw new ApiError("UnsupportedRegion", { reason: `the host ${host} serves only \`${hostRegion}\`; call \`${region}\` on redis.${this.domain} or redis.${region}.${this.domain}` });
    }
  }
}
