// Rate limiting per account and action: a token bucket whose burst equals the per-second limit. The bucket
// state lives behind BucketStore: MemoryBucketStore serves one process; RedisBucketStore (ratelimit-redis.ts)
// does the same arithmetic atomically in Redis, so several nodes share one limit.
//
// Not rate-limiter-flexible: its limiters count points per fixed window (a key with a TTL), which lets twice
// the burst through across a window's edge, where this limit is a token bucket refilled continuously (as the
// cloud's is described, and as test/multinode.test.ts holds three nodes to); its memory store is unbounded, with
// a timer per key, where buckets keyed by caller-chosen values must be bounded; and it takes no clock.
import { LRUCache } from "lru-cache";
import { ApiError } from "../protocol/errors";

export interface BucketStore {
  /** Takes one token from bucket `key` (capacity `burst`, refilled at `rate` per second); false when empty. */
  take(key: string, rate: number, burst: number, nowMs: number): boolean | Promise<boolean>;
  close?(): Promise<void>;
}

/** A token bucket's state: tokens left at time `at` (ms). */
interface Bucket {
  tokens: number;
  at: number;
}

/** `b` refilled at `rate` tokens per second up to `burst`, as of `nowMs`. */
function refill(b: Bucket, rate: number, burst: number, nowMs: number): Bucket {
  b.tokens = Math.min(burst, b.tokens + (Math.max(0, nowMs - b.at) / 1000) * rate);
  b.at = nowMs;
  return b;
}

/** Buckets of one process, at most `maxKeys` of them (keys may come from callers, e.g. addresses). */
function bucketCache(maxKeys: number): LRUCache<string, Bucket> {
  return new LRUCache<string, Bucket>({ max: maxKeys });
}

export class MemoryBucketStore implements BucketStore {
  private readonly buckets: LRUCache<string, Bucket>;

  /** At most `maxKeys` buckets: the least recently used is forgotten first. */
  constructor(maxKeys = 100_000) {
    this.buckets = bucketCache(maxKeys);
  }

  take(key: string, rate: number, burst: number, nowMs: number): boolean {
    let b = this.buckets.get(key);
    if (b) refill(b, rate, burst, nowMs);
    else this.buckets.set(key, (b = { tokens: burst, at: nowMs }));
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
  private readonly buckets: LRUCache<string, Bucket>;

  constructor(private readonly o: FailureLimitOptions = DEFAULT_FAILURE_LIMIT, private readonly now: () => number = Date.now) {
    this.buckets = bucketCache(o.maxAddresses ?? 10_000);
  }

  /** Throws RequestLimitExceeded.IPLimitExceeded while the address has no failures left. */
  check(address: string): void {
    if (this.o.burst <= 0) return;
    // peek: a check does not make an address recently failing.
    const b = this.buckets.peek(addressKey(address));
    if (b && refill(b, this.o.perSecond, this.o.burst, this.now()).tokens < 1) {
      throw new ApiError("RequestLimitExceeded.IPLimitExceeded", {
        reason: `too many failed authentications from this address (at most ${this.o.burst} at once, ${this.o.perSecond} per second)`,
      });
    }
  }

  failed(address: string): void {
    if (this.o.burst <= 0) return;
    const key = addressKey(address);
    const t = this.now();
    // get: the least recently failing address is the one forgotten when the cache is full.
    const known = this.buckets.get(key);
    const b = known ? refill(known, this.o.perSecond, this.o.burst, t) : { tokens: this.o.burst, at: t };
    b.tokens = Math.max(0, b.tokens - 1);
    if (!known) this.buckets.set(key, b);
  }

  get size(): number {
    return this.buckets.size;
  }
}
