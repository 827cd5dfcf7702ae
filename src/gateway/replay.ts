// Replay defences within the signature window.
//
// v1 carries a Nonce for exactly this: a request whose (SecretId, Nonce, Timestamp, Signature) was already
// accepted is refused. The signature is part of the key because the Node SDK draws its Nonce from 0..65535
// only: two different legitimate requests in the same second share a nonce often enough to matter, but
// never a signature.
//
// TC3 has no nonce, and the SDKs (Node, Python and so tccli, Go) sign only `content-type;host`, so X-TC-Action
// and X-TC-Region can be swapped on a captured request. Identical TC3 requests cannot be refused (clients
// legitimately repeat a call within a second, e.g. to see InstanceLockedError), nor one body sent to several
// reads or regions (a multi-region scan sends `{}` to every region in the same second), nor, since an honest
// script's read and write with one body in one second carry one signature, a read followed by a write.
//
// The guard keeps, per signature that does not cover X-TC-Action, where and when it was first seen and the one
// state-changing action it was used for. Reads are always served and never bind it. Whatever comes on the
// first use's own connection is served (no one else can send on it). From another connection, a state-changing
// action is served when the signature is new, or already bound to that very action (a repeat), or, when only
// reads have used it so far, if it comes from the first use's client address within REUSE_GRACE_S of it: an
// honest client's two requests with one signature were signed in one second of its clock and so arrive about a
// second apart at most. Anything else is refused: a read replayed as a write from another address, or later
// than that; a write replayed as a different write. The residual risk (an
// eavesdropper replaying a read as a write from the victim's own address, or through the same reverse proxy,
// within seconds) is documented in README ("Replays and tampering"); a signature that covers X-TC-Action
// cannot be used for another action at all, and TLS removes the eavesdropper.
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

/** How long after a signature's first use a different, state-changing action may use it from the same address. */
export const REUSE_GRACE_S = 5;

interface FirstUse {
  /** When it was first seen (ms, the guard's clock). */
  at: number;
  connection: number;
  address: string;
  /** The state-changing action it was used for, once one was. */
  mutation?: string;
}

/** Where a TC3 request came from, and whether its signature covers X-TC-Action. */
export interface V3Use {
  connection: number;
  address: string;
  actionSigned: boolean;
}

export class ReplayGuard {
  private readonly v1: ExpiringMap<true>;
  private readonly v3: ExpiringMap<FirstUse>;
  private readonly now: () => number;

  constructor(o: ReplayOptions) {
    this.now = o.now ?? Date.now;
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
  checkV3(secretId: string, signature: string, action: string, mutates: boolean, use: V3Use): void {
    // Another action would not match this signature: nothing to guard.
    if (use.actionSigned) return;
    const key = `${secretId}\n${signature}`;
    const first = this.v3.get(key);
    if (!first) {
      this.v3.set(key, { at: this.now(), connection: use.connection, address: use.address, mutation: mutates ? action : undefined }, 2 * (use.address.length + action.length) + 24);
      return;
    }
    // The first use's own connection is its client (an eavesdropper cannot send on it).
    if (use.connection !== 0 && use.connection === first.connection) {
      if (mutates) first.mutation ??= action;
      return;
    }
    if (!mutates || first.mutation === action) return;
    if (first.mutation !== undefined) {
      throw new ApiError("AuthFailure.SignatureFailure", {
        reason: `This signature was already used for another state-changing action, ${first.mutation} (X-TC-Action is not covered by it; a replayed request?). Sign each request afresh.`,
      });
    }
    if (use.address !== first.address || this.now() - first.at > REUSE_GRACE_S * 1000) {
      throw new ApiError("AuthFailure.SignatureFailure", {
        reason: `This signature was already used for another action from another client or more than ${REUSE_GRACE_S} s ago (X-TC-Action is not covered by it; a replayed request?). Sign each request afresh.`,
      });
    }
    first.mutation = action;
  }
}
