// Stream values (redis/redis src/t_stream.c, rdb.c). In the RDB a stream is a sequence of listpack "nodes",
// each keyed by its master entry ID (16 bytes: ms and seq as big-endian u64). Inside a node:
//   master entry: count, deleted, num-fields, field_1..field_N, 0
//   then per entry: flags, ms-delta, seq-delta, [num-fields, field/value pairs | values only when the
//   SAMEFIELDS flag says the fields are the master fields], lp-count
// Flags: 1 = deleted (a tombstone XDEL left until the node is rewritten), 2 = same fields as the master.
import { BlobError } from "./blob-error";
import { Elements } from "./elements";

export interface StreamId {
  ms: bigint;
  seq: bigint;
}

export const STREAM_ITEM_DELETED = 1;
export const STREAM_ITEM_SAMEFIELDS = 2;

export const streamIdString = (id: StreamId): string => `${id.ms}-${id.seq}`;

export function compareStreamIds(a: StreamId, b: StreamId): number {
  if (a.ms !== b.ms) return a.ms < b.ms ? -1 : 1;
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  return 0;
}

/** Reads a 16-byte big-endian stream ID (node keys, PEL entries). */
export function readRawStreamId(b: Buffer, at = 0): StreamId {
  return { ms: b.readBigUInt64BE(at), seq: b.readBigUInt64BE(at + 8) };
}

export function rawStreamId(id: StreamId): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeBigUInt64BE(id.ms, 0);
  b.writeBigUInt64BE(id.seq, 8);
  return b;
}

export interface NodeCounts {
  live: number;
  deleted: number;
}

/**
 * Walks the entries of one decoded node listpack. `fields` passed to the callback alternates field, value
 * (a fresh array per entry; the Buffers are views into the node). Deleted entries are reported with
 * deleted=true so callers can count them; most ignore them (XRANGE and DEBUG DIGEST do).
 */
export function forEachStreamEntry(
  master: StreamId,
  lp: Elements,
  cb: (id: StreamId, fields: Buffer[], deleted: boolean) => void,
): NodeCounts {
  const n = lp.length;
  if (n < 4) throw new BlobError(0, "a stream master entry", `stream node listpack has only ${n} elements`);
  const int = (i: number, what: string): number => {
    if (i >= n) throw new BlobError(0, `the stream ${what}`, `stream node listpack ends before the ${what} (element ${i})`);
    const s = lp.strs[i];
    if (s !== null) throw new BlobError(0, `an integer stream ${what}`, `stream node element ${i} (${what}) is not an integer`);
    return lp.nums[i];
  };
  const count = int(0, "entry count");
  const deletedCount = int(1, "deleted count");
  const masterFields = int(2, "master field count");
  let i = 3 + masterFields;
  if (int(i, "master terminator") !== 0) throw new BlobError(0, "the 0 that ends the master entry", "stream master entry is not terminated by 0");
  i++;
  let live = 0;
  let deleted = 0;
  while (i < n) {
    const flags = int(i, "entry flags");
    const msDelta = BigInt(lp.strs[i + 1] === null ? int(i + 1, "ms delta") : lp.integer(i + 1));
    const seqDelta = BigInt(lp.strs[i + 2] === null ? int(i + 2, "seq delta") : lp.integer(i + 2));
    i += 3;
    const id: StreamId = { ms: master.ms + msDelta, seq: master.seq + seqDelta };
    const fields: Buffer[] = [];
    if (flags & STREAM_ITEM_SAMEFIELDS) {
      if (i + masterFields > n) throw new BlobError(0, "the stream entry values", "stream entry overruns its node");
      for (let f = 0; f < masterFields; f++) {
        fields.push(lp.bytes(3 + f), lp.bytes(i + f));
      }
      i += masterFields;
    } else {
      const nf = int(i, "entry field count");
      i++;
      if (i + nf * 2 > n) throw new BlobError(0, "the stream entry fields", "stream entry overruns its node");
      for (let f = 0; f < nf * 2; f++) fields.push(lp.bytes(i + f));
      i += nf * 2;
    }
    int(i, "entry lp-count");
    i++;
    const isDeleted = (flags & STREAM_ITEM_DELETED) !== 0;
    if (isDeleted) deleted++;
    else live++;
    cb(id, fields, isDeleted);
  }
  if (live !== count || deleted !== deletedCount) {
    throw new BlobError(0, "the stream node counts", `stream node master entry says ${count} live + ${deletedCount} deleted, found ${live} + ${deleted}`);
  }
  return { live, deleted };
}
