// An in-memory order-statistic index of one instance's backups for DescribeInstanceBackups on large instances.
// It holds the listing order (start_time DESC, backup_id ASC) as parallel arrays, so a page at any offset, a
// time window (binary search) and a status filter (per-status-set position arrays) cost O(log n + page) instead
// of an index scan. Only the keys live here; the page's rows are read from the table (by rowid in SQLite, by
// backup id in PostgreSQL) and checked against the keys (backup id, start time, status), so a row that changed
// under the index is never served. The owner (a Catalog) decides when an index is still valid (the
// per-instance version rows its triggers keep).

export interface ListingKeys {
  /** Rows in listing order: [rowid, start_time, status, backup_id]. The rowid is SQLite's (PostgreSQL, which
   * reads rows by backup id, stores the position). */
  rowids: Float64Array;
  starts: Float64Array;
  statuses: Int8Array;
  ids: string[];
}

/** Positions (in listing order) of one page, and the filter's total. */
export interface ListingPick {
  total: number;
  positions: number[];
}

const MAX_SUBSETS = 16;

export class ListingIndex {
  readonly size: number;
  private readonly subsets = new Map<string, Int32Array>();
  private subsetBytes = 0;

  constructor(readonly instanceId: string, readonly version: number | null, readonly keys: ListingKeys) {
    this.size = keys.rowids.length;
  }

  /**
   * Builds an index from rows already in listing order; undefined when a row does not fit the compact arrays
   * (rowid beyond 2^53, status outside a byte, a start time that is not an integer), so the caller uses SQL.
   */
  static build(instanceId: string, version: number | null, rows: unknown[][]): ListingIndex | undefined {
    const n = rows.length;
    const rowids = new Float64Array(n);
    const starts = new Float64Array(n);
    const statuses = new Int8Array(n);
    const ids = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const r = rows[i]!;
      const rowid = r[0];
      const start = r[1];
      const status = r[2];
      const id = r[3];
      if (typeof rowid !== "number" || !Number.isSafeInteger(rowid)) return undefined;
      if (typeof start !== "number" || !Number.isSafeInteger(start)) return undefined;
      if (typeof status !== "number" || !Number.isInteger(status) || status < -128 || status > 127) return undefined;
      if (typeof id !== "string") return undefined;
      rowids[i] = rowid;
      starts[i] = start;
      statuses[i] = status;
      ids[i] = id;
    }
    return new ListingIndex(instanceId, version, { rowids, starts, statuses, ids });
  }

  /** Approximate heap cost, for the owner's memory budget. */
  bytes(): number {
    // 8 + 8 + 1 bytes of arrays, and a short one-byte string (header + 36 chars) plus its slot per row.
    return this.size * (17 + 64) + this.subsetBytes;
  }

  /** [lo, hi): positions whose start time is within [begin, end] (both inclusive, either open). */
  window(begin: number | undefined, end: number | undefined): [number, number] {
    const s = this.keys.starts;
    // Descending order: the first position with start <= end, and the first with start < begin.
    const lo = end === undefined ? 0 : partitionPoint(s.length, (i) => s[i]! <= end);
    const hi = begin === undefined ? this.size : partitionPoint(s.length, (i) => s[i]! < begin);
    return [lo, Math.max(lo, hi)];
  }

  /** Positions (ascending) of the rows whose status is in the set; the set is sorted and deduplicated. */
  private subset(statuses: readonly number[]): Int32Array {
    const key = statuses.join(",");
    let p = this.subsets.get(key);
    if (p) return p;
    const st = this.keys.statuses;
    let count = 0;
    const inSet = (v: number) => statuses.includes(v);
    for (let i = 0; i < this.size; i++) if (inSet(st[i]!)) count++;
    p = new Int32Array(count);
    for (let i = 0, j = 0; i < this.size; i++) if (inSet(st[i]!)) p[j++] = i;
    if (this.subsets.size >= MAX_SUBSETS) {
      this.subsets.clear();
      this.subsetBytes = 0;
    }
    this.subsets.set(key, p);
    this.subsetBytes += p.byteLength;
    return p;
  }

  /** The page at `offset` of `limit` rows under a time window and an optional (sorted, unique) status set. */
  pick(offset: number, limit: number, begin: number | undefined, end: number | undefined, statuses: readonly number[] | undefined): ListingPick {
    const [lo, hi] = this.window(begin, end);
    const positions: number[] = [];
    if (!statuses) {
      const total = hi - lo;
      for (let i = lo + offset; i < hi && positions.length < limit; i++) positions.push(i);
      return { total, positions };
    }
    const p = this.subset(statuses);
    // Ascending positions: the first at or after lo, and the first at or after hi.
    const a = partitionPoint(p.length, (i) => p[i]! >= lo);
    const b = partitionPoint(p.length, (i) => p[i]! >= hi);
    for (let i = a + offset; i < b && positions.length < limit; i++) positions.push(p[i]!);
    return { total: b - a, positions };
  }
}

/** The first index i in [0, n) at which `reached(i)` holds (n when none), for a `reached` that stays true once it is. */
function partitionPoint(n: number, reached: (i: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (reached(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
