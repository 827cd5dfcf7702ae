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
import { LRUCache } from "lru-cache";
import { ApiError } from "../protocol/errors";

/**
 * Entries that expire `ttlMs` after insertion, bounded by entry count and by an estimate of bytes (`extraBytes`
 * beyond the key, strings counting two bytes a character), on the guard's clock.
 */
function expiringMap<V extends object | true>(ttlMs: number, maxEntries: number, maxBytes: number, now: () => number): LRUCache<string, V> {
  // ttlResolution 0: every expiry check reads `now`, which tests drive by hand.
  return new LRUCache<string, V>({ ttl: ttlMs, max: maxEntries, maxSize: maxBytes, ttlResolution: 0, perf: { now } });
}

function entrySize(key: string, extraBytes = 0): number {
  return 2 * key.length + extraBytes + 64;
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
  private readonly v1: LRUCache<string, true>;
  private readonly v3: LRUCache<string, FirstUse>;
  private readonly now: () => number;

  constructor(o: ReplayOptions) {
    this.now = o.now ?? Date.now;
    // The window on both sides of now: a timestamp up to windowS in the future stays valid twice as long.
    const ttl = 2 * o.windowS * 1000;
    const maxEntries = o.maxEntries ?? 100_000;
    const maxBytes = o.maxBytes ?? 32 * 1024 * 1024;
    this.v1 = expiringMap(ttl, maxEntries, maxBytes / 2, this.now);
    this.v3 = expiringMap(ttl, maxEntries, maxBytes / 2, this.now);
  }

  /** For an authenticated v1 request: refuses a second use of the same signed request. */
  checkV1(secretId: string, nonce: string, timestamp: string, signature: string): void {
    const key = `${secretId}\n${nonce}\n${timestamp}\n${signature}`;
    if (this.v1.get(key)) {
      throw new ApiError("AuthFailure.SignatureFailure", {
        reason: `This request was already received: a Nonce may be used once with its Timestamp (a replayed request?). Send each request with a new Nonce.`,
      });
    }
    this.v1.set(key, true, { size: entrySize(key) });
  }

  /** For an authenticated TC3 request, once its action is known; `mutates` for a state-changing action. */
  checkV3(secretId: string, signature: string, action: string, mutates: boolean, use: V3Use): void {
    // Another action would not match this signature: nothing to guard.
    if (use.actionSigned) return;
    const key = `${secretId}\n${signature}`;
    const first = this.v3.get(key);
    if (!first) {
      const use1: FirstUse = { at: this.now(), connection: use.connection, address: use.address, mutation: mutates ? action : undefined };
      this.v3.set(key, use1, { size: entrySize(key, 2 * (use.address.length + action.length) + 24) });
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
