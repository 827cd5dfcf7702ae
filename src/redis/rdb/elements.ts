// A reusable list of decoded elements from one compact blob (ziplist, listpack, intset, zipmap). Compact
// encodings store small integers as integers; we keep them as numbers (so a sorted-set score or a stream ID
// delta needs no string round trip) and turn them into decimal bytes only when a caller needs the bytes.

/** Decimal bytes of an integer, as Redis shows an integer-encoded element (ll2string). */
export function intBuf(n: number): Buffer {
  if (n >= -1 && n < SMALL_INTS.length - 1 && Number.isInteger(n)) return SMALL_INTS[n + 1];
  return Buffer.from(String(n), "latin1");
}

/** Shared buffers for the integers -1..1023, which are very common list/set members and stream deltas. */
const SMALL_INTS: Buffer[] = Array.from({ length: 1025 }, (_, i) => Buffer.from(String(i - 1), "latin1"));

export class Elements {
  /** The element bytes, or null when the element is the integer in `nums` at the same index. */
  readonly strs: Array<Buffer | null> = [];
  readonly nums: number[] = [];
  length = 0;

  reset(): void {
    this.length = 0;
  }

  pushStr(b: Buffer): void {
    this.strs[this.length] = b;
    this.nums[this.length] = 0;
    this.length++;
  }

  pushInt(n: number): void {
    this.strs[this.length] = null;
    this.nums[this.length] = n;
    this.length++;
  }

  /** Integers outside ±2^53 cannot be numbers without losing digits: keep their exact decimal text. */
  pushBigInt(n: bigint): void {
    if (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)) this.pushInt(Number(n));
    else this.pushStr(Buffer.from(n.toString(), "latin1"));
  }

  /** The element as bytes (decimal for integers). */
  bytes(i: number): Buffer {
    const s = this.strs[i];
    return s === null ? intBuf(this.nums[i]) : s;
  }

  /** The element as a number: an integer element directly, a string element parsed like strtod. */
  number(i: number): number {
    const s = this.strs[i];
    return s === null ? this.nums[i] : parseDoubleBytes(s);
  }

  /** The element as a (possibly big) integer; throws a plain Error when it is not an integer. */
  integer(i: number): bigint {
    const s = this.strs[i];
    if (s === null) return BigInt(this.nums[i]);
    const t = s.toString("latin1");
    if (!/^-?\d+$/.test(t)) throw new Error(`element ${i} is not an integer: ${JSON.stringify(t.slice(0, 40))}`);
    return BigInt(t);
  }

  /** Drops references to blob memory once a blob has been emitted, so a big node is not kept alive. */
  release(): void {
    for (let i = 0; i < this.length; i++) this.strs[i] = null;
    this.length = 0;
  }
}

/** Parses a score the way Redis does (strtod): "inf", "-inf", "+inf", "nan" and decimal/exponent forms. */
export function parseDoubleBytes(b: Buffer): number {
  const t = b.toString("latin1");
  const v = Number(t);
  if (!Number.isNaN(v) || /^\s*[+-]?nan\s*$/i.test(t)) return v;
  const lower = t.trim().toLowerCase();
  if (lower === "inf" || lower === "+inf" || lower === "infinity" || lower === "+infinity") return Infinity;
  if (lower === "-inf" || lower === "-infinity") return -Infinity;
  const f = parseFloat(t);
  if (Number.isNaN(f)) throw new Error(`not a number: ${JSON.stringify(t.slice(0, 40))}`);
  return f;
}
