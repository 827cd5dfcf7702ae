// `crs-backup pitr status ID`: an instance's second-level backup as the catalogue has it — mode, the streaming
// node and what it last said, bases, stored segments, the covered range and the seconds without data.
import type { Command } from "commander";
import { missingTimestamps } from "../jobs/point-in-time";
import { withServices, withSettings } from "./context";
import { formatBytes, formatOf } from "./output";

export function registerPitrCommands(program: Command): void {
  const pitr = program.command("pitr").description("point-in-time recovery (second-level backup)");
  withSettings(pitr.command("status <instanceId>").description("mode, streaming node, bases, stored stream, restorable range and gaps")
    .option("--output <format>", "table or json", "table"), "all")
    .action(async (id: string, o: { output: string }, cmd: Command) => withServices(cmd, async (s) => {
      const format = formatOf(o.output);
      const config = await s.catalog.streamConfig(id);
      if (!(await s.catalog.instance(id))) throw new Error(`no instance ${id}`);
      const now = s.clock.now();
      const segments = await s.catalog.streamSegments(id, 0);
      const bases = await s.catalog.streamBases(id, 0);
      const gaps = config ? await missingTimestamps(s.catalog, config, now) : [];
      const status = {
        instanceId: id, mode: config?.mode ?? "NormalLevelBackup", since: config?.since !== undefined ? s.time.format(config.since) : "",
        node: config?.owner ?? "", leaseUntil: config?.leaseUntil !== undefined ? s.time.format(config.leaseUntil) : "", state: config?.status ?? "",
        bases: bases.map((b) => ({ backupId: b.backupId, taken: s.time.format(b.takenAt), offset: b.offset })),
        segments: segments.length, storedBytes: segments.reduce((n, x) => n + x.bytes, 0),
        durableOffset: segments.length ? segments[segments.length - 1]!.endOffset : undefined,
        coveredUntil: segments.length ? s.time.format(segments[segments.length - 1]!.toMs) : "",
        missing: gaps.map((g) => `${s.time.format(g.start * 1000)} .. ${s.time.format(g.end * 1000)}`),
      };
      if (format === "json") {
        process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        return;
      }
      for (const [k, v] of Object.entries(status)) {
        const shown = k === "storedBytes" ? formatBytes(v as number) : Array.isArray(v) ? (v.length ? v.map((x) => (typeof x === "string" ? x : `${x.backupId} ${x.taken} @${x.offset}`)).join("; ") : "none") : String(v ?? "");
        console.log(`${k.padEnd(14)}${shown}`);
      }
    }));
}
