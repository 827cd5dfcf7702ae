// Errors found inside a compact blob (ziplist, listpack, intset, zipmap) carry the offset inside the blob; the
// reader turns them into an RdbParseError at the absolute offset of the blob in the stream.
export class BlobError extends Error {
  override name = "BlobError";
  constructor(readonly inner: number, readonly expected: string, detail: string) {
    super(detail);
  }
}
