// Rate limiting per account and action: a token bucket whose burst equals the per-second limit. The bucket
// state lives behind BucketStore so several server processes can share one limit later (a Redis script or a
// SQL row doing the same arithmetic atomically); MemoryBucketStore serves one process.
import { ApiError } from "../protocol/errors";

export interface BucketStore {
  /** Takes one token from bucket `key` (capacity `burst`, refilled at `rate` per second); false when empty. */
  take(key: string, rate: number, burst: number, nowMs: number): boolean;
}

export class MemoryBucketStore implements BucketStore {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  take(key: string, rate: number, burst: number, nowMs: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
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

  check(accountId: string, action: string): void {
    const limit = this.limitFor(action);
    if (limit <= 0) return;
    if (!this.store.take(`${accountId}\u0000${action}`, limit, limit, this.now())) {
      throw new ApiError("RequestLimitExceeded", { action, limit });
    }
  }
}
