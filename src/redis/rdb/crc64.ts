// CRC-64/Jones exactly as Redis computes it for RDB trailers and DUMP payloads: reflected polynomial
// 0xad93d23594c935a9, initial value 0, no final xor. Check value: "123456789" -> 0xe9c6d914c4b8d9ca.
//
// This runs over every byte of multi-hundred-megabyte snapshots, so it avoids BigInt entirely: the 64-bit
// state lives in two unsigned 32-bit halves and the update is table-driven slicing-by-8 (eight 256-entry
// tables, one per byte position of a 64-bit word), which processes 8 input bytes per table round.

/** The running CRC state; `lo` holds bits 0..31, `hi` bits 32..63. Treat as opaque outside this module. */
export interface Crc64 {
  lo: number;
  hi: number;
}

// Reflected form of 0xad93d23594c935a9 (bit-reversed), split into halves.
const POLY_LO = 0xac4bc9b5;
const POLY_HI = 0x95ac9329;

// TABLES[k * 256 + n] (lo in TLO, hi in THI): CRC contribution of byte n seen k bytes before the end of a word.
const TLO = new Uint32Array(8 * 256);
const THI = new Uint32Array(8 * 256);

(function buildTables(): void {
  for (let n = 0; n < 256; n++) {
    let lo = n;
    let hi = 0;
    for (let bit = 0; bit < 8; bit++) {
      const carry = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (carry) {
        lo = (lo ^ POLY_LO) >>> 0;
        hi = (hi ^ POLY_HI) >>> 0;
      }
    }
    TLO[n] = lo;
    THI[n] = hi;
  }
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const plo = TLO[(k - 1) * 256 + n];
      const phi = THI[(k - 1) * 256 + n];
      const idx = plo & 0xff;
      // (prev >> 8) ^ T0[prev & 0xff]
      TLO[k * 256 + n] = (((plo >>> 8) | ((phi & 0xff) << 24)) ^ TLO[idx]) >>> 0;
      THI[k * 256 + n] = ((phi >>> 8) ^ THI[idx]) >>> 0;
    }
  }
})();

export function crc64Init(): Crc64 {
  return { lo: 0, hi: 0 };
}

// Signed views of the tables: keeping every intermediate value a 32-bit signed integer lets V8 stay on
// integer arithmetic (uint32 values above 2^31 would become heap doubles and deoptimize the hot loop).
const TLOI = new Int32Array(TLO.buffer);
const THII = new Int32Array(THI.buffer);

/** Feeds bytes into the running CRC (mutates and returns `state`). */
export function crc64Update(state: Crc64, buf: Uint8Array, start = 0, end = buf.length): Crc64 {
  let lo = state.lo | 0;
  let hi = state.hi | 0;
  let i = start;
  // 8 bytes per round (slicing-by-8; no alignment requirement: we read bytes, not words), then the tail.
  const blockEnd = end - ((end - i) & 7);
  while (i < blockEnd) {
    lo ^= buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
    hi ^= buf[i + 4] | (buf[i + 5] << 8) | (buf[i + 6] << 16) | (buf[i + 7] << 24);
    const a = 7 * 256 + (lo & 0xff);
    const b = 6 * 256 + ((lo >>> 8) & 0xff);
    const c = 5 * 256 + ((lo >>> 16) & 0xff);
    const d = 4 * 256 + (lo >>> 24);
    const e = 3 * 256 + (hi & 0xff);
    const f = 2 * 256 + ((hi >>> 8) & 0xff);
    const g = 256 + ((hi >>> 16) & 0xff);
    const h = hi >>> 24;
    lo = TLOI[a] ^ TLOI[b] ^ TLOI[c] ^ TLOI[d] ^ TLOI[e] ^ TLOI[f] ^ TLOI[g] ^ TLOI[h];
    hi = THII[a] ^ THII[b] ^ THII[c] ^ THII[d] ^ THII[e] ^ THII[f] ^ THII[g] ^ THII[h];
    i += 8;
  }
  state.lo = lo >>> 0;
  state.hi = hi >>> 0;
  // The tail lives in its own function: a loop that is rarely entered would leave this hot one with
  // incomplete type feedback and make V8 deoptimize it again and again.
  if (i < end) crcTail(state, buf, i, end);
  return state;
}

function crcTail(state: Crc64, buf: Uint8Array, i: number, end: number): void {
  let lo = state.lo | 0;
  let hi = state.hi | 0;
  for (; i < end; i++) {
    const idx = (lo ^ buf[i]) & 0xff;
    lo = ((lo >>> 8) | ((hi & 0xff) << 24)) ^ TLOI[idx];
    hi = (hi >>> 8) ^ THII[idx];
  }
  state.lo = lo >>> 0;
  state.hi = hi >>> 0;
}

/** One-shot CRC of a buffer. */
export function crc64(buf: Uint8Array): Crc64 {
  return crc64Update(crc64Init(), buf);
}

/** The CRC as Redis stores it: 8 bytes, little-endian. */
export function crc64ToBuffer(state: Crc64): Buffer {
  const out = Buffer.alloc(8);
  out.writeUInt32LE(state.lo >>> 0, 0);
  out.writeUInt32LE(state.hi >>> 0, 4);
  return out;
}

/** The CRC as a 16-digit lowercase hex string (for messages and tests). */
export function crc64ToHex(state: Crc64): string {
  return (state.hi >>> 0).toString(16).padStart(8, "0") + (state.lo >>> 0).toString(16).padStart(8, "0");
}

/** True when `le8` (8 bytes, little-endian, as in an RDB trailer) equals the state. */
export function crc64Equals(state: Crc64, le8: Uint8Array): boolean {
  if (le8.length !== 8) return false;
  const lo = (le8[0] | (le8[1] << 8) | (le8[2] << 16) | (le8[3] << 24)) >>> 0;
  const hi = (le8[4] | (le8[5] << 8) | (le8[6] << 16) | (le8[7] << 24)) >>> 0;
  return lo === state.lo >>> 0 && hi === state.hi >>> 0;
}
