// Ziplist decoding (redis/redis src/ziplist.c; written by Redis 2.6 to 6.2). Layout: zlbytes (u32 LE), zltail
// (u32 LE), zllen (u16 LE, 65535 = "count it"), entries, 0xFF. Entry: prevlen (1 byte, or 0xFE + u32 LE),
// encoding (strings: 00pppppp, 01pppppp qqqqqqqq big-endian, 10000000 + u32 big-endian; integers: 0xC0 int16,
// 0xD0 int32, 0xE0 int64, 0xF0 int24, 0xFE int8, 0xF1..0xFD immediate 0..12, all little-endian), data.
import { BlobError, checkFramedBlob } from "./blob-error";
import { Elements } from "./elements";

export function decodeZiplist(b: Buffer, out: Elements): void {
  out.reset();
  const declared = checkFramedBlob(b, "ziplist", 11, 8);
  const end = b.length - 1;
  let p = 10;
  while (p < end) {
    const start = p;
    p += b[p] < 254 ? 1 : 5;
    if (p >= end) throw new BlobError(start, "a ziplist entry", "ziplist entry header overruns the blob");
    const enc = b[p];
    switch (enc >> 6) {
      case 0: {
        const len = enc & 0x3f;
        if (p + 1 + len > end) throw new BlobError(start, "a ziplist string", "ziplist string overruns the blob");
        out.pushStr(b.subarray(p + 1, p + 1 + len));
        p += 1 + len;
        break;
      }
      case 1: {
        if (p + 2 > end) throw new BlobError(start, "a ziplist string length", "ziplist entry overruns the blob");
        const len = ((enc & 0x3f) << 8) | b[p + 1];
        if (p + 2 + len > end) throw new BlobError(start, "a ziplist string", "ziplist string overruns the blob");
        out.pushStr(b.subarray(p + 2, p + 2 + len));
        p += 2 + len;
        break;
      }
      case 2: {
        if (enc !== 0x80 || p + 5 > end) throw new BlobError(p, "a ziplist encoding", `invalid ziplist encoding byte 0x${enc.toString(16)}`);
        const len = b.readUInt32BE(p + 1);
        if (p + 5 + len > end) throw new BlobError(start, "a ziplist string", "ziplist string overruns the blob");
        out.pushStr(b.subarray(p + 5, p + 5 + len));
        p += 5 + len;
        break;
      }
      default: {
        let size: number;
        if (enc >= 0xf1 && enc <= 0xfd) {
          out.pushInt((enc & 0x0f) - 1);
          size = 0;
        } else {
          switch (enc) {
            case 0xc0: size = 2; break;
            case 0xd0: size = 4; break;
            case 0xe0: size = 8; break;
            case 0xf0: size = 3; break;
            case 0xfe: size = 1; break;
            default:
              throw new BlobError(p, "a ziplist encoding", `invalid ziplist encoding byte 0x${enc.toString(16)}`);
          }
          if (p + 1 + size > end) throw new BlobError(start, "a ziplist integer", "ziplist integer overruns the blob");
          if (size === 8) out.pushBigInt(b.readBigInt64LE(p + 1));
          else out.pushInt(b.readIntLE(p + 1, size));
        }
        p += 1 + size;
      }
    }
  }
  if (declared !== 65535 && declared !== out.length) {
    throw new BlobError(8, "the ziplist element count", `ziplist header says ${declared} elements, found ${out.length}`);
  }
}
