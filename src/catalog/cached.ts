// The one catalogue every caller gets, over either engine (engine.ts): the read caches of credentials and
// instances (misses too), the listing sizes and the in-memory listing indexes of large instances, and the
// transaction contract. An engine says how a cached value may go stale (SQLite: `changed()` sees every commit;
// PostgreSQL: other nodes write unseen, so entries live for the engine's TTL) and this node's own writes drop
// what they may change at once.
//
// DescribeInstanceBackups on an instance with at least `listingOptions.indexThreshold` backups is answered from
// a ListingIndex (listing-index.ts): the page's positions from the index, its rows from the engine, each row
// checked against the index's keys (and, on PostgreSQL, the version read with them); a stale index is rebuilt
// once in the same request, and an instance whose index fails twice at one version is listed by SQL until it
// changes. All indexes together stay under `listingOptions.indexBudgetBytes`, least recently used going first
// (a Map in use order: an index grows as status-set arrays are added, which a size fixed at insertion misses).
//
// Transactions: the callback gets the engine's transaction, uncached; a call on this outer catalogue from inside
// it (its own continuations, tracked with an AsyncLocalStorage) throws CatalogMisuseError on both engines.
import { AsyncLocalStorage } from "node:async_hooks";
import { LRUCache } from "lru-cache";
import { Catalog, CatalogMisuseError, CatalogStats, CatalogTx } from "./catalog";
import type { CatalogEngine, ListingSize } from "./engine";
import { ListingIndex } from "./listing-index";
import { copyPolicy } from "./rows";
import { normaliseStatuses } from "./sql-ops";
import type { Backup, BackupMode, BackupQuery, ProvisionedInstance, ProvisionedState, BackupStatus, Credential, Instance, InstanceFields, StreamBase, StreamConfig, StreamProof, StreamSegment, Task, TaskFields, TaskQuery, TaskStatus } from "./types";

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

/** A cached value; null is a cached miss (unknown ids then cost no query either). */
interface Entry<T> {
  v: T | null;
}

/**
 * Keys come from callers (a SecretId, an InstanceId), so a cache is bounded by bytes as well as entries: a flood
 * of long unknown ids must not pin memory.
 */
function cache<V extends object>(max: number, maxSize: number, ttlMs: number, sizeOf: (v: V) => number): LRUCache<string, V> {
  return new LRUCache<string, V>({
    max, maxSize, sizeCalculation: (v, k) => k.length * 2 + 48 + sizeOf(v),
    ...(Number.isFinite(ttlMs) ? { ttl: ttlMs } : {}),
  });
}

/** The CatalogTx writes that change what this layer caches (credentials, instances): the only ones that do. */
const CACHED_WRITES: ReadonlySet<PropertyKey> = new Set<keyof CatalogTx>(["putCredential", "deleteCredential", "upsertInstance", "updateInstance"]);

/** The engine's transaction, noting in `wrote` whether a write of CACHED_WRITES was made through it. */
function watchCachedWrites(tx: CatalogTx, wrote: { cached: boolean }): CatalogTx {
  return new Proxy(tx, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== "function" || !CACHED_WRITES.has(prop)) return v;
      return (...args: unknown[]) => {
        wrote.cached = true;
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/**
 * A bounded cache emptied in O(1): each entry carries the generation it was stored in, and empty() starts a new
 * one, so older entries read as misses and are overwritten or evicted like any other. (lru-cache's clear() refills
 * all `max` slots whatever it holds — 540 µs for 100,000 — and so does deleting its last entry; the catalogue
 * empties its caches after every change it sees.)
 */
class GenerationCache<V extends object> {
  private generation = 0;
  private readonly lru: LRUCache<string, { g: number; v: V }>;

  constructor(max: number, maxSize: number, ttlMs: number, sizeOf: (v: V) => number) {
    this.lru = cache(max, maxSize, ttlMs, (e) => 8 + sizeOf(e.v));
  }

  get(key: string): V | undefined {
    const e = this.lru.get(key);
    return e && e.g === this.generation ? e.v : undefined;
  }

  set(key: string, v: V): void {
    this.lru.set(key, { g: this.generation, v });
  }

  /** Makes one entry a miss (without lru-cache's delete, which empties everything when it was the last). */
  delete(key: string): void {
    const e = this.lru.peek(key);
    if (e) e.g = -1;
  }

  empty(): void {
    this.generation++;
  }
}

function freezeBackup(b: Backup): void {
  Object.freeze(b.files);
  if (b.source) Object.freeze(b.source);
  Object.freeze(b);
}

/** Heap bytes per backup of a listing index (ListingIndex.bytes), for the budget check before a build. */
const INDEX_BYTES_PER_ROW = 81;

export class CachedCatalog<E extends CatalogEngine = CatalogEngine> implements Catalog {
  readonly kind: "sqlite" | "postgres";
  /** The listing index's threshold and the memory all indexes share (tests lower both). */
  readonly listingOptions = { indexThreshold: 2000, indexBudgetBytes: 64 * 1024 * 1024, pageCache: true };
  /**
   * Listing pages answered, by query, on an engine whose `changed()` sees every commit (SQLite: no TTL), dropped
   * with the other caches whenever it says the catalogue changed; never on one that cannot see other nodes'
   * writes (PostgreSQL), where a page would be stale for its TTL. Undefined there.
   */
  /** Counts the changes usable() has seen. */
  private epoch = 0;
  private readonly pages: GenerationCache<{ total: number; rows: Backup[] }> | undefined;
  private readonly scope = new AsyncLocalStorage<{ open: boolean }>();
  private openTransactions = 0;
  private readonly credentialCache: GenerationCache<Entry<Credential>>;
  private readonly instanceCache: GenerationCache<Entry<Instance>>;
  private readonly sizes: GenerationCache<ListingSize>;
  /** Instances whose index failed at a version, and how often: SQL after two, until the version changes. */
  private readonly failures: LRUCache<string, { version: number | null; n: number }>;
  /** Least recently used first. */
  private readonly indexes = new Map<string, ListingIndex>();
  /** Builds in flight, so fifty requests arriving together build one index. */
  private readonly building = new Map<string, Promise<ListingIndex | undefined>>();
  private readonly readCredential: (secretId: string) => Promise<Credential | undefined>;
  private readonly readInstance: (instanceId: string) => Promise<Instance | undefined>;

  constructor(readonly engine: E) {
    this.kind = engine.kind;
    this.credentialCache = new GenerationCache(10_000, 4 << 20, engine.cacheTtlMs, (e) => roughSize(e.v));
    this.instanceCache = new GenerationCache(100_000, 32 << 20, engine.cacheTtlMs, (e) => roughSize(e.v));
    this.sizes = new GenerationCache(100_000, 16 << 20, engine.sizeTtlMs, (s) => 64 + s.counts.size * 32);
    this.failures = cache(10_000, 1 << 20, Infinity, () => 32);
    this.pages = engine.cacheTtlMs === Infinity ? new GenerationCache(10_000, 32 << 20, Infinity, (p) => roughSize(p.rows)) : undefined;
    this.readCredential = (id) => engine.credential(id);
    this.readInstance = (id) => engine.instance(id);
  }

  // --- the transaction contract ---

  /** Refuses a call made from inside one of this catalogue's open transactions. */
  private guard(): void {
    if (this.openTransactions > 0 && this.scope.getStore()?.open) {
      throw new CatalogMisuseError("the catalogue was called inside its own transaction(): use the transaction's tx for every call in the callback");
    }
  }

  async transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T> {
    this.guard();
    const token = { open: true };
    this.openTransactions++;
    const wrote = { cached: false };
    try {
      return await this.scope.run(token, () => this.engine.transaction((tx) => fn(watchCachedWrites(tx, wrote))));
    } finally {
      token.open = false;
      // Outside a transaction nothing needs the scope: disable() turns Node's promise hooks off again (run()
      // turns them on). Left on, every promise in the process pays for the hook, about a fifth of the API's
      // throughput on SQLite. Continuations that outlive the transaction find their token closed.
      if (--this.openTransactions === 0) this.scope.disable();
      // What the transaction changed may be cached: dropped when it wrote credentials or instances (a backup's
      // own transactions write neither, and the next request then still finds its credential and instance here).
      if (wrote.cached) this.forget();
    }
  }

  // --- cache upkeep ---

  /** Whether the caches may be used now, after dropping everything when the engine saw a change. */
  private usable(): boolean {
    const changed = this.engine.changed();
    if (changed === undefined) return false;
    if (changed) {
      this.epoch++;
      this.credentialCache.empty();
      this.instanceCache.empty();
      this.sizes.empty();
      this.pages?.empty();
    }
    return true;
  }

  /** Drops cached credentials and instances after this node changed some. */
  private forget(): void {
    this.credentialCache.empty();
    this.instanceCache.empty();
  }

  private async written<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } finally {
      this.forget();
    }
  }

  // --- credentials and instances (cached) ---

  /** A read the cache missed: the engine's answer, cached (a miss as null too) when the cache is usable. */
  private async miss<T>(cache: GenerationCache<Entry<T>>, key: string, usable: boolean, read: (key: string) => Promise<T | undefined>): Promise<T | null> {
    const e = { v: (await read(key)) ?? null };
    if (usable) cache.set(key, e);
    return e.v;
  }

  // A hit costs no await beyond the method's own: these are on every request's path.

  async credential(secretId: string): Promise<Credential | undefined> {
    this.guard();
    const usable = this.usable();
    const hit = usable ? this.credentialCache.get(secretId) : undefined;
    const c = hit ? hit.v : await this.miss(this.credentialCache, secretId, usable, this.readCredential);
    return c ? { ...c, ...(c.policy ? { policy: copyPolicy(c.policy) } : {}) } : undefined;
  }

  async instance(instanceId: string): Promise<Instance | undefined> {
    this.guard();
    const usable = this.usable();
    const hit = usable ? this.instanceCache.get(instanceId) : undefined;
    const i = hit ? hit.v : await this.miss(this.instanceCache, instanceId, usable, this.readInstance);
    return i ? { ...i, autoBackupWeekDays: [...i.autoBackupWeekDays] } : undefined;
  }

  async putCredential(c: Credential): Promise<void> {
    this.guard();
    return this.written(this.engine.putCredential(c));
  }

  async deleteCredential(secretId: string): Promise<boolean> {
    this.guard();
    return this.written(this.engine.deleteCredential(secretId));
  }

  async upsertInstance(i: Instance): Promise<void> {
    this.guard();
    return this.written(this.engine.upsertInstance(i));
  }

  async updateInstance(instanceId: string, fields: InstanceFields): Promise<void> {
    this.guard();
    return this.written(this.engine.updateInstance(instanceId, fields));
  }

  // --- the listing ---

  async listBackups(q: BackupQuery): Promise<{ total: number; rows: Backup[] }> {
    this.guard();
    const statuses = normaliseStatuses(q.statuses);
    if (!this.usable()) return await this.engine.listPage(q, statuses);
    if (!this.pages || !this.listingOptions.pageCache) return await this.listUncached(q, statuses);
    const key = `${q.instanceId}\n${q.limit}\n${q.offset}\n${q.begin ?? ""}\n${q.end ?? ""}\n${statuses?.join(",") ?? "*"}`;
    let page = this.pages.get(key);
    if (!page) {
      const epoch = this.epoch;
      page = await this.listUncached(q, statuses);
      // Kept only if no change was seen while it was read (it might straddle one otherwise).
      if (this.usable() && this.epoch === epoch) {
        // Cached records are frozen, so no caller can change what the next one is served (and a renderer may
        // memoise by record: bench/pipeline.ts, src/actions/format.ts). Callers get their own array.
        for (const b of page.rows) freezeBackup(b);
        this.pages.set(key, page);
      }
    }
    return { total: page.total, rows: page.rows.slice() };
  }

  private async listUncached(q: BackupQuery, statuses: number[] | undefined): Promise<{ total: number; rows: Backup[] }> {
    let size: ListingSize | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      let known = this.sizes.get(q.instanceId);
      if (!known) {
        const read = this.engine.listingSize(q.instanceId);
        known = read instanceof Promise ? await read : read;
        this.sizes.set(q.instanceId, known);
      }
      size = known;
      if (known.total < this.listingOptions.indexThreshold || known.total * INDEX_BYTES_PER_ROW > this.listingOptions.indexBudgetBytes) break;
      const have = this.indexes.get(q.instanceId);
      const index = have && have.version === known.version ? have : await this.buildIndex(q.instanceId, known);
      if (!index) break;
      const { total, positions } = index.pick(q.offset, q.limit, q.begin, q.end, statuses);
      const read = this.engine.listingRows(index, positions);
      const rows = read instanceof Promise ? await read : read;
      if (rows) {
        this.indexes.delete(q.instanceId); // most recently used last
        this.indexes.set(q.instanceId, index);
        return { total, rows };
      }
      // A row changed under the index (a commit raced this request, another node wrote, VACUUM renumbered
      // rowids): forget it, and the size that vouched for it.
      this.indexes.delete(q.instanceId);
      this.sizes.delete(q.instanceId);
      this.indexFailed(q.instanceId, index.version);
      size = undefined;
    }
    const page = this.engine.listPage(q, statuses, size);
    return page instanceof Promise ? await page : page;
  }

  /** Whether the instance is listed from an in-memory index right now (tests, diagnostics). */
  hasListingIndex(instanceId: string): boolean {
    return this.indexes.has(instanceId);
  }

  private indexFailed(instanceId: string, version: number | null): void {
    const f = this.failures.get(instanceId);
    if (f && f.version === version) f.n++;
    else this.failures.set(instanceId, { version, n: 1 });
  }

  /** The instance's index at the size's version, built from one snapshot and fitted into the budget. */
  private buildIndex(instanceId: string, size: ListingSize): Promise<ListingIndex | undefined> {
    let p = this.building.get(instanceId);
    if (p) return p;
    p = (async () => {
      this.indexes.delete(instanceId);
      const failed = this.failures.get(instanceId);
      if (failed && failed.version === size.version && failed.n >= 2) return undefined;
      const built = await this.engine.buildListingIndex(instanceId, size.version);
      if (!built) {
        this.indexFailed(instanceId, size.version);
        return undefined;
      }
      // The index is newer than the size that asked for it: read the size again next time.
      if (built.version !== size.version) this.sizes.delete(instanceId);
      // Status-set arrays grow after an index is built, so the sum is taken afresh (there are few indexes).
      const budget = this.listingOptions.indexBudgetBytes;
      let used = 0;
      for (const index of this.indexes.values()) used += index.bytes();
      for (const [id, index] of this.indexes) {
        if (used + built.bytes() <= budget) break;
        used -= index.bytes();
        this.indexes.delete(id);
      }
      this.indexes.set(instanceId, built);
      return built;
    })().finally(() => this.building.delete(instanceId));
    this.building.set(instanceId, p);
    return p;
  }

  // --- everything else: the engine's, behind the transaction contract ---

  describe(): string {
    return this.engine.describe();
  }

  async migrate(): Promise<number[]> {
    this.guard();
    return this.engine.migrate();
  }

  async pendingMigrations(): Promise<number[]> {
    this.guard();
    return this.engine.pendingMigrations();
  }

  async ping(): Promise<void> {
    this.guard();
    return this.engine.ping();
  }

  async stats(): Promise<CatalogStats> {
    this.guard();
    return this.engine.stats();
  }

  async close(): Promise<void> {
    this.guard();
    return this.engine.close();
  }

  async credentials(accountId?: string): Promise<Credential[]> {
    this.guard();
    return this.engine.credentials(accountId);
  }

  async credentialCount(): Promise<number> {
    this.guard();
    return this.engine.credentialCount();
  }

  async instances(accountId?: string): Promise<Instance[]> {
    this.guard();
    return this.engine.instances(accountId);
  }

  async lockInstance(instanceId: string): Promise<Instance | undefined> {
    this.guard();
    return this.engine.lockInstance(instanceId);
  }

  async backup(backupId: string): Promise<Backup | undefined> {
    this.guard();
    return this.engine.backup(backupId);
  }

  async insertBackup(b: Backup): Promise<void> {
    this.guard();
    return this.engine.insertBackup(b);
  }

  async upsertBackup(b: Backup): Promise<void> {
    this.guard();
    return this.engine.upsertBackup(b);
  }

  async updateBackup(backupId: string, fields: Partial<Omit<Backup, "backupId" | "instanceId">>): Promise<void> {
    this.guard();
    return this.engine.updateBackup(backupId, fields);
  }

  async deleteBackupRecord(backupId: string): Promise<void> {
    this.guard();
    return this.engine.deleteBackupRecord(backupId);
  }

  async backupsOfInstance(instanceId: string): Promise<Backup[]> {
    this.guard();
    return this.engine.backupsOfInstance(instanceId);
  }

  async backupsInStatus(status: BackupStatus): Promise<Backup[]> {
    this.guard();
    return this.engine.backupsInStatus(status);
  }

  async lockedBackups(): Promise<Backup[]> {
    this.guard();
    return this.engine.lockedBackups();
  }

  async expiredBackups(now: number, limit?: number): Promise<Backup[]> {
    this.guard();
    return this.engine.expiredBackups(now, limit);
  }

  async purgeRetired(before: number): Promise<number> {
    this.guard();
    return this.engine.purgeRetired(before);
  }

  async lockBackup(backupId: string): Promise<boolean> {
    this.guard();
    return this.engine.lockBackup(backupId);
  }

  async transitionBackup(backupId: string, from: readonly BackupStatus[], to: BackupStatus, fields?: Partial<Omit<Backup, "backupId" | "instanceId" | "status">>, locked?: number): Promise<boolean> {
    this.guard();
    return this.engine.transitionBackup(backupId, from, to, fields, locked);
  }

  async insertTask(t: Omit<Task, "taskId">): Promise<number> {
    this.guard();
    return this.engine.insertTask(t);
  }

  async task(taskId: number): Promise<Task | undefined> {
    this.guard();
    return this.engine.task(taskId);
  }

  async updateTask(taskId: number, fields: TaskFields): Promise<void> {
    this.guard();
    return this.engine.updateTask(taskId, fields);
  }

  async updateOwnTask(taskId: number, nodeId: string, fields: TaskFields): Promise<boolean> {
    this.guard();
    return this.engine.updateOwnTask(taskId, nodeId, fields);
  }

  async tasksInStatus(statuses: TaskStatus[]): Promise<Task[]> {
    this.guard();
    return this.engine.tasksInStatus(statuses);
  }

  async activeTasks(instanceId: string, taskTypes: readonly string[]): Promise<Task[]> {
    this.guard();
    return this.engine.activeTasks(instanceId, taskTypes);
  }

  async listTasks(q: TaskQuery): Promise<{ total: number; rows: Array<Task & { instanceName: string }> }> {
    this.guard();
    return this.engine.listTasks(q);
  }

  async claimTask(nodeId: string, taskTypes: readonly string[], leaseUntil: number, now: number): Promise<Task | undefined> {
    this.guard();
    return this.engine.claimTask(nodeId, taskTypes, leaseUntil, now);
  }

  async claimTaskById(taskId: number, nodeId: string, leaseUntil: number, now: number): Promise<boolean> {
    this.guard();
    return this.engine.claimTaskById(taskId, nodeId, leaseUntil, now);
  }

  async renewLease(taskId: number, nodeId: string, leaseUntil: number): Promise<boolean> {
    this.guard();
    return this.engine.renewLease(taskId, nodeId, leaseUntil);
  }

  async takeOver(taskId: number, previousOwner: string | undefined, nodeId: string, leaseUntil: number, now: number, deadOwner?: string): Promise<boolean> {
    this.guard();
    return this.engine.takeOver(taskId, previousOwner, nodeId, leaseUntil, now, deadOwner);
  }

  async setting(name: string): Promise<string | undefined> {
    this.guard();
    return this.engine.setting(name);
  }

  async putSetting(name: string, value: string): Promise<void> {
    this.guard();
    return this.engine.putSetting(name, value);
  }

  async settingOnce(name: string, value: string): Promise<string> {
    this.guard();
    return this.engine.settingOnce(name, value);
  }

  // --- the second-level backup tables (not cached: each call goes to the engine) ---

  async streamConfig(instanceId: string): Promise<StreamConfig | undefined> {
    this.guard();
    return this.engine.streamConfig(instanceId);
  }

  async streamConfigs(mode?: BackupMode): Promise<StreamConfig[]> {
    this.guard();
    return this.engine.streamConfigs(mode);
  }

  async setBackupMode(instanceId: string, mode: BackupMode, now: number): Promise<StreamConfig> {
    this.guard();
    return this.engine.setBackupMode(instanceId, mode, now);
  }

  async lastKeyMove(instanceId: string): Promise<number | undefined> {
    this.guard();
    return this.engine.lastKeyMove(instanceId);
  }

  async restartStream(instanceId: string, nodeId: string, now: number): Promise<boolean> {
    this.guard();
    return this.engine.restartStream(instanceId, nodeId, now);
  }

  async setStreamStatus(instanceId: string, nodeId: string, status: string): Promise<void> {
    this.guard();
    return this.engine.setStreamStatus(instanceId, nodeId, status);
  }

  async claimStream(instanceId: string, nodeId: string, leaseUntil: number, now: number): Promise<boolean> {
    this.guard();
    return this.engine.claimStream(instanceId, nodeId, leaseUntil, now);
  }

  async releaseStream(instanceId: string, nodeId: string): Promise<void> {
    this.guard();
    return this.engine.releaseStream(instanceId, nodeId);
  }

  async insertStreamSegment(seg: Omit<StreamSegment, "segmentId">): Promise<number> {
    this.guard();
    return this.engine.insertStreamSegment(seg);
  }

  async extendStreamSegment(segmentId: number, fields: Pick<StreamSegment, "endOffset" | "endDb" | "toMs" | "samples">): Promise<void> {
    this.guard();
    return this.engine.extendStreamSegment(segmentId, fields);
  }

  async streamSegments(instanceId: string, shard: number, fromMs?: number, toMs?: number): Promise<StreamSegment[]> {
    this.guard();
    return this.engine.streamSegments(instanceId, shard, fromMs, toMs);
  }

  async lastStreamSegment(instanceId: string, shard: number): Promise<StreamSegment | undefined> {
    this.guard();
    return this.engine.lastStreamSegment(instanceId, shard);
  }

  async insertStreamBase(b: StreamBase): Promise<void> {
    this.guard();
    return this.engine.insertStreamBase(b);
  }

  async streamBases(instanceId: string, shard?: number): Promise<StreamBase[]> {
    this.guard();
    return this.engine.streamBases(instanceId, shard);
  }

  async setStreamBaseProof(backupId: string, proof: StreamProof): Promise<void> {
    this.guard();
    return this.engine.setStreamBaseProof(backupId, proof);
  }

  async deleteStreamSegment(segmentId: number): Promise<void> {
    this.guard();
    return this.engine.deleteStreamSegment(segmentId);
  }

  async deleteStreamBase(backupId: string): Promise<void> {
    this.guard();
    return this.engine.deleteStreamBase(backupId);
  }

  async setStreamRetention(instanceId: string, days: number): Promise<void> {
    this.guard();
    return this.engine.setStreamRetention(instanceId, days);
  }

  async streamStats(instanceId: string, shard: number): Promise<{ segments: number; bytes: number; fromMs?: number; toMs?: number }> {
    this.guard();
    return this.engine.streamStats(instanceId, shard);
  }

  async insertProvisioned(p: ProvisionedInstance): Promise<boolean> {
    this.guard();
    return this.engine.insertProvisioned(p);
  }

  async provisioned(instanceId: string): Promise<ProvisionedInstance | undefined> {
    this.guard();
    return this.engine.provisioned(instanceId);
  }

  async provisionedInstances(owner?: string): Promise<ProvisionedInstance[]> {
    this.guard();
    return this.engine.provisionedInstances(owner);
  }

  async setProvisionedState(instanceId: string, from: readonly ProvisionedState[], state: ProvisionedState, owner?: string): Promise<boolean> {
    this.guard();
    return this.engine.setProvisionedState(instanceId, from, state, owner);
  }

  async deleteProvisioned(instanceId: string): Promise<void> {
    this.guard();
    return this.engine.deleteProvisioned(instanceId);
  }
}
