// The bounded and expiring maps built on lru-cache: the catalogue's read cache (src/catalog/bounded-cache.ts),
// the rate limit's and the failed-authentication limiter's buckets (src/gateway/ratelimit.ts) and the replay
// guard's memory (src/gateway/replay.ts), each bounded so that no caller can make the server hold more.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FailureLimiter, MemoryBucketStore } from "../src/gateway/ratelimit";
import { ReplayGuard } from "../src/gateway/replay";
import { ApiError } from "../src/protocol/errors";

describe("token buckets", () => {
  test("MemoryBucketStore: burst, continuous refill, per key, bounded", () => {
    const s = new MemoryBucketStore(2);
    const took = (key: string, t: number, n: number) => Array.from({ length: n }, () => s.take(key, 5, 5, t)).filter(Boolean).length;
    assert.equal(took("a", 0, 7), 5);
    assert.equal(took("a", 200, 3), 1); // 200 ms at 5/s: one token back
    assert.equal(took("b", 200, 1), 1);
    // A third key pushes out the least recently used one ("a"), which comes back with a full bucket.
    assert.equal(took("c", 200, 1), 1);
    assert.equal(took("a", 200, 6), 5);
  });

  test("FailureLimiter: failures per address, refilled, bounded; checks do not count", () => {
    let t = 0;
    const f = new FailureLimiter({ burst: 3, perSecond: 1, maxAddresses: 2 }, () => t);
    const limited = (a: string) => assert.throws(() => f.check(a), (e: unknown) => e instanceof ApiError && e.code === "RequestLimitExceeded.IPLimitExceeded");
    for (let i = 0; i < 3; i++) {
      f.check("10.0.0.1");
      f.failed("10.0.0.1");
    }
    limited("10.0.0.1");
    limited("::ffff:10.0.0.1");
    f.check("10.0.0.2");
    t += 1000;
    f.check("10.0.0.1");
    f.failed("10.0.0.1");
    limited("10.0.0.1");
    f.failed("10.0.0.2");
    f.failed("10.0.0.3"); // forgets the least recently failing address, 10.0.0.1
    assert.equal(f.size, 2);
    f.check("10.0.0.1");
  });
});

describe("ReplayGuard memory", () => {
  test("a v1 request is refused within its window and forgotten after it, on the guard's clock", () => {
    let t = 1_000_000;
    const g = new ReplayGuard({ windowS: 1, now: () => t });
    g.checkV1("AK", "1", "100", "sig");
    assert.throws(() => g.checkV1("AK", "1", "100", "sig"), (e: unknown) => e instanceof ApiError && e.code === "AuthFailure.SignatureFailure");
    t += 2001; // the window on both sides of now
    g.checkV1("AK", "1", "100", "sig");
  });

  test("bounded by entries: the oldest requests are forgotten first", () => {
    const g = new ReplayGuard({ windowS: 300, maxEntries: 10, now: () => 0 });
    for (let i = 0; i < 20; i++) g.checkV1("AK", String(i), "100", "sig");
    g.checkV1("AK", "0", "100", "sig"); // forgotten
    assert.throws(() => g.checkV1("AK", "19", "100", "sig"));
  });
});
