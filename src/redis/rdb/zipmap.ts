// Zipmap decoding (redis/redis src/zipmap.c; hashes written by Redis < 2.6). Layout: zmlen (1 byte), then
// <len>key<len><free>value<free bytes> pairs, then 0xFF. A length is one byte below 254, or 254 + u32 LE.
import { BlobError } from "./blob-error";
import { Elements } from "./elements";

export function decodeZipmap(b: Buffer, out: Elements): void {
  out.reset();
  let p = 1;
  const readLen = (): number => {
    if (p >= b.length) throw new BlobError(p, "a zipmap length", "zipmap ends without its 0xFF end marker");
    const c = b[p];
    if (c < 254) {
      p += 1;
      return c;
    }
    if (c === 254) {
      if (p + 5 > b.length) throw new BlobError(p, "a zipmap length", "zipmap length overruns the blob");
      const v = b.readUInt32LE(p + 1);
      p += 5;
      return v;
    }
    p += 1;
    return -1; // 255: end
  };
  const take = (len: number, what: string): Buffer => {
    if (p + len > b.length) throw new BlobError(p, `a zipmap ${what}`, `zipmap ${what} overruns the blob`);
    const s = b.subarray(p, p + len);
    p += len;
    return s;
  };
  for (;;) {
    const klen = readLen();
    if (klen < 0) break;
    out.pushStr(take(klen, "field"));
    const vlen = readLen();
    if (vlen < 0) throw new BlobError(p - 1, "a zipmap value length", "zipmap ends after a field without its value");
    if (p >= b.length) throw new BlobError(p, "a zipmap free byte", "zipmap value header overruns the blob");
    const free = b[p++];
    out.pushStr(take(vlen, "value"));
    p += free;
  }
  if (p !== b.length) throw new BlobError(p, "the end of the zipmap", `${b.length - p} bytes after the zipmap end marker`);
}
