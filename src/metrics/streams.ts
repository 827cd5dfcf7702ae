// Second-level backup in /metrics (issue 17 item 6), one series per streamed instance (instance_id, bounded by
// the catalogue). Two kinds:
// - this node's sessions (only the node holding a stream's lease has them): stream_up, lag in bytes and seconds,
//   durable offset. The lag in bytes is the sampler's newest master_repl_offset minus the durable (stored,
//   acknowledged) offset; in seconds, how long ago (this node's clock) the newest sample the durable offset covers
//   arrived — it grows while the link is down or storage is slow, and while the sampler cannot reach the master.
// - the catalogue's view, the same on every node (take max by instance_id): enabled, stored bytes and segments,
//   gaps and their seconds over the 7-day window, the restorable range's start, the last proof's result and time.
// Catalogue figures are read at most once per `cacheMs`, like the other catalogue gauges.
import { Gauge, Registry } from "prom-client";
import { missingTimestamps } from "../jobs/point-in-time";
import type { Services } from "../services";

type G = Gauge<"instance_id">;

export class StreamMetrics {
  private readonly enabled: G;
  private readonly up: G;
  private readonly lagSeconds: G;
  private readonly lagBytes: G;
  private readonly durable: G;
  private readonly storedBytes: G;
  private readonly segments: G;
  private readonly gaps: G;
  private readonly gapSeconds: G;
  private readonly restorableFrom: G;
  private readonly proofOk: G;
  private readonly proofAt: G;
  private readAt = 0;
  private reading: Promise<void> | undefined;

  constructor(registry: Registry, private readonly cacheMs: number) {
    const registers = [registry];
    const g = (name: string, help: string): G => new Gauge({ name, help, labelNames: ["instance_id"], registers });
    this.enabled = g("crs_backup_stream_enabled", "1 for each instance in SecondLevelBackup mode (the catalogue; every node).");
    this.up = g("crs_backup_stream_up", "1 while this node's replication link of the instance streams, 0 while it holds the lease and the link is down; absent on nodes not streaming it (take max by instance_id).");
    this.lagSeconds = g("crs_backup_stream_lag_seconds", "Seconds since the newest master sample the stored stream covers arrived (this node's session).");
    this.lagBytes = g("crs_backup_stream_lag_bytes", "The master's replication offset (sampler) minus the durable offset: stream bytes not yet stored (this node's session).");
    this.durable = g("crs_backup_stream_durable_offset", "The replication offset through which the stream is stored and acknowledged (this node's session).");
    this.storedBytes = g("crs_backup_stream_stored_bytes", "Plain bytes of the stored stream segments of the instance (the catalogue).");
    this.segments = g("crs_backup_stream_segments", "Stored stream segments of the instance (the catalogue).");
    this.gaps = g("crs_backup_stream_gaps", "Ranges without backup data (MissingTimestamps) over the last 7 days.");
    this.gapSeconds = g("crs_backup_stream_gap_seconds", "Seconds without backup data over the last 7 days (the sum of MissingTimestamps).");
    this.restorableFrom = g("crs_backup_stream_restorable_from_timestamp_seconds", "The oldest second a restore can reach (the oldest kept base), Unix seconds.");
    this.proofOk = g("crs_backup_stream_proof_ok", "The newest proof run: 1 the replay of the previous base + the stream gave the new base's digest, 0 it did not (or could not run).");
    this.proofAt = g("crs_backup_stream_proof_timestamp_seconds", "When the newest proof ran (Unix seconds).");
  }

  /** Local figures now; catalogue figures from a reading at most `cacheMs` old (refreshed in the background). */
  async collect(s: Services): Promise<void> {
    const now = s.clock.now();
    this.up.reset();
    this.lagSeconds.reset();
    this.lagBytes.reset();
    this.durable.reset();
    for (const c of await this.configs(s)) {
      const session = s.streams.session(c);
      if (!session) continue;
      const labels = { instance_id: c };
      this.up.set(labels, session.streaming ? 1 : 0);
      const lag = session.lag(now);
      if (lag) {
        this.lagSeconds.set(labels, lag.seconds);
        this.lagBytes.set(labels, lag.bytes);
      }
      if (session.durableOffset !== undefined) this.durable.set(labels, session.durableOffset);
    }
    if (!this.readAt) await this.read(s);
    else if (Date.now() - this.readAt >= this.cacheMs) void this.read(s);
  }

  private enabledIds: string[] = [];

  private async configs(s: Services): Promise<string[]> {
    if (!this.readAt) await this.read(s);
    return this.enabledIds;
  }

  private read(s: Services): Promise<void> {
    this.reading ??= (async () => {
      const now = s.clock.now();
      const configs = (await s.catalog.streamConfigs("SecondLevelBackup")).filter((c) => c.since !== undefined);
      const next = new Map<string, Array<[G, number]>>();
      for (const c of configs) {
        const stats = await s.catalog.streamStats(c.instanceId, 0);
        const gaps = await missingTimestamps(s.catalog, c, now);
        const bases = await s.catalog.streamBases(c.instanceId, 0);
        const proved = bases.filter((b) => b.proof).at(-1)?.proof;
        const v: Array<[G, number]> = [[this.enabled, 1], [this.storedBytes, stats.bytes], [this.segments, stats.segments], [this.gaps, gaps.length],
          [this.gapSeconds, gaps.reduce((n, g) => n + g.end - g.start + 1, 0)]];
        if (bases.length) v.push([this.restorableFrom, Math.ceil(bases[0]!.takenAt / 1000)]);
        if (proved) v.push([this.proofOk, proved.ok ? 1 : 0], [this.proofAt, Math.floor(proved.at / 1000)]);
        next.set(c.instanceId, v);
      }
      for (const g of [this.enabled, this.storedBytes, this.segments, this.gaps, this.gapSeconds, this.restorableFrom, this.proofOk, this.proofAt]) g.reset();
      for (const [id, v] of next) for (const [g, n] of v) g.set({ instance_id: id }, n);
      this.enabledIds = [...next.keys()];
      this.readAt = Date.now();
    })().catch((err: unknown) => s.logger.debug({ err }, "metrics: reading the streams failed; retried at a later scrape"))
      .finally(() => (this.reading = undefined));
    return this.reading;
  }
}
