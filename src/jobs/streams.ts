// Second-level backup as a job: for every instance in SecondLevelBackup mode one node holds the stream's lease
// (stream_config.owner/lease_until, claimed and renewed by one conditional write each, like a task's lease) and
// keeps a replica link open to its master. Another node takes the stream over once the lease lapses, continuing
// from the durable point in the catalogue (`PSYNC <replid> <offset+1>`), or from a new base when the master's
// backlog no longer holds it.
//
// A session: the sampler (offset, time pairs) starts first, then the link. A full resync's RDB becomes a base: a
// backup listed like any other (BackupType "1", remark "second-level backup base") with a stream_bases row giving
// its (replid, offset), committed in one transaction. Units go to the segment log (group commit <= 1 s); the
// durable offset is what the link acknowledges. A dropped link is reopened from the durable point (at once if it
// had been streaming, else after a second), while the sampler keeps the timeline going, every 100 ms while the
// link is down or behind.
//
// A cluster is streamed under the same ONE lease per instance: every slot-owning master gets its own session
// (link + sampler + segment log), numbered as cluster backups number shards (masters ordered by first slot).
// A session whose link drops re-reads the topology (through the registered node, else any node seen before)
// and reconnects to its shard's master of now: after a failover that is the promoted replica, which answers
// `PSYNC <old replid> <offset+1>` with `+CONTINUE <new replid>` (psync2), so the stream goes on without a gap.
import crypto from "node:crypto";
import type { Catalog } from "../catalog/catalog";
import type { BackupMode, Instance, StoredFile, StreamConfig, StreamSegment } from "../catalog/types";
import type { Logger } from "../log";
import type { Clock } from "../config";
import { fileTypeFor, serverOfType } from "../protocol/instance-types";
import type { RedisEndpoint } from "../redis/client/resp";
import { parseEndpointUrl } from "../redis/client/url";
import { discoverShards } from "../redis/capture/capture";
import type { BackupDigests } from "./digests";
import { ReplicaLink, ResumePoint } from "../redis/stream/replica";
import { OffsetSampler } from "../redis/stream/sampler";
import { SegmentLog } from "../redis/stream/segments";
import type { SegmentMeta } from "../records";
import type { BlobStore, BlobWriter } from "../storage/blob-store";
import { blobKey, DAY_MS } from "./backups";
import { TASK } from "./tasks";
import { baseDue, BaseScheduleOptions, ScheduledBase, takeScheduledBase } from "./stream-bases";

export interface StreamJobsOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  logger: Logger;
  nodeId: string;
  /** How long a stream's lease holds without renewal. */
  leaseMs: number;
  /** How often leases are claimed and renewed. Default 1000 ms. */
  pollMs?: number;
  /** Group commit interval (the RPO on local storage). Default 1000 ms. */
  flushMs?: number;
  /** Delay before a dropped link is reopened. Default 1000 ms. */
  retryMs?: number;
  /** Computes a base's data-set digest from its stored file, as for any backup (absent: `--capture-digest off`). */
  digests?: BackupDigests;
  /** When new bases are taken (jobs/stream-bases.ts); absent: no scheduled bases. */
  bases?: BaseScheduleOptions;
  /** The redis-server the proof run starts (default: redis-server on PATH). */
  proofRedisServer?: string;
  /** Where proof runs make their scratch directories (under the data dir); absent: the OS temp dir. */
  scratchDir?: string;
  /** Hosts a cluster may announce nodes on besides the registered one (--cluster-hosts). */
  clusterHosts?: readonly string[];
}

/** How often a cluster's stream re-reads the topology for a changed number of masters. */
const MASTERS_CHECK_MS = 2_000;

/** After keys last moved between a cluster's masters, this long without another move before every shard re-bases. */
export const DEFAULT_REBASE_AFTER_MOVES_MS = 10_000;

/** A link that streamed this long before it dropped is reopened after QUICK_RETRY_MS, not the retry delay. */
const HEALTHY_LINK_MS = 5_000;
const QUICK_RETRY_MS = 100;

/** Samples kept on one idle segment before a new row is started. */
const MAX_SAMPLES_PER_ROW = 600;

export function segmentKey(instanceId: string, shard: number, startOffset: number, endOffset: number): string {
  return `streams/${instanceId}/shard-${shard}/${String(startOffset).padStart(16, "0")}-${endOffset}.seg.gz`;
}

export class StreamJobs {
  private readonly sessions = new Map<string, InstanceStream>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;

  constructor(readonly o: StreamJobsOptions) {}

  /** Claims and renews stream leases every poll. */
  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => void this.tick(), this.o.pollMs ?? 1000);
    void this.tick();
  }

  /** One pass: take free or lapsed streams, renew ours, end sessions whose lease or mode is gone. */
  tick(): Promise<void> {
    this.ticking ??= this.pass().catch((err: Error) => this.o.logger.warn({ err: err.message }, "stream lease pass failed")).finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async pass(): Promise<void> {
    if (this.stopped) return;
    const { catalog, clock, nodeId, leaseMs } = this.o;
    const on = new Map((await catalog.streamConfigs("SecondLevelBackup")).map((c) => [c.instanceId, c]));
    for (const [id, s] of this.sessions) {
      if (!on.has(id) || !(await catalog.claimStream(id, nodeId, clock.now() + leaseMs, clock.now()))) {
        this.sessions.delete(id);
        await s.stop();
      }
    }
    if (this.o.bases) for (const s of this.sessions.values()) for (const shard of s.shards) void shard.maybeBase();
    for (const c of on.values()) {
      if (this.stopped || this.sessions.has(c.instanceId)) continue;
      if (c.owner && c.owner !== nodeId && (c.leaseUntil ?? 0) >= clock.now()) continue;
      const instance = await catalog.instance(c.instanceId);
      if (!instance?.redisUrl || instance.deletedAt !== undefined) continue;
      if (!(await catalog.claimStream(c.instanceId, nodeId, clock.now() + leaseMs, clock.now()))) continue;
      const s = new InstanceStream(this.o, instance, c);
      this.sessions.set(c.instanceId, s);
      s.start();
    }
  }

  /** The session streaming an instance (its first shard) on this node (tests, metrics). */
  session(instanceId: string): StreamSession | undefined {
    return this.sessions.get(instanceId)?.shards[0];
  }

  /** Every shard's session of an instance streamed on this node, in shard order ([] when not streamed here). */
  shardSessions(instanceId: string): readonly StreamSession[] {
    return this.sessions.get(instanceId)?.shards ?? [];
  }

  /**
   * ModifyInstanceBackupMode: records the mode and a task that is done at once (the stream itself starts on
   * the next lease pass of some node). Returns the task id.
   */
  async setMode(instance: Instance, mode: BackupMode): Promise<number> {
    const now = this.o.clock.now();
    const taskId = await this.o.catalog.transaction(async (tx) => {
      const before = await tx.streamConfig(instance.instanceId);
      const after = await tx.setBackupMode(instance.instanceId, mode, now);
      const message = before?.mode === mode ? `backup mode was already ${mode}` : `backup mode set to ${mode}${after.since !== undefined && mode === "SecondLevelBackup" ? "; the stream starts within a second" : ""}`;
      return tx.insertTask({
        instanceId: instance.instanceId, accountId: instance.accountId, taskType: TASK.modifyBackupMode, status: "succeed", progress: 100,
        startTime: now, endTime: now, message,
      });
    });
    void this.tick();
    return taskId;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => s.stop()));
  }
}

/**
 * One instance streamed on this node under its lease: one session per shard (one for a standalone master). The
 * topology is read first (INFO cluster, CLUSTER NODES, the host allow-list); until it can be read it is retried.
 */
export class InstanceStream {
  shards: StreamSession[] = [];
  private stopped = false;
  private opening: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly seed: RedisEndpoint;
  /** Every node seen in a topology read (masters and replicas): where to read it when the seed is down. */
  private known: RedisEndpoint[] = [];
  private watch: NodeJS.Timeout | undefined;
  /** The restart in progress after the number of masters changed (reshape), one at a time. */
  private reshaping: Promise<void> | undefined;

  constructor(private readonly o: StreamJobsOptions, private readonly instance: Instance, private readonly config: StreamConfig) {
    this.seed = parseEndpointUrl(instance.redisUrl!); // a Sentinel URL is refused here: ModifyInstanceBackupMode refuses it
  }

  start(): void {
    this.opening = this.open();
  }

  private async open(fresh = false): Promise<void> {
    const log = this.o.logger.child({ instanceId: this.instance.instanceId, component: "stream" });
    while (!this.stopped) {
      try {
        const t = await this.topology();
        if (this.stopped) return;
        if (!t.cluster) {
          this.shards = [new StreamSession(this.o, this.instance, this.config, 0, this.seed, async () => this.seed)];
        } else {
          if (this.instance.shardNum !== t.masters.length) await this.o.catalog.updateInstance(this.instance.instanceId, { shardNum: t.masters.length }).catch(() => undefined);
          this.shards = t.masters.map((ep, i) => new StreamSession(this.o, this.instance, this.config, i, ep, () => this.masterOf(i, t.masters.length), t.masters.length, fresh));
          for (const [i, s] of this.shards.entries()) {
            s.slots = t.slots[i];
            s.readSlots = async () => {
              const now = await this.topology();
              return now.slots.length === t.masters.length ? now.slots[i] : undefined;
            };
          }
          this.watchMasters(t.masters.length);
          // A slot migration shows as RESTORE-ASKING in the importing master's stream only; every shard re-bases.
          // A move recorded before this node took the stream counts too: a shard whose newest base is older
          // re-bases (maybeBase reads the newest base before it decides).
          const lastMove = await this.o.catalog.lastKeyMove(this.instance.instanceId).catch(() => undefined);
          if (lastMove !== undefined) for (const s of this.shards) s.keysMoved(lastMove);
          for (const s of this.shards) {
            s.onKeyMoves = (at) => {
              log.info({ at }, "stream: keys moved between the cluster's masters (slot migration); every shard takes a new base once they stop");
              for (const x of this.shards) x.keysMoved(at);
            };
          }
        }
        for (const s of this.shards) s.start();
        return;
      } catch (err) {
        log.warn({ err: (err as Error).message }, "stream: the topology could not be read; retrying");
        await this.o.catalog.setStreamStatus(this.instance.instanceId, this.o.nodeId, `reading the topology: ${(err as Error).message}`).catch(() => undefined);
        await new Promise<void>((r) => {
          this.wake = r;
          setTimeout(r, this.o.retryMs ?? 1000);
        });
      }
    }
  }

  /** The topology through the registered node, else through any node seen before (the seed may be the dead master). */
  private async topology(): Promise<{ cluster: boolean; masters: RedisEndpoint[]; slots: Array<Array<[number, number]>> }> {
    const opts = { allowedHosts: this.o.clusterHosts ?? [], registeredHosts: [this.seed.host] };
    let first: Error | undefined;
    for (const via of [this.seed, ...this.known.filter((k) => k.host !== this.seed.host || k.port !== this.seed.port)]) {
      try {
        const t = await discoverShards(via, 10_000, opts);
        if (t.cluster) this.known = t.shards.flatMap((s) => [s.endpoint, ...s.replicas.map((r) => r.endpoint)]);
        return { cluster: t.cluster, masters: t.masters, slots: t.shards.map((s) => s.slots) };
      } catch (err) {
        first ??= err as Error;
      }
    }
    throw first ?? new Error("no node to read the topology from");
  }

  /** Shard i's master now (after a failover: the promoted replica). A changed number of masters restarts the stream. */
  private async masterOf(i: number, count: number): Promise<RedisEndpoint> {
    const t = await this.topology();
    if (t.masters.length !== count) {
      void this.reshape(count, t.masters.length);
      throw new Error(`the cluster now has ${t.masters.length} masters, the stream ${count}: the stream starts afresh`);
    }
    return t.masters[i]!;
  }

  /** Reads the topology every MASTERS_CHECK_MS: a changed number of masters restarts the stream (reshape). */
  private watchMasters(count: number): void {
    clearInterval(this.watch);
    this.watch = setInterval(() => {
      if (this.stopped || this.reshaping) return;
      this.topology().then((t) => {
        if (t.cluster && t.masters.length !== count) void this.reshape(count, t.masters.length);
      }, () => undefined); // unreadable now: the shards' own links report their trouble
    }, MASTERS_CHECK_MS);
    this.watch.unref();
  }

  /**
   * The cluster gained or lost a master: shards are numbered by slot order, so every shard may now be another
   * master. The stream starts afresh (decision): `since` and the epoch move to now (seconds before it are no
   * longer restorable to a second; its bases stay listed as backups), and every shard takes a new base by a full
   * resync, whatever its master would continue.
   */
  private reshape(from: number, to: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.reshaping ??= this.restartAfresh(from, to).finally(() => (this.reshaping = undefined));
    return this.reshaping;
  }

  private async restartAfresh(from: number, to: number): Promise<void> {
    const log = this.o.logger.child({ instanceId: this.instance.instanceId, component: "stream" });
    try {
      log.warn({ from, to }, "stream: the cluster's number of masters changed; second-level backup starts afresh (new bases on every shard; earlier seconds are no longer restorable)");
      clearInterval(this.watch);
      await this.opening;
      const old = this.shards;
      this.shards = [];
      await Promise.all(old.map((s) => s.stop()));
      if (this.stopped) return;
      if (!(await this.o.catalog.restartStream(this.instance.instanceId, this.o.nodeId, this.o.clock.now()))) return; // the lease or the mode went
      this.opening = this.open(true);
      await this.opening;
    } catch (err) {
      // The shards are stopped already: try the whole restart again (the catalogue may have been unwritable).
      log.warn({ err: (err as Error).message }, "stream: starting afresh failed; trying again");
      setTimeout(() => void this.reshape(from, to), this.o.retryMs ?? 1000).unref();
    }
  }

  /** Ends every shard's session, then releases the lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    clearInterval(this.watch);
    await this.reshaping;
    await this.opening;
    await Promise.all(this.shards.map((s) => s.stop()));
    await this.o.catalog.releaseStream(this.instance.instanceId, this.o.nodeId).catch(() => undefined);
  }
}

/** One shard's stream (a standalone master: shard 0) on this node. */
export class StreamSession {
  private link: ReplicaLink | undefined;
  private log: SegmentLog | undefined;
  private sampler: OffsetSampler | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Ends the wait for the current link (a closed link reports nothing itself). */
  private endLink: ((e: Error) => void) | undefined;
  private last: StreamSegment | undefined;
  private ep: RedisEndpoint;
  private readonly startedAt: number;
  /** Samples taken before the segment log exists (while the base streams). */
  private early: Array<[number, number]> = [];
  /** Full resyncs (bases) this session took; tests and `pitr status` read it. */
  bases = 0;
  reconnects = 0;
  lastError: string | undefined;
  /** The sampler's newest (offset, time) and when it arrived on this node's clock (metrics: the lag). */
  lastSample: { offset: number; ms: number; receivedAt: number } | undefined;
  /** The newest received time of a sample at or below the durable offset (metrics: lag in seconds). */
  private durableSeenAt: number | undefined;
  private readonly recentSamples: Array<{ offset: number; receivedAt: number }> = [];
  /** The scheduled base in progress (one at a time), and the last one taken. */
  private basing: Promise<ScheduledBase | undefined> | undefined;
  lastScheduled: ScheduledBase | undefined;
  private newestBaseAt: number | undefined;
  /** True while the replication link is streaming (metrics: crs_backup_stream_up). */
  streaming = false;
  /** A cluster shard's slot ranges as last read (recorded with each base; a cluster-shaped clone assigns them). */
  slots: Array<[number, number]> | undefined;
  /** This shard's slot ranges read again, just before a base is recorded (undefined: the cluster changed shape). */
  readSlots: (() => Promise<Array<[number, number]> | undefined>) | undefined;
  /** The stream runs behind the master (units arrive late): the sampler samples faster. */
  private behind = false;
  /** When keys last moved between the cluster's masters as seen by any shard's stream (a slot migration). */
  private movedAt: number | undefined;
  /** Told when this shard's stream records a segment holding moved keys (InstanceStream tells every shard). */
  onKeyMoves: ((at: number) => void) | undefined;

  constructor(private readonly o: StreamJobsOptions, private readonly instance: Instance, readonly config: StreamConfig, readonly shard = 0,
    ep: RedisEndpoint = parseEndpointUrl(instance.redisUrl!), private readonly locate: () => Promise<RedisEndpoint> = async () => ep, private readonly shardCount = 1,
    /** Start with a full resync (a new base), not from the catalogue's last segment (the stream started afresh). */
    private fresh = false) {
    this.ep = ep;
    this.startedAt = o.clock.now();
  }

  get durableOffset(): number | undefined {
    return this.log?.durable.offset;
  }

  start(): void {
    this.startSampler();
    this.loop = this.run();
  }

  private startSampler(): void {
    this.sampler?.stop();
    let previous: number | undefined;
    this.sampler = new OffsetSampler(this.ep, (s) => {
      // Behind: what the master had sent by the previous sample has still not all arrived.
      this.behind = previous !== undefined && (!this.link || this.link.received < previous);
      previous = s.offset;
      this.noteSample(s.offset, s.ms);
      if (this.log) this.log.sample(s);
      else this.early.push([s.offset, s.ms]);
    }, 1000, 10_000, () => !this.streaming || this.behind);
    this.sampler.start();
  }

  /** Before a reconnect: where the shard's master is now; a moved master gets the sampler moved too. */
  private async relocate(): Promise<void> {
    const ep = await this.locate();
    if (ep.host === this.ep.host && ep.port === this.ep.port) return;
    this.o.logger.info({ instanceId: this.instance.instanceId, shard: this.shard, from: `${this.ep.host}:${this.ep.port}`, to: `${ep.host}:${ep.port}` }, "stream: the shard's master moved (failover); following it");
    this.ep = ep;
    if (!this.stopped) this.startSampler();
  }

  private noteSample(offset: number, ms: number): void {
    const receivedAt = this.o.clock.now();
    this.lastSample = { offset, ms, receivedAt };
    this.recentSamples.push({ offset, receivedAt });
    if (this.recentSamples.length > 3600) this.recentSamples.shift();
  }

  /**
   * How far the stored stream is behind the master: bytes (the sampler's master offset minus the durable offset)
   * and seconds (now minus when the newest sample the durable offset covers arrived). Undefined before both exist.
   */
  lag(now: number): { bytes: number; seconds: number } | undefined {
    const durable = this.durableOffset;
    if (durable === undefined || !this.lastSample) return undefined;
    while (this.recentSamples.length > 1 && this.recentSamples[1]!.offset <= durable) this.recentSamples.shift();
    const head = this.recentSamples[0];
    if (head && head.offset <= durable) this.durableSeenAt = Math.max(this.durableSeenAt ?? 0, head.receivedAt);
    const seen = this.durableSeenAt ?? this.startedAt;
    return { bytes: Math.max(0, this.lastSample.offset - durable), seconds: Math.max(0, now - seen) / 1000 };
  }

  get instanceRecord(): Instance {
    return this.instance;
  }

  get endpoint(): RedisEndpoint {
    return this.ep;
  }

  /** The replication id the stream follows now (undefined before its log exists). */
  get streamReplid(): string | undefined {
    return this.log?.replid;
  }

  /** Takes a scheduled base when one is due (stream-bases.ts); one at a time; failures are logged and retried later. */
  maybeBase(): Promise<ScheduledBase | undefined> | undefined {
    if (this.basing || this.stopped || !this.log || !this.streaming || !this.o.bases) return this.basing;
    const rebase = this.rebaseDue();
    // The newest base's time is read once, then kept by recordBase: the check every pass costs no catalogue read.
    if (!rebase && this.newestBaseAt !== undefined && !baseDue(this.instance, { takenAt: this.newestBaseAt }, this.o.clock.now(), this.o.bases)) return undefined;
    this.basing = (async () => {
      const newest = (await this.o.catalog.streamBases(this.instance.instanceId, this.shard)).at(-1);
      this.newestBaseAt = Math.max(this.newestBaseAt ?? 0, newest?.takenAt ?? 0) || undefined;
      if (!this.rebaseDue() && !baseDue(this.instance, newest, this.o.clock.now(), this.o.bases!)) return undefined;
      const r = await takeScheduledBase(this.o, this);
      if (r) this.lastScheduled = r;
      return r;
    })().catch((err: Error) => {
      this.o.logger.warn({ instanceId: this.instance.instanceId, err: err.message }, "scheduled stream base failed; tried again on a later pass");
      return undefined;
    }).finally(() => (this.basing = undefined));
    return this.basing;
  }

  /** Keys moved between the masters and have not moved for `afterKeyMovesMs`, and this shard has no base since. */
  private rebaseDue(): boolean {
    if (this.movedAt === undefined) return false;
    return this.o.clock.now() - this.movedAt >= (this.o.bases?.afterKeyMovesMs ?? DEFAULT_REBASE_AFTER_MOVES_MS) && (this.newestBaseAt ?? 0) <= this.movedAt;
  }

  /** A key moved into or out of this cluster's masters (any shard's stream saw it): every shard takes a new base. */
  keysMoved(at: number): void {
    this.movedAt = Math.max(this.movedAt ?? 0, at);
  }

  private async run(): Promise<void> {
    const log = this.o.logger.child({ instanceId: this.instance.instanceId, shard: this.shard, component: "stream" });
    let first = true;
    while (!this.stopped) {
      let healthy = false;
      try {
        if (!first) await this.relocate();
        first = false;
        const { ended } = await this.connect();
        this.streaming = true;
        const since = performance.now();
        await this.status(`streaming from ${this.ep.host}:${this.ep.port}`);
        const err = await ended;
        this.streaming = false;
        healthy = performance.now() - since >= HEALTHY_LINK_MS;
        if (this.stopped) break;
        this.reconnects++;
        this.lastError = err.message;
        log.warn({ err: err.message }, "replication link lost; continuing from the durable offset");
      } catch (err) {
        this.streaming = false;
        if (this.stopped) break;
        this.lastError = (err as Error).message;
        log.warn({ err: this.lastError }, "stream could not connect; retrying");
      }
      this.link?.close();
      this.link = undefined;
      // Everything received in whole units is kept: it is written before the link is asked to continue after it.
      await this.log?.flush().catch((e: Error) => {
        log.warn({ err: e.message }, "stream segment could not be written; continuing from the last durable offset");
        this.log = undefined;
      });
      await this.status(`reconnecting: ${this.lastError ?? ""}`);
      // A link that had been streaming (killed, a network blip) is reopened at once: every moment it is down,
      // writes arrive late. One that failed to open or dropped soon after waits the retry delay.
      const retryMs = this.o.retryMs ?? 1000;
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, healthy ? Math.min(retryMs, QUICK_RETRY_MS) : retryMs);
      });
    }
  }

  /** Where to continue from: this session's log, else the catalogue's last segment. */
  private async resumePoint(): Promise<ResumePoint | undefined> {
    if (this.log) return { replid: this.log.replid, offset: this.log.durable.offset, db: this.log.durable.db };
    if (this.fresh) return undefined;
    const last = await this.o.catalog.lastStreamSegment(this.instance.instanceId, this.shard);
    this.last = last;
    return last ? { replid: last.replid, offset: last.endOffset, db: last.endDb } : undefined;
  }

  /** Opens the link; resolves once streaming, with a promise of the error that ends it. */
  private async connect(): Promise<{ ended: Promise<Error> }> {
    const resume = await this.resumePoint();
    let endWith!: (e: Error) => void;
    const ended = new Promise<Error>((r) => (endWith = r));
    this.endLink = endWith;
    let base: { backupId: string; writer: BlobWriter; replid: string; offset: number; at: number } | undefined;
    this.link = await ReplicaLink.open(this.ep, resume, {
      onFullResync: (replid, offset) => {
        const backupId = crypto.randomUUID();
        const writer = this.o.store.createWriter(blobKey(backupId, 0), { compress: true });
        base = { backupId, writer, replid, offset, at: this.o.clock.now() };
        return writer;
      },
      baseDone: async (bytes) => {
        const b = base!;
        const committed = await b.writer.commit();
        const files = await this.recordBase(b.backupId, b.replid, b.offset, b.at, bytes, committed);
        // Its digest, as for any backup, from the stored file after the transfer (jobs/digests.ts).
        void this.o.digests?.schedule(b.backupId, files);
        this.bases++;
        this.newLog(b.replid, b.offset, 0, b.at);
      },
      onContinue: (replid) => {
        if (!this.log) this.newLog(replid, resume!.offset, resume!.db, this.startedAt);
        else this.log.replid = replid;
      },
      onUnits: (units, at) => this.log?.add(units, at),
      onEnd: (err) => endWith(err),
    }, { now: () => this.o.clock.now() });
    if (this.log) this.link.durable = this.log.durable.offset;
    return { ended };
  }

  private newLog(replid: string, offset: number, db: number, fromMs: number): void {
    this.fresh = false;
    const { store, clock } = this.o;
    const id = this.instance.instanceId;
    const log: SegmentLog = new SegmentLog({
      store, now: () => clock.now(), flushMs: this.o.flushMs,
      keyOf: (start, end) => segmentKey(id, this.shard, start, end),
      record: (meta) => this.record(meta),
      onError: (err) => {
        this.lastError = err.message;
        this.link?.close(); // the session reconnects from the last durable offset
      },
      onDurable: (off) => {
        if (this.link) {
          this.link.durable = off;
          this.link.ack();
        }
      },
    }, replid, offset, db, fromMs);
    for (const [o, ms] of this.early) log.sample({ offset: o, ms, replid });
    this.early = [];
    this.log?.stop();
    this.log = log;
    log.start();
  }

  /** A committed segment's row: a new one, or (nothing stored, same lineage) the last row moved forward. */
  private async record(meta: SegmentMeta): Promise<void> {
    const { catalog, clock } = this.o;
    if (meta.keyMoves) this.onKeyMoves?.(clock.now());
    const last = this.last;
    const idle = !meta.key && last && last.endOffset === meta.startOffset && last.replid === meta.replid && last.toMs >= meta.fromMs - 5_000;
    // A segment holding moved keys keeps its own end: the seconds it makes missing end at bases taken after it.
    if (idle && last.samples.length < MAX_SAMPLES_PER_ROW && !last.keyMoves) {
      const top = last.samples.reduce((m, [o]) => Math.max(m, o), -1);
      const samples = [...last.samples, ...meta.samples.filter(([o]) => o > top)];
      const fields = { endOffset: meta.endOffset, endDb: meta.endDb, toMs: meta.toMs, samples };
      await catalog.extendStreamSegment(last.segmentId, fields);
      this.last = { ...last, ...fields };
      return;
    }
    const row: Omit<StreamSegment, "segmentId"> = {
      instanceId: this.instance.instanceId, shard: this.shard, replid: meta.replid, startOffset: meta.startOffset, endOffset: meta.endOffset,
      startDb: meta.startDb, endDb: meta.endDb, fromMs: meta.fromMs, toMs: meta.toMs, samples: meta.samples, units: meta.units, bytes: meta.bytes,
      createdAt: clock.now(), ...(meta.key ? { key: meta.key } : {}), ...(meta.sha256 ? { sha256: meta.sha256 } : {}),
      ...(meta.keyMoves ? { keyMoves: meta.keyMoves } : {}),
    };
    const segmentId = await catalog.insertStreamSegment(row);
    this.last = { ...row, segmentId };
  }

  /** Lists a base: its backup record and its stream_bases row in one transaction (also for scheduled bases). */
  async recordBase(backupId: string, replid: string, offset: number, at: number, bytes: number, committed: { bytes: number; sha256: string; storedBytes: number }): Promise<StoredFile[]> {
    const { catalog, clock } = this.o;
    this.slots = (await this.readSlots?.().catch(() => undefined)) ?? this.slots;
    const end = clock.now();
    const instance = this.instance;
    const files: StoredFile[] = [{ key: blobKey(backupId, 0), bytes: committed.bytes, sha256: committed.sha256, shard: 0, storedBytes: committed.storedBytes, ...(this.slots ? { slots: this.slots } : {}) }];
    await catalog.transaction(async (tx) => {
      await tx.insertBackup({
        backupId, instanceId: instance.instanceId, startTime: at, endTime: end, backupType: "1", status: 2, remark: this.shardCount > 1 ? `second-level backup base, shard ${this.shard + 1}/${this.shardCount}` : "second-level backup base",
        locked: 0, backupSize: bytes, fullBackup: 0, instanceType: instance.instanceType, fileType: instance.redisVersion ? fileTypeFor(instance.redisVersion, serverOfType(instance.instanceType)) : "",
        expireTime: at + Math.max(instance.backupStorageDays, this.config.retentionDays) * DAY_MS, encrypted: false,
        files,
      });
      await tx.insertStreamBase({ backupId, instanceId: instance.instanceId, shard: this.shard, replid, offset, takenAt: at });
    });
    this.newestBaseAt = Math.max(this.newestBaseAt ?? 0, at);
    return files;
  }

  private async status(text: string): Promise<void> {
    const what = this.shardCount > 1 ? `shard ${this.shard}: ${text}` : text;
    await this.o.catalog.setStreamStatus(this.instance.instanceId, this.o.nodeId, what).catch(() => undefined);
  }

  /** Ends the session: what is waiting is committed, the link and the sampler closed (the lease: InstanceStream.stop). */
  async stop(): Promise<void> {
    if (this.stopped) return this.loop;
    this.stopped = true;
    this.link?.close();
    this.endLink?.(new Error("the stream was stopped"));
    this.sampler?.stop();
    this.wake?.();
    await this.loop;
    await this.basing?.catch(() => undefined); // a scheduled base and its proof end first (no scratch server left behind)
    await this.log?.flush().catch(() => undefined);
    this.log?.stop();
  }
}
