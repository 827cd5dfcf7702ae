// Replay defences within the signature window.
//
// v1 carries a Nonce for exactly this: a request whose (SecretId, Nonce, Timestamp, Signature) was already
// accepted is refused. The signature is part of the key because the Node SDK draws its Nonce from 0..65535
// only: two different legitimate requests in the same second share a nonce often enough to matter, but
// never a signature.
//
// TC3 has no nonce, and the SDKs sign only `content-type;host`, so X-TC-Action and X-TC-Region can be swapped
// on a captured request. Identical TC3 requests cannot be refused (clients legitimately repeat a call within
// a second, e.g. to see InstanceLockedError), nor one body sent to several reads or regions at once (a
// multi-region scan sends `{}` to every region in the same second). What is refused is a signature first
// seen with one action coming back for a different, state-changing action from another connection: that
// turns an eavesdropped read (`{"InstanceId":...}`) into a backup or a restore. A client that reads and writes
// with one body in the same second over its own keep-alive connection is still served; the rare client
// doing so over two connections at once gets SignatureFailure and succeeds a second later.
// See README, "Behaviour where the sources are silent".
import { ApiError } from "../protocol/errors";

/** A map whose entries expire `ttlMs` after insertion, bounded by entry count and by an estimate of bytes. */
export class ExpiringMap<V> {
  /** Insertion order is expiry order, because every entry lives equally long. */
  private readonly entries = new Map<string, { value: V; expires: number; bytes: number }>();
  private bytes = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  private sweep(): void {
    const t = this.now();
    for (const [k, e] of this.entries) {
      if (e.expires > t && this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.bytes;
    }
  }

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.sweep();
      return undefined;
    }
    return e.value;
  }

  /** Adds an entry; `bytes` is its size beyond the key (strings count two bytes a character). */
  set(key: string, value: V, bytes = 0): void {
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.bytes;
    }
    const size = 2 * key.length + bytes + 64;
    this.entries.set(key, { value, expires: this.now() + this.ttlMs, bytes: size });
    this.bytes += size;
    this.sweep();
  }

  get size(): number {
    return this.entries.size;
  }

  get byteSize(): number {
    return this.bytes;
  }
}

export interface ReplayOptions {
  /** How long a request is remembered: the signature window. */
  windowS: number;
  maxEntries?: number;
  maxBytes?: number;
  now?: () => number;
}

interface FirstUse {
  action: string;
  connection: number;
}

export class ReplayGuard {
  private readonly v1: ExpiringMap<true>;
  private readonly v3: ExpiringMap<FirstUse>;

  constructor(o: ReplayOptions) {
    // The window on both sides of now: a timestamp up to windowS in the future stays valid twice as long.
    const ttl = 2 * o.windowS * 1000;
    const maxEntries = o.maxEntries ?? 100_000;
    const maxBytes = o.maxBytes ?? 32 * 1024 * 1024;
    this.v1 = new ExpiringMap(ttl, maxEntries, maxBytes / 2, o.now);
    this.v3 = new ExpiringMap(ttl, maxEntries, maxBytes / 2, o.now);
  }

  /** For an authenticated v1 request: refuses a second use of the same signed request. */
  checkV1(secretId: string, nonce: string, timestamp: string, signature: string): void {
    const key = `${secretId}\n${nonce}\n${timestamp}\n${signature}`;
    if (this.v1.get(key)) {
      throw new ApiError("AuthFailure.SignatureFailure", {
        reason: `This request was already received: a Nonce may be used once with its Timestamp (a replayed request?). Send each request with a new Nonce.`,
      });
    }
    this.v1.set(key, true);
  }

  /** For an authenticated TC3 request, once its action is known; `mutates` for a state-changing action. */
  checkV3(secretId: string, signature: string, action: string, mutates: boolean, connection: number): void {
    const key = `${secretId}\n${signature}`;
    const first = this.v3.get(key);
    if (!first) {
      this.v3.set(key, { action, connection }, 2 * action.length + 8);
      return;
    }
    if (mutates && first.action !== action && first.connection !== connection) {
      throw new ApiError("AuthFailure.SignatureFailure", {
        reason: `This signature was already used for another action (X-TC-Action is not covered by it; a replayed request?). Sign each request afresh.`,
      });
    }
  }
}
