// SHA-1 for DEBUG DIGEST. Redis's dataset digest runs SHA-1 several times per key (key, type, value, each
// collection element, and a re-hash of the 20-byte running digest after every "mix"), so millions of tiny
// hashes: node:crypto costs ~1-2 us per call in binding overhead alone, this unrolled JS version ~0.1 us per
// 64-byte block. The compression function below is generated (80 rounds unrolled, message schedule kept in 16
// local variables) because that is what makes V8 keep everything in registers; do not hand-edit the rounds.
//
// Kept hand-written (not node:crypto): docs/benchmarks.md, bench:rdb "Digest" — the binding overhead per tiny hash.
//
// State words are big-endian 32-bit integers held in Int32Arrays, so XORing digests needs no byte shuffling.

/** SHA-1 compression of one 64-byte block given as 16 big-endian words M[o..o+15], updating H[0..4]. */
function compress(H: Int32Array, M: Int32Array, o: number): void {
  let w0 = M[o + 0];
  let w1 = M[o + 1];
  let w2 = M[o + 2];
  let w3 = M[o + 3];
  let w4 = M[o + 4];
  let w5 = M[o + 5];
  let w6 = M[o + 6];
  let w7 = M[o + 7];
  let w8 = M[o + 8];
  let w9 = M[o + 9];
  let w10 = M[o + 10];
  let w11 = M[o + 11];
  let w12 = M[o + 12];
  let w13 = M[o + 13];
  let w14 = M[o + 14];
  let w15 = M[o + 15];
  let a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], t = 0;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w0 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w1 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w2 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w3 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w4 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w5 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w6 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w7 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w8 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w9 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w10 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w11 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w12 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w13 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w14 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w15 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w13 ^ w8 ^ w2 ^ w0; w0 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w0 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w14 ^ w9 ^ w3 ^ w1; w1 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w1 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w15 ^ w10 ^ w4 ^ w2; w2 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w2 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w0 ^ w11 ^ w5 ^ w3; w3 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w3 + 0x5a827999) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w1 ^ w12 ^ w6 ^ w4; w4 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w4 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w2 ^ w13 ^ w7 ^ w5; w5 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w5 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w3 ^ w14 ^ w8 ^ w6; w6 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w6 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w4 ^ w15 ^ w9 ^ w7; w7 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w7 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w5 ^ w0 ^ w10 ^ w8; w8 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w8 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w6 ^ w1 ^ w11 ^ w9; w9 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w9 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w7 ^ w2 ^ w12 ^ w10; w10 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w10 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w8 ^ w3 ^ w13 ^ w11; w11 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w11 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w9 ^ w4 ^ w14 ^ w12; w12 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w12 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w10 ^ w5 ^ w15 ^ w13; w13 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w13 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w11 ^ w6 ^ w0 ^ w14; w14 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w14 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w12 ^ w7 ^ w1 ^ w15; w15 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w15 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w13 ^ w8 ^ w2 ^ w0; w0 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w0 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w14 ^ w9 ^ w3 ^ w1; w1 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w1 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w15 ^ w10 ^ w4 ^ w2; w2 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w2 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w0 ^ w11 ^ w5 ^ w3; w3 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w3 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w1 ^ w12 ^ w6 ^ w4; w4 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w4 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w2 ^ w13 ^ w7 ^ w5; w5 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w5 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w3 ^ w14 ^ w8 ^ w6; w6 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w6 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w4 ^ w15 ^ w9 ^ w7; w7 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w7 + 0x6ed9eba1) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w5 ^ w0 ^ w10 ^ w8; w8 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w8 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w6 ^ w1 ^ w11 ^ w9; w9 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w9 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w7 ^ w2 ^ w12 ^ w10; w10 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w10 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w8 ^ w3 ^ w13 ^ w11; w11 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w11 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w9 ^ w4 ^ w14 ^ w12; w12 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w12 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w10 ^ w5 ^ w15 ^ w13; w13 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w13 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w11 ^ w6 ^ w0 ^ w14; w14 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w14 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w12 ^ w7 ^ w1 ^ w15; w15 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w15 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w13 ^ w8 ^ w2 ^ w0; w0 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w0 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w14 ^ w9 ^ w3 ^ w1; w1 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w1 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w15 ^ w10 ^ w4 ^ w2; w2 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w2 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w0 ^ w11 ^ w5 ^ w3; w3 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w3 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w1 ^ w12 ^ w6 ^ w4; w4 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w4 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w2 ^ w13 ^ w7 ^ w5; w5 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w5 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w3 ^ w14 ^ w8 ^ w6; w6 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w6 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w4 ^ w15 ^ w9 ^ w7; w7 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w7 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w5 ^ w0 ^ w10 ^ w8; w8 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w8 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w6 ^ w1 ^ w11 ^ w9; w9 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w9 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w7 ^ w2 ^ w12 ^ w10; w10 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w10 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w8 ^ w3 ^ w13 ^ w11; w11 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w11 + -0x70e44324) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w9 ^ w4 ^ w14 ^ w12; w12 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w12 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w10 ^ w5 ^ w15 ^ w13; w13 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w13 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w11 ^ w6 ^ w0 ^ w14; w14 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w14 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w12 ^ w7 ^ w1 ^ w15; w15 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w15 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w13 ^ w8 ^ w2 ^ w0; w0 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w0 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w14 ^ w9 ^ w3 ^ w1; w1 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w1 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w15 ^ w10 ^ w4 ^ w2; w2 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w2 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w0 ^ w11 ^ w5 ^ w3; w3 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w3 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w1 ^ w12 ^ w6 ^ w4; w4 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w4 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w2 ^ w13 ^ w7 ^ w5; w5 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w5 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w3 ^ w14 ^ w8 ^ w6; w6 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w6 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w4 ^ w15 ^ w9 ^ w7; w7 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w7 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w5 ^ w0 ^ w10 ^ w8; w8 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w8 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w6 ^ w1 ^ w11 ^ w9; w9 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w9 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w7 ^ w2 ^ w12 ^ w10; w10 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w10 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w8 ^ w3 ^ w13 ^ w11; w11 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w11 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w9 ^ w4 ^ w14 ^ w12; w12 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w12 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w10 ^ w5 ^ w15 ^ w13; w13 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w13 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w11 ^ w6 ^ w0 ^ w14; w14 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w14 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  t = w12 ^ w7 ^ w1 ^ w15; w15 = (t << 1) | (t >>> 31);
  t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w15 + -0x359d3e2a) | 0; e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
  H[0] = (H[0] + a) | 0;
  H[1] = (H[1] + b) | 0;
  H[2] = (H[2] + c) | 0;
  H[3] = (H[3] + d) | 0;
  H[4] = (H[4] + e) | 0;
}

const H = new Int32Array(5);
const M = new Int32Array(16);

function init(): void {
  H[0] = 0x67452301;
  H[1] = -0x10325477; // 0xefcdab89
  H[2] = -0x67452302; // 0x98badcfe
  H[3] = 0x10325476;
  H[4] = -0x3c2d1e10; // 0xc3d2e1f0
}

/** SHA-1 of data[start, end) into out[off..off+4] (big-endian words). */
export function sha1Into(data: Uint8Array, start: number, end: number, out: Int32Array, off = 0): void {
  init();
  const len = end - start;
  let p = start;
  const full = start + (len & ~63);
  while (p < full) {
    for (let i = 0; i < 16; i++, p += 4) M[i] = (data[p] << 24) | (data[p + 1] << 16) | (data[p + 2] << 8) | data[p + 3];
    compress(H, M, 0);
  }
  // final block(s): the remaining bytes, 0x80, zeros, 64-bit bit length
  const rest = end - p;
  const words = rest >> 2;
  let i = 0;
  for (; i < words; i++, p += 4) M[i] = (data[p] << 24) | (data[p + 1] << 16) | (data[p + 2] << 8) | data[p + 3];
  // the partial word with the 0x80 marker
  let w = 0x80 << (24 - ((rest & 3) << 3));
  if (rest & 3) {
    w |= data[p] << 24;
    if ((rest & 3) > 1) w |= data[p + 1] << 16;
    if ((rest & 3) > 2) w |= data[p + 2] << 8;
  }
  M[i++] = w;
  if (i > 14) {
    for (; i < 16; i++) M[i] = 0;
    compress(H, M, 0);
    i = 0;
  }
  for (; i < 14; i++) M[i] = 0;
  const bits = len * 8;
  M[14] = Math.floor(bits / 4294967296) | 0;
  M[15] = bits | 0;
  compress(H, M, 0);
  out.set(H, off);
}

/** Replaces d[off..off+4] by the SHA-1 of its own 20 bytes (one block with fixed padding). */
export function sha1Of20(d: Int32Array, off = 0): void {
  init();
  M[0] = d[off];
  M[1] = d[off + 1];
  M[2] = d[off + 2];
  M[3] = d[off + 3];
  M[4] = d[off + 4];
  M[5] = -0x80000000;
  for (let i = 6; i < 15; i++) M[i] = 0;
  M[15] = 160;
  compress(H, M, 0);
  d.set(H, off);
}

/** The 20 bytes of a digest as 40 lowercase hex digits. */
export function wordsToHex(d: Int32Array, off = 0): string {
  let s = "";
  for (let i = 0; i < 5; i++) s += (d[off + i] >>> 0).toString(16).padStart(8, "0");
  return s;
}
