// What an engine (sqlite/, postgres/) gives the catalogue: every operation uncached (sql-ops.ts), its own
// transactions and migrations, and the few primitives the one cache over both (cached.ts) is built on — how it
// knows a cached value may be stale, and the listing index's size, keys and rows.
import type { Catalog } from "./catalog";
import type { ListingIndex } from "./listing-index";
import type { Backup, BackupQuery } from "./types";

/** SQLite answers the listing's primitives synchronously (no await on the hot path); PostgreSQL cannot. */
export type MaybePromise<T> = T | Promise<T>;

/** An instance's listing version (changed by triggers whenever its order or membership may have changed) and counts. */
export interface ListingSize {
  version: number | null;
  total: number;
  /** Backups per status. */
  counts: ReadonlyMap<number, number>;
  /** The engine's own marker of when it was read (SQLite: the connection's change count). */
  mark?: number;
}

/** A Catalog without caches (the engine's own transaction, migrations, …), and the cache's primitives. */
export interface CatalogEngine extends Catalog {
  /**
   * How long a cached credential, instance or miss may be served (ms). Infinity when `changed()` sees every
   * commit (SQLite); a bound on staleness when other nodes write unseen (PostgreSQL).
   */
  readonly cacheTtlMs: number;
  /** How long a listing size may be trusted for choosing SQL over the index (the index checks versions itself). */
  readonly sizeTtlMs: number;
  /**
   * Called before every cached read: true when something may have changed since the last call (the cache drops
   * everything), false when nothing did or the engine cannot tell (then the TTLs bound staleness), undefined
   * when the cache must not be used right now (SQLite: a transaction is open on the connection).
   */
  changed(): boolean | undefined;

  /** The instance's listing version and counts (version null: it never had a backup). */
  listingSize(instanceId: string): MaybePromise<ListingSize>;
  /** An index of the instance's listing keys read in one snapshot (undefined when rows do not fit it, or the version moved). */
  buildListingIndex(instanceId: string, version: number | null): Promise<ListingIndex | undefined>;
  /** The page's rows at index positions, each checked against the index's keys (and version); undefined if stale. */
  listingRows(index: ListingIndex, positions: number[]): MaybePromise<Backup[] | undefined>;
  /** A page by SQL; `size`, when given, is the instance's exact current size (totals without a count). */
  listPage(q: BackupQuery, statuses: number[] | undefined, size?: ListingSize): MaybePromise<{ total: number; rows: Backup[] }>;
}
