// Intset decoding (redis/redis src/intset.c): encoding (u32 LE: 2, 4 or 8 bytes per integer), length (u32 LE),
// then the sorted integers, little-endian.
import { BlobError } from "./blob-error";
import { Elements } from "./elements";

export function decodeIntset(b: Buffer, out: Elements): void {
  out.reset();
  if (b.length < 8) throw new BlobError(0, "an intset header", `intset of ${b.length} bytes is shorter than its 8-byte header`);
  const width = b.readUInt32LE(0);
  if (width !== 2 && width !== 4 && width !== 8) throw new BlobError(0, "an intset encoding of 2, 4 or 8", `invalid intset encoding ${width}`);
  const count = b.readUInt32LE(4);
  if (8 + count * width !== b.length) throw new BlobError(4, "the intset length", `intset says ${count} integers of ${width} bytes, the blob has ${b.length - 8} bytes of them`);
  for (let i = 0, p = 8; i < count; i++, p += width) {
    if (width === 2) out.pushInt(b.readInt16LE(p));
    else if (width === 4) out.pushInt(b.readInt32LE(p));
    else out.pushBigInt(b.readBigInt64LE(p));
  }
}
