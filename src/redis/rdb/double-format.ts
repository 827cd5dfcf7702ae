// How Redis turns a sorted-set score into text for DEBUG DIGEST. Two formats, by server version:
//  - Redis <= 7.0: snprintf("%.17g")                                   -> formatG17
//  - Redis >= 7.2 and Valkey: fpconv_dtoa (Grisu2 shortest-ish digits)  -> fpconvDtoa
// The digest hashes this text, so the formatting must be bit-exact, including Grisu2's rare non-shortest
// outputs: fpconvDtoa below follows deps/fpconv/fpconv_dtoa.c step by step with BigInt 64-bit arithmetic (the
// cached powers of ten are computed here exactly and match fpconv_powers.h). Integers, the common case, take
// a fast path proven equal to the full algorithm by test/rdb-engine.test.ts.
// Kept hand-written: the digest needs fpconv's exact digits (non-shortest cases included), which no library gives.

export type ScoreFormat = "%.17g" | "fpconv";

/** printf("%.17g", v) as glibc prints it. */
export function formatG17(v: number): string {
  if (Number.isNaN(v)) return "nan";
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const neg = v < 0;
  const s = Math.abs(v).toExponential(16); // 17 significant digits, correctly rounded
  const eAt = s.indexOf("e");
  const digits = s[0] + s.slice(2, eAt); // 17 digits
  const x = Number(s.slice(eAt + 1));
  let out: string;
  if (x < -4 || x >= 17) {
    let mant = digits[0];
    const rest = digits.slice(1).replace(/0+$/, "");
    if (rest) mant += "." + rest;
    const ax = Math.abs(x);
    out = `${mant}e${x < 0 ? "-" : "+"}${ax < 10 ? "0" : ""}${ax}`;
  } else if (x >= 0) {
    const int = digits.slice(0, x + 1);
    const frac = digits.slice(x + 1).replace(/0+$/, "");
    out = frac ? `${int}.${frac}` : int;
  } else {
    const frac = ("0".repeat(-x - 1) + digits).replace(/0+$/, "");
    out = `0.${frac}`;
  }
  return neg ? "-" + out : out;
}

// ---------------------------------------------------------------------------------------------- Grisu2

const MASK = (1n << 64n) - 1n;
const FRACMASK = 0x000fffffffffffffn;
const EXPMASK = 0x7ff0000000000000n;
const HIDDEN = 0x0010000000000000n;
const EXPBIAS = 1023 + 52;

interface Fp {
  frac: bigint;
  exp: number;
}

/** Normalized 64-bit approximations (rounded to nearest) of 10^k for k = -348, -340, ..., 340. */
const POWERS: Fp[] = (() => {
  const out: Fp[] = [];
  for (let i = 0; i < 87; i++) {
    const k = -348 + 8 * i;
    let frac: bigint;
    let exp: number;
    if (k >= 0) {
      const p = 10n ** BigInt(k);
      const bits = p.toString(2).length;
      exp = bits - 64;
      frac = exp > 0 ? ((p * 2n) / (1n << BigInt(exp)) + 1n) / 2n : p << BigInt(-exp);
    } else {
      const p = 10n ** BigInt(-k);
      const shift = p.toString(2).length + 63;
      frac = (((1n << BigInt(shift)) * 2n) / p + 1n) / 2n;
      exp = -shift;
    }
    if (frac >> 64n) {
      frac >>= 1n;
      exp++;
    }
    out.push({ frac, exp });
  }
  return out;
})();

const TENS: bigint[] = Array.from({ length: 20 }, (_, i) => 10n ** BigInt(19 - i));
const TENS_N: number[] = TENS.map(Number);

const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);

function bitsOf(d: number): bigint {
  f64[0] = d;
  return u64[0];
}

function buildFp(d: number): Fp {
  const bits = bitsOf(d);
  let frac = bits & FRACMASK;
  let exp = Number((bits & EXPMASK) >> 52n);
  if (exp) {
    frac += HIDDEN;
    exp -= EXPBIAS;
  } else {
    exp = -EXPBIAS + 1;
  }
  return { frac, exp };
}

function normalize(fp: Fp): void {
  while ((fp.frac & HIDDEN) === 0n) {
    fp.frac = (fp.frac << 1n) & MASK;
    fp.exp--;
  }
  fp.frac = (fp.frac << 11n) & MASK;
  fp.exp -= 11;
}

function boundaries(fp: Fp): { lower: Fp; upper: Fp } {
  const upper: Fp = { frac: (fp.frac << 1n) + 1n, exp: fp.exp - 1 };
  while ((upper.frac & (HIDDEN << 1n)) === 0n) {
    upper.frac <<= 1n;
    upper.exp--;
  }
  upper.frac = (upper.frac << 10n) & MASK;
  upper.exp -= 10;
  const lShift = fp.frac === HIDDEN ? 2 : 1;
  const lower: Fp = { frac: (fp.frac << BigInt(lShift)) - 1n, exp: fp.exp - lShift };
  lower.frac = (lower.frac << BigInt(lower.exp - upper.exp)) & MASK;
  lower.exp = upper.exp;
  return { lower, upper };
}

function multiply(a: Fp, b: Fp): Fp {
  const lo = 0xffffffffn;
  const ahBl = (a.frac >> 32n) * (b.frac & lo);
  const alBh = (a.frac & lo) * (b.frac >> 32n);
  const alBl = (a.frac & lo) * (b.frac & lo);
  const ahBh = (a.frac >> 32n) * (b.frac >> 32n);
  let tmp = (ahBl & lo) + (alBh & lo) + (alBl >> 32n);
  tmp += 1n << 31n;
  return { frac: (ahBh + (ahBl >> 32n) + (alBh >> 32n) + (tmp >> 32n)) & MASK, exp: a.exp + b.exp + 64 };
}

function cachedPow10(exp: number): { pow: Fp; k: number } {
  const approx = Math.trunc(-(exp + 87) * 0.30102999566398114);
  let idx = Math.trunc((approx - -348) / 8);
  for (;;) {
    const current = exp + POWERS[idx].exp + 64;
    if (current < -60) {
      idx++;
      continue;
    }
    if (current > -32) {
      idx--;
      continue;
    }
    return { pow: POWERS[idx], k: -348 + idx * 8 };
  }
}

function roundDigit(digits: number[], n: number, delta: bigint, rem: bigint, kappa: bigint, frac: bigint): void {
  while (
    rem < frac &&
    ((delta - rem) & MASK) >= kappa &&
    (((rem + kappa) & MASK) < frac || ((frac - rem) & MASK) > ((rem + kappa - frac) & MASK))
  ) {
    digits[n - 1]--;
    rem = (rem + kappa) & MASK;
  }
}

function generateDigits(fp: Fp, upper: Fp, lower: Fp, digits: number[]): { n: number; kAdd: number } {
  const wfrac = (upper.frac - fp.frac) & MASK;
  let delta = (upper.frac - lower.frac) & MASK;
  const shift = BigInt(-upper.exp);
  const oneFrac = 1n << shift;
  // the integral part is below 2^32 (upper.exp is between -60 and -32): plain numbers are exact there
  let part1 = Number(upper.frac >> shift);
  const part2start = upper.frac & (oneFrac - 1n);
  let part2 = part2start;
  let idx = 0;
  let kappa = 10;
  for (let di = 10; kappa > 0; di++) {
    const div = TENS_N[di];
    const digit = Math.floor(part1 / div);
    if (digit || idx) digits[idx++] = digit;
    part1 -= digit * div;
    kappa--;
    const tmp = ((BigInt(part1) << shift) + part2) & MASK;
    if (tmp <= delta) {
      roundDigit(digits, idx, delta, tmp, (TENS[di] << shift) & MASK, wfrac);
      return { n: idx, kAdd: kappa };
    }
  }
  let unit = 18;
  for (;;) {
    part2 = (part2 * 10n) & MASK;
    delta = (delta * 10n) & MASK;
    kappa--;
    const digit = part2 >> shift;
    if (digit || idx) digits[idx++] = Number(digit);
    part2 &= oneFrac - 1n;
    if (part2 < delta) {
      roundDigit(digits, idx, delta, part2, oneFrac, (wfrac * TENS[unit]) & MASK);
      return { n: idx, kAdd: kappa };
    }
    unit--;
  }
}

function grisu2(d: number, digits: number[]): { n: number; K: number } {
  const w = buildFp(d);
  const { lower, upper } = boundaries(w);
  normalize(w);
  const { pow, k } = cachedPow10(upper.exp);
  const ww = multiply(w, pow);
  const up = multiply(upper, pow);
  const lo = multiply(lower, pow);
  lo.frac = (lo.frac + 1n) & MASK;
  up.frac = (up.frac - 1n) & MASK;
  const { n, kAdd } = generateDigits(ww, up, lo, digits);
  return { n, K: -k + kAdd };
}

function emitDigits(digits: string, K: number, neg: boolean): string {
  let n = digits.length;
  let exp = Math.abs(K + n - 1);
  if (K >= 0 && exp < n + 7) return digits + "0".repeat(K);
  if (K < 0 && (K > -7 || exp < 4)) {
    const offset = n - Math.abs(K);
    if (offset <= 0) return "0." + "0".repeat(-offset) + digits;
    return digits.slice(0, offset) + "." + digits.slice(offset);
  }
  n = Math.min(n, 18 - (neg ? 1 : 0));
  let out = digits[0];
  if (n > 1) out += "." + digits.slice(1, n);
  out += "e" + (K + n - 1 < 0 ? "-" : "+");
  let cent = 0;
  if (exp > 99) {
    cent = Math.floor(exp / 100);
    out += String(cent);
    exp -= cent * 100;
  }
  if (exp > 9) {
    const dec = Math.floor(exp / 10);
    out += String(dec);
    exp -= dec * 10;
  } else if (cent) {
    out += "0";
  }
  return out + String(exp % 10);
}

const scratch: number[] = [];

const memo = new Map<number, string>();

/** fpconv_dtoa(v) exactly as Redis >= 7.2 formats doubles (DEBUG DIGEST, and ZSCORE replies). */
export function fpconvDtoa(v: number): string {
  const neg = v < 0 || Object.is(v, -0);
  const sign = neg ? "-" : "";
  if (v === 0) return sign + "0";
  if (Number.isNaN(v)) return (bitsOf(v) >> 63n ? "-" : "") + "nan";
  if (!Number.isFinite(v)) return sign + "inf";
  const a = Math.abs(v);
  if (Number.isInteger(a) && a < 9007199254740992) {
    // Integers below 2^53: Grisu2 yields the integer's digits without trailing zeros (K = their count).
    const s = String(a);
    const digits = s.replace(/0+$/, "");
    return sign + emitDigits(digits, s.length - digits.length, neg);
  }
  let s = memo.get(v);
  if (s === undefined) {
    s = sign + fpconvSlow(a, neg);
    if (memo.size >= 65536) memo.clear(); // scores repeat (ranks, buckets); keep the cache small
    memo.set(v, s);
  }
  return s;
}

/** The full Grisu2 path (exported for the test that checks the integer fast path against it). */
export function fpconvSlow(a: number, neg: boolean): string {
  const { n, K } = grisu2(a, scratch);
  let digits = "";
  for (let i = 0; i < n; i++) digits += String.fromCharCode(48 + scratch[i]);
  return emitDigits(digits, K, neg);
}

export function formatScore(v: number, format: ScoreFormat): string {
  return format === "fpconv" ? fpconvDtoa(v) : formatG17(v);
}
