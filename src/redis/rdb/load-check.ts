// What a Redis loading an RDB from the replication socket refuses beyond the format itself, checked before the
// bytes reach it. Such a target does not reject a bad file: it exits ("Terminating server after rdb file reading
// failure") or panics, so restore.ts releases bytes only once our reader has parsed them AND this visitor has
// accepted them. The rules are those of rdb.c's loading (Redis 4.0-7.4, Valkey 8): no key twice in a database
// ("Duplicated key found in RDB file"), no member twice in a set, sorted set or hash ("Duplicate zset fields
// detected"), no NaN score, no consumer group, consumer or PEL entry twice in a stream, and no consumer PEL entry
// missing from its group's PEL. A file Redis wrote never breaks them; a damaged one can: a flipped bit in an
// integer-encoded member easily turns it into another member.
//
// Memory is bounded: names are remembered as 64-bit fingerprints (8 bytes each), at most MAX_FINGERPRINTS keys
// and as many members of the current key. Past that the check reports it cannot vouch for the rest
// (LoadCheckLimit), and the caller falls back to proving the whole file by its CRC before sending more. Two
// different names with the same fingerprint (about one chance in 2^64 per pair) would be reported as a duplicate.
import type { KeyHeader, RdbVisitor, StreamConsumer, StreamGroup, StreamPendingEntry } from "./reader";
import type { StreamId } from "./stream";

const TOUCHED = 64;

/** Keys, or members of one key, remembered at most (64 MB of table at the worst). */
export const MAX_FINGERPRINTS = 4_000_000;

/** The file breaks a rule a loading Redis enforces: it must not be sent at all. */
export class LoadRuleViolation extends Error {}

/** The check cannot vouch for the rest (too many names to remember): prove the file by its CRC instead. */
export class LoadCheckLimit extends Error {}

/**
 * A set of 64-bit fingerprints in open addressing (two Uint32Arrays, linear probing, load <= 0.75). add() says
 * whether the fingerprint was new; the all-zero fingerprint stands for an empty slot, so it is stored as 1.
 */
export class FingerprintSet {
  private hi = new Uint32Array(1024);
  private lo = new Uint32Array(1024);
  /** Slots of the first TOUCHED entries, so clearing a small set (most keys' members) zeroes only those. */
  private readonly touched = new Int32Array(TOUCHED);
  size = 0;

  constructor(private readonly max: number) {}

  /** True when new; false when already present. Throws LoadCheckLimit beyond `max` entries. */
  add(h1: number, h2: number): boolean {
    if (h1 === 0 && h2 === 0) h2 = 1;
    if ((this.size + 1) * 4 > this.hi.length * 3) this.grow();
    const mask = this.hi.length - 1;
    for (let i = (h1 ^ Math.imul(h2, 0x9e3779b1)) & mask; ; i = (i + 1) & mask) {
      const a = this.hi[i]!, b = this.lo[i]!;
      if (a === 0 && b === 0) {
        if (this.size >= this.max) throw new LoadCheckLimit(`more than ${this.max} names to check for duplicates`);
        this.hi[i] = h1;
        this.lo[i] = h2;
        if (this.size < TOUCHED) this.touched[this.size] = i;
        this.size++;
        return true;
      }
      if (a === h1 >>> 0 && b === h2 >>> 0) return false;
    }
  }

  clear(): void {
    // A big table is dropped rather than zeroed: the next key is usually small.
    if (this.hi.length > 1024) {
      this.hi = new Uint32Array(1024);
      this.lo = new Uint32Array(1024);
    } else if (this.size <= TOUCHED) {
      // No growth happened (the table grows at 768 entries), so these are every slot in use.
      for (let k = 0; k < this.size; k++) this.hi[this.touched[k]!] = this.lo[this.touched[k]!] = 0;
    } else {
      this.hi.fill(0);
      this.lo.fill(0);
    }
    this.size = 0;
  }

  private grow(): void {
    const oldHi = this.hi, oldLo = this.lo;
    this.hi = new Uint32Array(oldHi.length * 2);
    this.lo = new Uint32Array(oldLo.length * 2);
    this.size = 0;
    for (let i = 0; i < oldHi.length; i++) {
      if (oldHi[i] !== 0 || oldLo[i] !== 0) this.add(oldHi[i]! | 0, oldLo[i]! | 0);
    }
  }
}

/** Two independent 32-bit FNV-style hashes of (seed, bytes): a 64-bit fingerprint. */
function fingerprint(b: Buffer, seed: number, out: [number, number]): void {
  let h1 = (0x811c9dc5 ^ seed) | 0;
  let h2 = (0x6b43a9b5 ^ Math.imul(seed, 0x85ebca6b) ^ b.length) | 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  out[0] = h1 ^ (h1 >>> 16);
  out[1] = h2;
}

const idBuffer = (id: StreamId): Buffer => {
  const b = Buffer.allocUnsafe(16);
  b.writeBigUInt64BE(id.ms, 0);
  b.writeBigUInt64BE(id.seq, 8);
  return b;
};

/** The RdbVisitor that enforces the rules above; hand it to an RdbReader that decodes every value. */
export class LoadCheck implements RdbVisitor {
  private readonly keys = new FingerprintSet(MAX_FINGERPRINTS);
  private readonly members = new FingerprintSet(MAX_FINGERPRINTS);
  private readonly fp: [number, number] = [0, 0];
  private db = 0;
  private key: KeyHeader | undefined;
  // Streams: groups of the key, consumers of the group, the group's PEL, as id strings (small in practice; a
  // PEL of millions is bounded by the same limit).
  private groups = new Set<string>();
  private consumers = new Set<string>();
  private pel = new Set<string>();

  private fail(what: string): never {
    const where = this.key ? `key ${JSON.stringify(this.key.key.toString("latin1").slice(0, 64))} at offset ${this.key.offset}` : "the RDB";
    throw new LoadRuleViolation(`the RDB has ${what} (${where}); a Redis loading it would stop`);
  }

  private remember(set: FingerprintSet, b: Buffer, seed: number, what: string): void {
    fingerprint(b, seed, this.fp);
    if (!set.add(this.fp[0], this.fp[1])) this.fail(what);
  }

  // Present so the reader decodes every value (it skips what no callback asks for): damage anywhere inside a
  // value must show before its bytes go out.
  onString(): void {}
  onStringPiece(): void {}
  onListItem(): void {}
  onStreamEntry(): void {}
  onModuleData(): void {}

  onDb(db: number): void {
    this.db = db;
  }

  onKeyStart(key: KeyHeader): void {
    this.key = key;
    this.remember(this.keys, key.key, this.db + 1, "a key that appears twice in its database");
    this.members.clear();
    this.groups.clear();
  }

  onKeyEnd(): void {
    this.key = undefined;
  }

  onSetMember(member: Buffer): void {
    this.remember(this.members, member, 0, "a set member that appears twice");
  }

  onZsetMember(member: Buffer, score: number): void {
    if (Number.isNaN(score)) this.fail("a sorted-set score that is NaN");
    this.remember(this.members, member, 0, "a sorted-set member that appears twice");
  }

  onHashField(field: Buffer): void {
    this.remember(this.members, field, 0, "a hash field that appears twice");
  }

  onStreamGroup(group: StreamGroup): void {
    const name = group.name.toString("latin1");
    if (this.groups.has(name)) this.fail("a stream consumer group that appears twice");
    this.groups.add(name);
    this.consumers.clear();
    this.pel.clear();
  }

  onStreamPending(entry: StreamPendingEntry): void {
    const id = idBuffer(entry.id).toString("latin1");
    if (this.pel.has(id)) this.fail("a stream PEL entry that appears twice");
    if (this.pel.size >= MAX_FINGERPRINTS) throw new LoadCheckLimit(`a stream PEL of more than ${MAX_FINGERPRINTS} entries`);
    this.pel.add(id);
  }

  onStreamConsumer(consumer: StreamConsumer): void {
    const name = consumer.name.toString("latin1");
    if (this.consumers.has(name)) this.fail("a stream consumer that appears twice in its group");
    this.consumers.add(name);
  }

  onStreamConsumerPending(id: StreamId): void {
    if (!this.pel.has(idBuffer(id).toString("latin1"))) this.fail("a consumer's pending entry missing from its group's PEL");
  }
}
