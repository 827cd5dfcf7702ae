// Hand-built RDB files for encodings no server in this repository writes any more (linked lists, zipmaps,
// ziplist lists, ASCII-double sorted sets, second-precision expiries, module values) and for precise failure
// cases. Encoders follow the formats documented in src/redis/rdb/{ziplist,zipmap,listpack,intset}.ts.
import { crc64Init, crc64ToBuffer, crc64Update } from "../../src/redis/rdb/crc64";
import { ByteWriter } from "../../src/redis/rdb/rdb-writer";

export class RdbBuilder {
  readonly w = new ByteWriter(1024);

  constructor(readonly version: number) {
    this.w.bytes(Buffer.from(`REDIS${String(version).padStart(4, "0")}`, "latin1"));
  }

  aux(k: string, v: string): this {
    this.w.u8(0xfa).rdbString(Buffer.from(k)).rdbString(Buffer.from(v));
    return this;
  }

  selectDb(db: number): this {
    this.w.u8(0xfe).rdbLen(db);
    return this;
  }

  resizeDb(keys: number, expires: number): this {
    this.w.u8(0xfb).rdbLen(keys).rdbLen(expires);
    return this;
  }

  expireSeconds(s: number): this {
    this.w.u8(0xfd);
    const b = Buffer.alloc(4);
    b.writeInt32LE(s);
    this.w.bytes(b);
    return this;
  }

  expireMs(ms: number): this {
    this.w.u8(0xfc).i64le(ms);
    return this;
  }

  idle(s: number): this {
    this.w.u8(0xf8).rdbLen(s);
    return this;
  }

  freq(f: number): this {
    this.w.u8(0xf9).u8(f);
    return this;
  }

  /** A key of `type` whose value bytes follow (use the value helpers). */
  key(type: number, key: string | Buffer): this {
    this.w.u8(type).rdbString(typeof key === "string" ? Buffer.from(key) : key);
    return this;
  }

  len(n: number | bigint): this {
    this.w.rdbLen(n);
    return this;
  }

  str(s: string | Buffer): this {
    this.w.rdbString(typeof s === "string" ? Buffer.from(s) : s);
    return this;
  }

  raw(b: Buffer | number[]): this {
    this.w.bytes(Buffer.from(b));
    return this;
  }

  /** Ends the file: EOF opcode and (version >= 5) the CRC-64 trailer. */
  end(opts: { noChecksum?: boolean } = {}): Buffer {
    this.w.u8(0xff);
    if (this.version >= 5) {
      const body = this.w.view();
      const crc = opts.noChecksum ? Buffer.alloc(8) : crc64ToBuffer(crc64Update(crc64Init(), body));
      this.w.bytes(crc);
    }
    return Buffer.from(this.w.view());
  }
}

/** A ziplist of strings and integers (integers chosen with the smallest encoding, like Redis). */
export function ziplist(items: Array<string | number>): Buffer {
  const entries: Buffer[] = [];
  let prevlen = 0;
  for (const it of items) {
    const head: number[] = [];
    if (prevlen < 254) head.push(prevlen);
    else {
      head.push(0xfe);
      const b = Buffer.alloc(4);
      b.writeUInt32LE(prevlen);
      head.push(...b);
    }
    let body: Buffer;
    if (typeof it === "number") {
      if (it >= 0 && it <= 12) body = Buffer.from([0xf1 + it]);
      else if (it >= -128 && it <= 127) body = Buffer.from([0xfe, it & 0xff]);
      else if (it >= -32768 && it <= 32767) {
        body = Buffer.alloc(3);
        body[0] = 0xc0;
        body.writeInt16LE(it, 1);
      } else if (it >= -8388608 && it <= 8388607) {
        body = Buffer.alloc(4);
        body[0] = 0xf0;
        body.writeIntLE(it, 1, 3);
      } else if (it >= -2147483648 && it <= 2147483647) {
        body = Buffer.alloc(5);
        body[0] = 0xd0;
        body.writeInt32LE(it, 1);
      } else {
        body = Buffer.alloc(9);
        body[0] = 0xe0;
        body.writeBigInt64LE(BigInt(it), 1);
      }
    } else {
      const s = Buffer.from(it);
      if (s.length < 64) body = Buffer.concat([Buffer.from([s.length]), s]);
      else if (s.length < 16384) body = Buffer.concat([Buffer.from([0x40 | (s.length >> 8), s.length & 0xff]), s]);
      else {
        const h = Buffer.alloc(5);
        h[0] = 0x80;
        h.writeUInt32BE(s.length, 1);
        body = Buffer.concat([h, s]);
      }
    }
    const e = Buffer.concat([Buffer.from(head), body]);
    entries.push(e);
    prevlen = e.length;
  }
  const content = Buffer.concat(entries);
  const total = 10 + content.length + 1;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(total, 0);
  out.writeUInt32LE(entries.length ? total - 1 - entries[entries.length - 1].length : 10, 4);
  out.writeUInt16LE(Math.min(items.length, 65535), 8);
  content.copy(out, 10);
  out[total - 1] = 0xff;
  return out;
}

/** A zipmap (Redis < 2.6 small hashes). */
export function zipmap(pairs: Array<[string, string]>, free = 0): Buffer {
  const parts: number[] = [Math.min(pairs.length, 254)];
  const len = (n: number): number[] => (n < 254 ? [n] : [254, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24]);
  for (const [k, v] of pairs) {
    const kb = Buffer.from(k);
    const vb = Buffer.from(v);
    parts.push(...len(kb.length), ...kb, ...len(vb.length), free, ...vb, ...Array(free).fill(0));
  }
  parts.push(0xff);
  return Buffer.from(parts);
}

/** A listpack of strings (and small non-negative integers as 7-bit uints). */
export function listpack(items: Array<string | number>): Buffer {
  const entries: Buffer[] = [];
  for (const it of items) {
    let e: Buffer;
    if (typeof it === "number") e = Buffer.from([it & 0x7f]);
    else {
      const s = Buffer.from(it);
      if (s.length < 64) e = Buffer.concat([Buffer.from([0x80 | s.length]), s]);
      else e = Buffer.concat([Buffer.from([0xe0 | (s.length >> 8), s.length & 0xff]), s]);
    }
    const l = e.length;
    const back = l <= 127 ? [l] : [l >> 7, (l & 127) | 128];
    entries.push(Buffer.concat([e, Buffer.from(back)]));
  }
  const content = Buffer.concat(entries);
  const total = 6 + content.length + 1;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(total, 0);
  out.writeUInt16LE(items.length, 4);
  content.copy(out, 6);
  out[total - 1] = 0xff;
  return out;
}

/** Module type id for a 9-character name and encoding version. */
export function moduleId(name: string, encver: number): bigint {
  const cs = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  let id = 0n;
  for (const ch of name) id = (id << 6n) | BigInt(cs.indexOf(ch));
  return (id << 10n) | BigInt(encver);
}
