// `crs-backup pitr status ID`: an instance's second-level backup as the catalogue has it — mode, the streaming
// node and what it last said, bases, stored segments, the covered range and the seconds without data.
import type { Command } from "commander";
import { missingTimestamps, streamShards } from "../jobs/point-in-time";
import { parseEndpointUrl } from "../redis/client/url";
import { OffsetSampler } from "../redis/stream/sampler";
import { UsageError } from "./settings";
import { withServices, withSettings } from "./context";
import { formatBytes, formatOf } from "./output";

export function registerPitrCommands(program: Command): void {
  const pitr = program.command("pitr").description("point-in-time recovery (second-level backup)");
  withSettings(pitr.command("status <instanceId>").description("mode, streaming node, bases, stored stream, restorable range and gaps")
    .option("--output <format>", "table or json", "table"), "all")
    .action(async (id: string, o: { output: string }, cmd: Command) => withServices(cmd, async (s) => {
      const format = formatOf(o.output);
      const config = await s.catalog.streamConfig(id);
      const instance = await s.catalog.instance(id);
      if (!instance) throw new Error(`no instance ${id}`);
      const now = s.clock.now();
      const shardList = await streamShards(s.catalog, id, instance.shardNum, config?.epoch);
      const segments = await s.catalog.streamSegments(id, 0);
      const bases = await s.catalog.streamBases(id, 0);
      const gaps = config ? await missingTimestamps(s.catalog, config, now, shardList.length) : [];
      // A cluster: each shard's own stream (the top-level figures are shard 0's; `missing` combines all shards).
      const shards = shardList.length < 2 ? {} : { shards: await Promise.all(shardList.map(async (shard) => {
        const st = await s.catalog.streamStats(id, shard);
        const last = await s.catalog.lastStreamSegment(id, shard);
        return { shard, bases: (await s.catalog.streamBases(id, shard)).length, segments: st.segments, storedBytes: st.bytes, durableOffset: last?.endOffset, coveredUntil: st.toMs !== undefined ? s.time.format(st.toMs) : "" };
      })) };
      const status = {
        instanceId: id, mode: config?.mode ?? "NormalLevelBackup", since: config?.since !== undefined ? s.time.format(config.since) : "",
        node: config?.owner ?? "", leaseUntil: config?.leaseUntil !== undefined ? s.time.format(config.leaseUntil) : "", state: config?.status ?? "",
        bases: bases.map((b) => ({ backupId: b.backupId, taken: s.time.format(b.takenAt), offset: b.offset, ...(b.proof ? { proof: b.proof.ok ? "complete" : b.proof.ran === false ? "not run" : "FAILED" } : {}) })),
        segments: segments.length, storedBytes: segments.reduce((n, x) => n + x.bytes, 0),
        durableOffset: segments.length ? segments[segments.length - 1]!.endOffset : undefined,
        coveredUntil: segments.length ? s.time.format(segments[segments.length - 1]!.toMs) : "",
        missing: gaps.map((g) => `${s.time.format(g.start * 1000)} .. ${s.time.format(g.end * 1000)}`),
        ...(await liveView(s.catalog, id, segments.length ? segments[segments.length - 1]!.endOffset : undefined, now)),
        retentionDays: config?.retentionDays ?? 7,
        restorableFrom: bases.length ? s.time.format(Math.ceil(bases[0]!.takenAt / 1000) * 1000) : "",
        ...lastProof(bases, s.time.format.bind(s.time)),
        ...shards,
      };
      if (format === "json") {
        process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        return;
      }
      for (const [k, v] of Object.entries(status)) {
        const item = (x: unknown): string => {
          if (typeof x === "string") return x;
          const r = x as { backupId?: string; taken?: string; offset?: number; shard?: number; bases?: number; segments?: number; storedBytes?: number; durableOffset?: number; coveredUntil?: string };
          return r.shard !== undefined ? `shard ${r.shard}: ${r.bases} base(s), ${r.segments} segment(s), ${formatBytes(r.storedBytes ?? 0)}, @${r.durableOffset ?? "-"}, to ${r.coveredUntil}` : `${r.backupId} ${r.taken} @${r.offset}`;
        };
        const shown = k === "storedBytes" || k === "lagBytes" ? formatBytes(v as number) : Array.isArray(v) ? (v.length ? v.map(item).join("; ") : "none") : String(v ?? "");
        console.log(`${k.padEnd(14)}${shown}`);
      }
    }));

  withSettings(pitr.command("retention <instanceId> <days>").description("how many days of seconds stay restorable (default 7; older bases and segments are reclaimed)"), "all")
    .action(async (id: string, days: string, _o: object, cmd: Command) => withServices(cmd, async (s) => {
      const n = Number(days);
      if (!Number.isInteger(n) || n < 1 || n > 7) throw new UsageError(`<days> must be a whole number from 1 to 7 (second-level backup covers at most 7 days), not ${JSON.stringify(days)}`);
      if (!(await s.catalog.instance(id))) throw new Error(`no instance ${id}`);
      await s.catalog.setStreamRetention(id, n);
      console.log(`${id}: second-level backup retention ${n} day(s)`);
    }));
}

/** The master's offset now (one sample) and the lag of the stored stream behind it, when the master answers. */
async function liveView(catalog: { instance(id: string): Promise<{ redisUrl?: string } | undefined> }, id: string, durable: number | undefined, _now: number): Promise<{ masterOffset?: number; lagBytes?: number; master?: string }> {
  const url = (await catalog.instance(id))?.redisUrl;
  if (!url || durable === undefined) return {};
  try {
    const sampler = new OffsetSampler(parseEndpointUrl(url), () => undefined, 1000, 3000);
    try {
      const sample = await sampler.sample();
      return { masterOffset: sample.offset, lagBytes: Math.max(0, sample.offset - durable) };
    } finally {
      sampler.stop();
    }
  } catch (err) {
    return { master: `not reachable: ${(err as Error).message}` };
  }
}

function lastProof(bases: Array<{ backupId: string; proof?: { ok: boolean; at: number; detail: string; ran?: boolean } }>, format: (ms: number) => string): { lastProof: string; lastProofAt: string; lastProofDetail: string } {
  const b = bases.filter((x) => x.proof).at(-1);
  if (!b?.proof) return { lastProof: "none yet", lastProofAt: "", lastProofDetail: "" };
  return { lastProof: `${b.proof.ok ? "complete" : b.proof.ran === false ? "not run" : "FAILED"} (${b.backupId})`, lastProofAt: format(b.proof.at), lastProofDetail: b.proof.detail };
}
