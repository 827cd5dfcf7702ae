// Errors found inside a compact blob (ziplist, listpack, intset, zipmap) carry the offset inside the blob; the
// reader turns them into an RdbParseError at the absolute offset of the blob in the stream.
export class BlobError extends Error {
  override name = "BlobError";
  constructor(readonly inner: number, readonly expected: string, detail: string) {
    super(detail);
  }
}

/**
 * Checks the frame a listpack and a ziplist share — at least `minBytes`, their total length (u32 LE at 0) equal
 * to the blob's, the 0xFF end marker as the last byte — and returns the element count they declare (u16 LE at
 * `countAt`).
 */
export function checkFramedBlob(b: Buffer, kind: "listpack" | "ziplist", minBytes: number, countAt: number): number {
  const n = b.length;
  if (n < minBytes) throw new BlobError(0, `a ${kind} header`, `${kind} of ${n} bytes is shorter than its ${minBytes}-byte minimum`);
  const total = b.readUInt32LE(0);
  if (total !== n) throw new BlobError(0, `the ${kind} total length`, `${kind} header says ${total} bytes, the blob has ${n}`);
  const end = n - 1;
  if (b[end] !== 0xff) throw new BlobError(end, `the ${kind} end marker 0xFF`, `${kind} ends with 0x${b[end]!.toString(16)}`);
  return b.readUInt16LE(countAt);
}
