// A read cache bounded by entries AND by bytes. Keys come from callers (a SecretId, an InstanceId), so an entry
// count alone lets a client that sends megabyte-long keys grow the heap by megabytes per request; the byte
// bound makes what any client can pin fixed. The least recently used entry goes first (lru-cache).
import { LRUCache } from "lru-cache";

export class BoundedCache<K extends string, V> {
  private readonly lru: LRUCache<K, { value: V }>;

  constructor(
    maxEntries: number,
    maxBytes: number,
    /** Approximate heap bytes of a value (the key is counted apart). */
    sizeOf: (value: V) => number = () => 64,
  ) {
    // Two bytes per UTF-16 unit plus the slot; an entry larger than the whole budget is not kept at all.
    this.lru = new LRUCache<K, { value: V }>({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: (e, key) => Math.max(1, Math.ceil(key.length * 2 + 48 + sizeOf(e.value))),
    });
  }

  get(key: K): V | undefined {
    return this.lru.get(key)?.value;
  }

  set(key: K, value: V): void {
    // Boxed: lru-cache keeps no undefined values, and a cached "none" (null) is a value here.
    this.lru.set(key, { value });
  }

  delete(key: K): void {
    this.lru.delete(key);
  }

  clear(): void {
    this.lru.clear();
  }

  get size(): number {
    return this.lru.size;
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }
}

/** A rough heap size of a small JSON-like value (strings at two bytes a unit). */
export function roughSize(v: unknown): number {
  if (v === null || v === undefined) return 8;
  if (typeof v === "string") return 16 + v.length * 2;
  if (typeof v === "number" || typeof v === "boolean") return 8;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + roughSize(x), 16);
  if (typeof v === "object") {
    let n = 16;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) n += 16 + k.length * 2 + roughSize(x);
    return n;
  }
  return 16;
}
