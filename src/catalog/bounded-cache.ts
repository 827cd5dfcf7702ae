// A read cache bounded by entries AND by bytes. Keys come from callers (a SecretId, an InstanceId), so an entry
// count alone lets a client that sends megabyte-long keys grow the heap by megabytes per request; the byte
// bound makes what any client can pin fixed. Oldest entries go first (insertion order; a hit does not refresh,
// which keeps reads free of writes).

export class BoundedCache<K extends string, V> {
  private readonly map = new Map<K, { value: V; bytes: number }>();
  private used = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
    /** Approximate heap bytes of a value (the key is counted apart). */
    private readonly sizeOf: (value: V) => number = () => 64,
  ) {}

  get(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  set(key: K, value: V): void {
    // Two bytes per UTF-16 unit plus the Map slot; an entry larger than the whole budget is not kept at all.
    const bytes = key.length * 2 + 48 + this.sizeOf(value);
    if (bytes > this.maxBytes) return;
    const old = this.map.get(key);
    if (old) {
      this.used -= old.bytes;
      this.map.delete(key);
    }
    while (this.map.size > 0 && (this.map.size >= this.maxEntries || this.used + bytes > this.maxBytes)) {
      const [oldestKey, oldest] = this.map.entries().next().value as [K, { bytes: number }];
      this.map.delete(oldestKey);
      this.used -= oldest.bytes;
    }
    this.map.set(key, { value, bytes });
    this.used += bytes;
  }

  delete(key: K): void {
    const old = this.map.get(key);
    if (!old) return;
    this.used -= old.bytes;
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.used = 0;
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.used;
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
