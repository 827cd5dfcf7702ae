// DescribeSecondLevelBackupRange (console only): an instance's second-level backup as the console's
// point-in-time view shows it — whether it is on, the restorable range (from the oldest kept base to the newest
// stored second), the seconds without data inside it (the same MissingTimestamps as DescribeSecondLevelBackupInfo),
// the bases with their proof, and whether this server can clone to a second (CloneInstances registered).
// A CAM policy allows it as DescribeSecondLevelBackupInfo.
import { defineInstanceAction } from "../../actions/action";
import { actions as publicActions } from "../../actions";
import { missingTimestamps, planPointInTime, PointInTimeError } from "../../jobs/point-in-time";

export default defineInstanceAction({
  name: "DescribeSecondLevelBackupRange",
  policyAction: "DescribeSecondLevelBackupInfo",
  params: {
    /** A second ("YYYY-MM-DD HH:mm:ss", server time zone): the answer says which base a clone to it starts from. */
    At: { type: "string", maxLength: 32 },
  },
  async handle(instance, ctx, p) {
    const { catalog } = ctx;
    const config = await catalog.streamConfig(instance.instanceId);
    const on = config?.mode === "SecondLevelBackup" && config.since !== undefined;
    const now = ctx.services.clock.now();
    const bases = await catalog.streamBases(instance.instanceId, 0);
    const stats = await catalog.streamStats(instance.instanceId, 0);
    const missing = on ? await missingTimestamps(catalog, config, now) : [];
    const from = bases.length ? Math.ceil(bases[0]!.takenAt / 1000) : 0;
    const until = stats.toMs !== undefined ? Math.floor(stats.toMs / 1000) - 1 : 0;
    const fmt = (sec: number) => (sec ? ctx.time.format(sec * 1000) : "");
    let at: { AtBackupId: string; AtReason: string } | undefined;
    if (p.At !== undefined) {
      const ms = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(p.At) ? ctx.time.parse(p.At) : undefined;
      if (ms === undefined) at = { AtBackupId: "", AtReason: `${JSON.stringify(p.At)} is not a time "YYYY-MM-DD HH:mm:ss"` };
      else if (!on) at = { AtBackupId: "", AtReason: "second-level backup is not on" };
      else {
        try {
          at = { AtBackupId: (await planPointInTime(catalog, config, Math.floor(ms / 1000), now)).backup.backupId, AtReason: "" };
        } catch (err) {
          if (!(err instanceof PointInTimeError)) throw err;
          at = { AtBackupId: "", AtReason: err.message };
        }
      }
    }
    return {
      ...at,
      RestorableFromTime: on && until >= from ? fmt(from) : "",
      RestorableUntilTime: on && until >= from ? fmt(until) : "",
      MissingTimes: missing.map((g) => ({ Start: fmt(g.start), End: fmt(g.end) })),
      BackupMode: on ? "SecondLevelBackup" : "NormalLevelBackup",
      StartTimestamp: on ? Math.floor(config.since! / 1000) : 0,
      RestorableFrom: on && until >= from ? from : 0,
      RestorableUntil: on && until >= from ? until : 0,
      MissingTimestamps: missing.map((g) => ({ StartTimeStamp: g.start, EndTimeStamp: g.end })),
      RetentionDays: config?.retentionDays ?? 7,
      StoredBytes: stats.bytes,
      Bases: bases.map((b) => ({
        BackupId: b.backupId, Timestamp: Math.floor(b.takenAt / 1000), Time: ctx.time.format(b.takenAt),
        Proof: b.proof ? (b.proof.ok ? "complete" : b.proof.ran === false ? "not-run" : "failed") : "",
        ProofDetail: b.proof?.detail ?? "",
      })),
      CloneAvailable: publicActions.has("CloneInstances"),
    };
  },
});
