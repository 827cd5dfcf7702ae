// The rate limit's token buckets in Redis, so that every node sharing one Redis enforces one limit: three nodes
// at 20/s per account and action still let 20/s through in all. The bucket arithmetic is MemoryBucketStore's,
// done atomically by a Lua script, on the Redis server's clock (TIME) so the nodes' clocks need not agree.
//
// If Redis cannot be reached the request is let through (and the outage logged, once per minute): an API that
// stops answering because its rate limiter is down is worse than one briefly unlimited.
import type Redis from "ioredis";
import type { Logger } from "../log";
import type { BucketStore } from "./ratelimit";

// KEYS[1] the bucket; ARGV rate (tokens/s), burst. Returns 1 when a token was taken.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
end
local ok = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return ok
`;

type WithTake = Redis & { crsTake(key: string, rate: number, burst: number): Promise<number> };

export class RedisBucketStore implements BucketStore {
  private readonly redis: WithTake;
  private lastWarning = 0;

  constructor(url: string, private readonly logger: Logger, private readonly prefix = "crs:ratelimit:") {
    // Fail fast while Redis is away instead of queueing requests behind a reconnect.
    // Loaded here, not at the top: ioredis costs ~50 ms of every start, and most servers never use it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded lazily, see above
    const { default: RedisClient } = require("ioredis") as typeof import("ioredis");
    this.redis = new RedisClient(url, { lazyConnect: false, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000 }) as WithTake;
    this.redis.on("error", () => undefined); // reported by take() when it matters
    this.redis.defineCommand("crsTake", { numberOfKeys: 1, lua: TAKE });
  }

  async take(key: string, rate: number, burst: number): Promise<boolean> {
    try {
      return (await this.redis.crsTake(this.prefix + key, rate, burst)) === 1;
    } catch (err) {
      if (Date.now() - this.lastWarning > 60_000) {
        this.lastWarning = Date.now();
        this.logger.warn({ err }, "the shared rate-limit store (Redis) cannot be reached; requests are not limited meanwhile");
      }
      return true;
    }
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
