// LZF decompression (liblzf's format, which Redis uses for strings longer than 20 bytes when rdbcompression is
// on). Two forms: whole-buffer for ordinary values, and a streaming decompressor for huge strings so a 512 MB
// compressed value is emitted in pieces with only an 8 KB history window in memory.
//
// Kept hand-written: npm's LZF packages (lzfjs, the native lzf) decompress whole buffers only; a 512 MB value
// must stream, and filling runs natively halved the restore's CPU per key (docs/benchmarks.md, bench:restore).
//
// Format: a control byte c. c < 32: a literal run of c+1 bytes follows. Otherwise a back reference: length
// (c >> 5) + 2 (if c >> 5 == 7, the next byte adds to the length), offset ((c & 31) << 8 | next byte) + 1
// bytes back in the output. Back references may overlap the bytes being written (run-length style).

export class LzfError extends Error {
  override name = "LzfError";
  constructor(readonly inputOffset: number, message: string) {
    super(message);
  }
}

/** Decompresses input[start, end) which must expand to exactly outLen bytes. */
export function lzfDecompress(input: Uint8Array, start: number, end: number, outLen: number): Buffer {
  const out = Buffer.allocUnsafe(outLen);
  let ip = start;
  let op = 0;
  while (ip < end) {
    const ctrl = input[ip++];
    if (ctrl < 32) {
      const n = ctrl + 1;
      if (ip + n > end) throw new LzfError(ip - 1 - start, `LZF literal run of ${n} bytes overruns the compressed data`);
      if (op + n > outLen) throw new LzfError(ip - 1 - start, `LZF output exceeds the declared ${outLen} bytes`);
      if (n < 16) {
        for (let i = 0; i < n; i++) out[op + i] = input[ip + i];
      } else {
        out.set(input.subarray(ip, ip + n), op);
      }
      ip += n;
      op += n;
    } else {
      let len = ctrl >> 5;
      if (len === 7) {
        if (ip >= end) throw new LzfError(ip - start, "LZF back reference length is truncated");
        len += input[ip++];
      }
      if (ip >= end) throw new LzfError(ip - start, "LZF back reference offset is truncated");
      let ref = op - ((ctrl & 0x1f) << 8) - input[ip++] - 1;
      len += 2;
      if (ref < 0) throw new LzfError(ip - 2 - start, "LZF back reference points before the start of the output");
      if (op + len > outLen) throw new LzfError(ip - 2 - start, `LZF output exceeds the declared ${outLen} bytes`);
      if (len > 32 && op - ref >= len) {
        out.copyWithin(op, ref, ref + len); // no overlap: one native copy
        op += len;
      } else if (len > 16 && op - ref === 1) {
        out.fill(out[ref], op, op + len); // a run of one byte (zero padding, repeated characters)
        op += len;
      } else {
        // byte by byte: the source may overlap the destination (run-length style)
        while (len--) out[op++] = out[ref++];
      }
    }
  }
  if (op !== outLen) throw new LzfError(end - start, `LZF data expands to ${op} bytes, the header says ${outLen}`);
  return out;
}

const HISTORY = 8192; // the largest back reference offset
const PIECE = 64 * 1024;

/**
 * Streaming LZF decompressor: feed compressed bytes in any chunking, get decompressed pieces (views valid only
 * during the callback) of 64 KiB (plus at most one token, 264 bytes). Memory: one 72 KB window plus a token carried across chunks.
 */
export class LzfStream {
  private readonly win = Buffer.allocUnsafe(HISTORY + PIECE + 300);
  private op = 0; // write position in win
  private emitFrom = 0; // win[emitFrom, op) not yet handed to the callback
  private carry: Buffer = Buffer.alloc(0); // an incomplete token from the previous chunk
  private produced = 0;
  private consumed = 0;

  constructor(private readonly outLen: number, private readonly onPiece: (piece: Buffer) => void) {}

  /** Total decompressed bytes so far. */
  get outputBytes(): number {
    return this.produced + (this.op - this.emitFrom);
  }

  write(chunk: Buffer): void {
    let input = chunk;
    if (this.carry.length) {
      input = Buffer.concat([this.carry, chunk]);
      this.carry = Buffer.alloc(0);
    }
    const end = input.length;
    let ip = 0;
    const win = this.win;
    while (ip < end) {
      const ctrl = input[ip];
      // how many input bytes does this token need?
      let need: number;
      if (ctrl < 32) need = ctrl + 2;
      else if (ctrl >> 5 === 7) need = 3;
      else need = 2;
      if (ip + need > end) break; // incomplete token: carry it over
      if (this.op + 300 > win.length) this.flush(true);
      let op = this.op;
      if (ctrl < 32) {
        const n = ctrl + 1;
        if (this.outputBytes + n > this.outLen) throw new LzfError(this.consumed + ip, `LZF output exceeds the declared ${this.outLen} bytes`);
        for (let i = 0; i < n; i++) win[op + i] = input[ip + 1 + i];
        op += n;
      } else {
        let len = ctrl >> 5;
        let p = ip + 1;
        if (len === 7) len += input[p++];
        let ref = op - ((ctrl & 0x1f) << 8) - input[p] - 1;
        len += 2;
        if (ref < 0) throw new LzfError(this.consumed + ip, "LZF back reference points before the start of the output");
        if (this.outputBytes + len > this.outLen) throw new LzfError(this.consumed + ip, `LZF output exceeds the declared ${this.outLen} bytes`);
        while (len--) win[op++] = win[ref++];
      }
      this.op = op;
      ip += need;
      if (op - this.emitFrom >= PIECE) this.flush(false);
    }
    this.consumed += ip;
    if (ip < end) this.carry = Buffer.from(input.subarray(ip));
  }

  /** Call after the last compressed byte; checks the total length and emits what is left. */
  end(): void {
    if (this.carry.length) throw new LzfError(this.consumed, "LZF data ends inside a token");
    this.flush(false);
    if (this.produced !== this.outLen) throw new LzfError(this.consumed, `LZF data expands to ${this.produced} bytes, the header says ${this.outLen}`);
  }

  private flush(compact: boolean): void {
    if (this.op > this.emitFrom) {
      this.onPiece(this.win.subarray(this.emitFrom, this.op));
      this.produced += this.op - this.emitFrom;
      this.emitFrom = this.op;
    }
    if (compact && this.op > HISTORY) {
      // keep the last 8 KB as history for back references
      this.win.copyWithin(0, this.op - HISTORY, this.op);
      this.op = HISTORY;
      this.emitFrom = HISTORY;
    }
  }
}
