// The stream's storage: units grouped into segments, each one blob in the BlobStore (gzip, SHA-256 of the plain
// bytes) plus one catalogue row carrying its replication id, offset range, arrival-time range, the (offset, time)
// samples taken meanwhile and the checksum. A blob is visible only once committed (the store's atomic commit);
// the row is written after it, so a segment is either listed and complete or not listed at all (an unlisted blob
// left by a crash between the two is garbage, never read).
//
// Group commit: units wait in memory for at most `flushMs` (default 1 s) counting the commit itself, then
// everything waiting becomes one segment: one blob written and fsynced (the local store fsyncs file and
// directory) and one row. The durable offset — acknowledged to the master, resumed from — moves only after both.
import type { SegmentMeta } from "../../records";
import type { StreamUnit } from "./parser";
import type { OffsetSample } from "./sampler";

/** One stored unit, read back. */
export interface StoredUnit {
  end: number;
  arrival: number;
  db: number;
  commands: number;
  raw: Buffer;
}

const MAGIC = Buffer.from("CRSSEG1\n", "latin1");
const HEAD = 28;

/** A unit's header (end offset, arrival, db, commands, length) at `at` in `buf`. */
function writeUnitHead(buf: Buffer, at: number, u: StreamUnit, arrival: number): void {
  buf.writeDoubleLE(u.end, at);
  buf.writeDoubleLE(arrival, at + 8);
  buf.writeUInt32LE(u.db, at + 16);
  buf.writeUInt32LE(u.commands, at + 20);
  buf.writeUInt32LE(u.raw.length, at + 24);
}

/** Slack kept between a unit's commit and its bound (timer jitter, the catalogue row). */
const COMMIT_MARGIN_MS = 50;

/** Bytes handed to the blob writer at a time: one write per unit would cost a zlib round trip per command. */
const PIECE_BYTES = 1 << 20;

/** A segment's plain bytes (magic, then each unit's header and RESP bytes) in pieces of about a MiB. */
export function* segmentPieces(units: ReadonlyArray<{ unit: StreamUnit; arrival: number }>): Generator<Buffer> {
  let from = 0;
  let first = true;
  while (from < units.length || first) {
    let size = first ? MAGIC.length : 0;
    let to = from;
    while (to < units.length && size < PIECE_BYTES) size += HEAD + units[to++]!.unit.raw.length;
    const piece = Buffer.allocUnsafe(size);
    let p = 0;
    if (first) p += MAGIC.copy(piece, 0);
    for (let i = from; i < to; i++) {
      const { unit, arrival } = units[i]!;
      writeUnitHead(piece, p, unit, arrival);
      p += HEAD;
      p += unit.raw.copy(piece, p);
    }
    yield piece;
    first = false;
    from = to;
  }
}

/** Parses a segment's plain bytes. */
export function decodeSegment(buf: Buffer): StoredUnit[] {
  if (buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error("not a stream segment (bad magic)");
  const out: StoredUnit[] = [];
  let p = MAGIC.length;
  while (p < buf.length) {
    if (p + HEAD > buf.length) throw new Error(`stream segment truncated at byte ${p}`);
    const len = buf.readUInt32LE(p + 24);
    if (p + HEAD + len > buf.length) throw new Error(`stream segment truncated inside a unit at byte ${p}`);
    out.push({ end: buf.readDoubleLE(p), arrival: buf.readDoubleLE(p + 8), db: buf.readUInt32LE(p + 16), commands: buf.readUInt32LE(p + 20), raw: buf.subarray(p + HEAD, p + HEAD + len) });
    p += HEAD + len;
  }
  return out;
}

/** Reads a committed segment's plain bytes back (the caller opens its blob, checked against the row). */
export async function readSegment(stream: AsyncIterable<Buffer>): Promise<StoredUnit[]> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c);
  return decodeSegment(Buffer.concat(chunks));
}

/** Where segments are written: a blob store (src/storage/blob-store.ts) is one. */
export interface SegmentStore {
  createWriter(key: string, opts: { compress: true }): SegmentWriter;
}

/** One segment's blob being written: durable and visible only once committed. */
export interface SegmentWriter {
  write(chunk: Buffer): unknown;
  /** Makes it durable under its key; the plain bytes' count and SHA-256. */
  commit(): Promise<{ bytes: number; sha256: string }>;
  abort(): Promise<void>;
}

export interface SegmentLogOptions {
  store: SegmentStore;
  /** Blob key of a segment starting at this offset. */
  keyOf(startOffset: number, endOffset: number): string;
  /** Records a committed segment (the catalogue row); the durable offset moves once it resolves. */
  record(meta: SegmentMeta): Promise<void>;
  now(): number;
  flushMs?: number;
  /** A flush failed (storage or catalogue): the stream's owner decides (reconnect from the durable point). */
  onError(err: Error): void;
  /** After each commit, with the new durable offset. */
  onDurable?(offset: number, db: number): void;
}

export class SegmentLog {
  private units: Array<{ unit: StreamUnit; arrival: number }> = [];
  private samples: Array<[number, number]> = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private failed = false;
  /** Offset and db through which everything is stored (or, for a unit with no bytes, accounted for). */
  durable: { offset: number; db: number };
  /** Offset and db of the last unit added (durable once flushed). */
  private head: { offset: number; db: number };
  private fromMs: number;
  /** Monotonic time the oldest waiting unit was added, the last commit ended, and how long it took. */
  private oldestAt = 0;
  private lastCommitAt = 0;
  private commitMs = 0;

  constructor(private readonly o: SegmentLogOptions, public replid: string, offset: number, db: number, fromMs: number) {
    this.durable = { offset, db };
    this.head = { offset, db };
    this.fromMs = fromMs;
  }

  /**
   * Starts the group commit. The bound is on a unit's wait, commit included: everything waiting is committed once
   * its oldest unit has waited `flushMs` less what the last commit took (and a margin), so a unit is durable
   * within about `flushMs` of its arrival; with nothing waiting, the samples and the covered time are recorded
   * every `flushMs`. Timed on this process's monotonic clock, whatever clock the owner injects.
   */
  start(): void {
    const flushMs = this.o.flushMs ?? 1000;
    const tickMs = Math.max(10, Math.min(100, Math.floor(flushMs / 5)));
    this.lastCommitAt = performance.now();
    this.timer = setInterval(() => {
      if (this.flushing || this.failed) return;
      const now = performance.now();
      const budget = flushMs - this.commitMs - tickMs - COMMIT_MARGIN_MS;
      const due = this.units.length ? now - this.oldestAt >= budget : now - this.lastCommitAt >= flushMs;
      if (due) void this.flush().catch(() => undefined);
    }, tickMs);
  }

  add(units: StreamUnit[], arrival: number): void {
    if (!this.units.length && units.length) this.oldestAt = performance.now();
    for (const u of units) {
      if (u.start !== this.head.offset) {
        this.fail(new Error(`stream units are not contiguous: a unit starts at ${u.start}, the log is at ${this.head.offset}`));
        return;
      }
      this.units.push({ unit: u, arrival });
      this.head = { offset: u.end, db: u.dbAfter };
    }
  }

  sample(s: OffsetSample): void {
    this.samples.push([s.offset, s.ms]);
  }

  /** Units waiting for the next commit (the lag in units). */
  get waiting(): number {
    return this.units.length;
  }

  /** Commits everything waiting as one segment (one at a time; concurrent calls share the flush in flight). */
  flush(): Promise<void> {
    if (this.failed) return Promise.reject(new Error("the segment log failed"));
    this.flushing ??= this.commit().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async commit(): Promise<void> {
    const began = performance.now();
    const units = this.units;
    const samples = this.samples;
    const head = this.head;
    const toMs = this.o.now();
    this.units = [];
    this.samples = [];
    const stored = units.filter((x) => x.unit.raw.length > 0);
    const meta: SegmentMeta = {
      replid: this.replid, startOffset: this.durable.offset, endOffset: head.offset, startDb: this.durable.db, endDb: head.db,
      fromMs: this.fromMs, toMs, samples, units: stored.length, bytes: 0,
    };
    const keyMoves = stored.reduce((n, x) => n + (x.unit.keyMove ? 1 : 0), 0);
    if (keyMoves) meta.keyMoves = keyMoves;
    try {
      if (stored.length) {
        const key = this.o.keyOf(meta.startOffset, meta.endOffset);
        const w = this.o.store.createWriter(key, { compress: true });
        try {
          for (const piece of segmentPieces(stored)) w.write(piece);
          const c = await w.commit();
          meta.key = key;
          meta.bytes = c.bytes;
          meta.sha256 = c.sha256;
        } catch (err) {
          await w.abort();
          throw err;
        }
      }
      await this.o.record(meta);
    } catch (err) {
      this.fail(err as Error);
      throw err;
    }
    this.durable = head;
    this.fromMs = toMs;
    this.lastCommitAt = performance.now();
    this.commitMs = Math.min(this.lastCommitAt - began, (this.o.flushMs ?? 1000) / 2);
    this.o.onDurable?.(head.offset, head.db);
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.stop();
    this.o.onError(err);
  }

  /** Stops the timer; what is waiting is dropped unless flushed first (the master resends it after PSYNC). */
  stop(): void {
    clearInterval(this.timer);
  }
}
