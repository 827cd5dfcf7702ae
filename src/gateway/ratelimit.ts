// Rate limiting per account and action: a token bucket whose burst equals the per-second limit. The bucket
// state lives behind BucketStore: MemoryBucketStore serves one process; RedisBucketStore (ratelimit-redis.ts)
// does the same arithmetic atomically in Redis, so several nodes share one limit.
import { ApiError } from "../protocol/errors";

export interface BucketStore {
  /** Takes one token from bucket `key` (capacity `burst`, refilled at `rate` per second); false when empty. */
  take(key: string, rate: number, burst: number, nowMs: number): boolean | Promise<boolean>;
  close?(): Promise<void>;
}

export class MemoryBucketStore implements BucketStore {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /** At most `maxKeys` buckets (keys may come from callers, e.g. addresses): the oldest is forgotten first. */
  constructor(private readonly maxKeys = 100_000) {}

  take(key: string, rate: number, burst: number, nowMs: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: burst, at: nowMs };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((nowMs - b.at) / 1000) * rate);
      b.at = nowMs;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

export class RateLimiter {
  constructor(
    private readonly store: BucketStore,
    /** Requests per second per account and action; 0 turns limiting off. */
    private readonly defaultLimit: number,
    private readonly perAction: ReadonlyMap<string, number> = new Map(),
    private readonly now: () => number = Date.now,
  ) {}

  limitFor(action: string): number {
    return this.perAction.get(action) ?? this.defaultLimit;
  }

  async check(accountId: string, action: string): Promise<void> {
    const limit = this.limitFor(action);
    if (limit <= 0) return;
    if (!(await this.store.take(`${accountId}\u0000${action}`, limit, limit, this.now()))) {
      throw new ApiError("RequestLimitExceeded", { action, limit });
    }
  }
}

/**
 * The client a per-address limit applies to: an IPv4 address (IPv4-mapped IPv6 included) as is, an IPv6
 * address by its /64, since one host commonly owns a whole /64 and could otherwise rotate through it.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(":")) return address;
  const [head, tail] = address.split("::") as [string, string | undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

export interface FailureLimitOptions {
  /** Failures allowed at once per address. 0 turns the limit off. */
  burst: number;
  /** Failures per second the allowance refills at. */
  perSecond: number;
  /** Addresses remembered at most (least recently failing forgotten first). */
  maxAddresses?: number;
}

export const DEFAULT_FAILURE_LIMIT: FailureLimitOptions = { burst: 30, perSecond: 10, maxAddresses: 10_000 };

/**
 * Failed authentications per client address. Every failure takes a token; an address without tokens is
 * refused before its next request is authenticated at all, so a flood of bad credentials costs no lookups.
 * Only failures are counted: a busy client with a good key is never slowed by this.
 */
export class FailureLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly max: number;

  constructor(private readonly o: FailureLimitOptions = DEFAULT_FAILURE_LIMIT, private readonly now: () => number = Date.now) {
    this.max = o.maxAddresses ?? 10_000;
  }

  private refilled(key: string): { tokens: number; at: number } | undefined {
    const b = this.buckets.get(key);
    if (!b) return undefined;
    const t = this.now();
    b.tokens = Math.min(this.o.burst, b.tokens + ((t - b.at) / 1000) * this.o.perSecond);
    b.at = t;
    return b;
  }

  /** Throws RequestLimitExceeded.IPLimitExceeded while the address has no failures left. */
  check(address: string): void {
    if (this.o.burst <= 0) return;
    const b = this.refilled(addressKey(address));
    if (b && b.tokens < 1) {
      throw new ApiError("RequestLimitExceeded.IPLimitExceeded", {
        reason: `too many failed authentications from this address (at most ${this.o.burst} at once, ${this.o.perSecond} per second)`,
      });
    }
  }

  failed(address: string): void {
    if (this.o.burst <= 0) return;
    const key = addressKey(address);
    const b = this.refilled(key) ?? { tokens: this.o.burst, at: this.now() };
    b.tokens = Math.max(0, b.tokens - 1);
    // Re-inserted so the map's order is least recently failing first; the oldest goes when it is full.
    this.buckets.delete(key);
    if (this.buckets.size >= this.max) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(key, b);
  }

  get size(): number {
    return this.buckets.size;
  }
}
