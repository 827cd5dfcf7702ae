// Listpack decoding (redis/redis src/listpack.c). Layout: total bytes (u32 LE), element count (u16 LE, 65535 =
// "count it"), entries, 0xFF. Each entry is <encoding+data><backlen>, where backlen (1..5 bytes) stores the size
// of <encoding+data> so the list can be walked backwards; we walk forwards and only skip it.
import { BlobError, checkFramedBlob } from "./blob-error";
import { Elements } from "./elements";

/** Bytes of the backlen field for an entry whose encoding+data is `l` bytes (lpEncodeBacklen). */
function backlenSize(l: number): number {
  if (l <= 127) return 1;
  if (l < 16383) return 2;
  if (l < 2097151) return 3;
  if (l < 268435455) return 4;
  return 5;
}

/** Decodes every element of a listpack into `out` (after reset). */
export function decodeListpack(b: Buffer, out: Elements): void {
  out.reset();
  const declared = checkFramedBlob(b, "listpack", 7, 4);
  const end = b.length - 1;
  let p = 6;
  while (p < end) {
    const c = b[p];
    let size: number; // encoding + data bytes
    if (c < 0x80) {
      out.pushInt(c);
      size = 1;
    } else if (c < 0xc0) {
      const len = c & 0x3f;
      size = 1 + len;
      if (p + size > end) break;
      out.pushStr(b.subarray(p + 1, p + size));
    } else if (c < 0xe0) {
      if (p + 2 > end) break;
      let v = ((c & 0x1f) << 8) | b[p + 1];
      if (v >= 4096) v -= 8192;
      out.pushInt(v);
      size = 2;
    } else if (c < 0xf0) {
      if (p + 2 > end) break;
      const len = ((c & 0x0f) << 8) | b[p + 1];
      size = 2 + len;
      if (p + size > end) break;
      out.pushStr(b.subarray(p + 2, p + size));
    } else {
      switch (c) {
        case 0xf0: {
          if (p + 5 > end) { size = 5; break; }
          const len = b.readUInt32LE(p + 1);
          size = 5 + len;
          if (p + size > end) break;
          out.pushStr(b.subarray(p + 5, p + size));
          break;
        }
        case 0xf1:
          size = 3;
          if (p + size > end) break;
          out.pushInt(b.readInt16LE(p + 1));
          break;
        case 0xf2:
          size = 4;
          if (p + size > end) break;
          out.pushInt(b.readIntLE(p + 1, 3));
          break;
        case 0xf3:
          size = 5;
          if (p + size > end) break;
          out.pushInt(b.readInt32LE(p + 1));
          break;
        case 0xf4:
          size = 9;
          if (p + size > end) break;
          out.pushBigInt(b.readBigInt64LE(p + 1));
          break;
        default:
          throw new BlobError(p, "a listpack entry encoding", `invalid listpack entry encoding byte 0x${c.toString(16)}`);
      }
    }
    const next = p + size + backlenSize(size);
    if (next > end) throw new BlobError(p, "a listpack entry inside the blob", `listpack entry of ${size} bytes overruns the blob end at ${end}`);
    p = next;
  }
  if (p !== end) throw new BlobError(p, "a listpack entry inside the blob", "listpack entry overruns the blob end");
  if (declared !== 65535 && declared !== out.length) {
    throw new BlobError(4, "the listpack element count", `listpack header says ${declared} elements, found ${out.length}`);
  }
}
