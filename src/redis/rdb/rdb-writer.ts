// Byte-level RDB encoding (lengths, strings, doubles) into a growable buffer, used by the DUMP payload writer
// and by tests that build RDB files. Facts from redis/redis src/rdb.c (rdbSaveLen, rdbSaveRawString,
// rdbSaveMillisecondTime, rdbSaveBinaryDoubleValue, rdbSaveDoubleValue).

export class ByteWriter {
  buf: Buffer;
  len = 0;

  constructor(initial = 4096) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  reset(): void {
    this.len = 0;
  }

  /** Makes room for n more bytes. */
  ensure(n: number): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.len++] = v;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** RDB length encoding (6-bit, 14-bit, 32-bit or 64-bit big-endian). */
  rdbLen(n: number | bigint): this {
    if (typeof n === "bigint") {
      if (n < 0x100000000n) return this.rdbLen(Number(n));
      this.ensure(9);
      this.buf[this.len] = 0x81;
      this.buf.writeBigUInt64BE(n, this.len + 1);
      this.len += 9;
      return this;
    }
    if (n < 0x40) return this.u8(n);
    if (n < 0x4000) {
      this.ensure(2);
      this.buf[this.len] = 0x40 | (n >> 8);
      this.buf[this.len + 1] = n & 0xff;
      this.len += 2;
      return this;
    }
    if (n <= 0xffffffff) {
      this.ensure(5);
      this.buf[this.len] = 0x80;
      this.buf.writeUInt32BE(n, this.len + 1);
      this.len += 5;
      return this;
    }
    return this.rdbLen(BigInt(n));
  }

  /** A length-prefixed raw string (no integer or LZF encoding: every loader accepts it). */
  rdbString(b: Uint8Array): this {
    this.rdbLen(b.length);
    return this.bytes(b);
  }

  /** 8-byte little-endian integer (rdbSaveMillisecondTime). */
  i64le(v: number | bigint): this {
    this.ensure(8);
    this.buf.writeBigInt64LE(BigInt(v), this.len);
    this.len += 8;
    return this;
  }

  doubleLE(v: number): this {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.len);
    this.len += 8;
    return this;
  }

  /** Old (RDB < 8, RDB_TYPE_ZSET) ASCII double: 253 nan, 254 +inf, 255 -inf, else length + "%.17g" text. */
  asciiDouble(v: number, text: string): this {
    if (Number.isNaN(v)) return this.u8(253);
    if (v === Infinity) return this.u8(254);
    if (v === -Infinity) return this.u8(255);
    const b = Buffer.from(text, "latin1");
    this.u8(b.length);
    return this.bytes(b);
  }

  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}
