// DescribeSecondLevelBackupInfo: for a second, the backup a restore to it starts from, the seconds without
// backup data (MissingTimestamps, over the whole time second-level backup has been on, within 7 days) and when
// it was switched on (StartTimestamp). A cluster: a second is covered only when every shard's stream covers it
// (MissingTimestamps is the union of the shards' gaps) and BackupId is then shard 0's base ("" unless all have one).
import { ApiError } from "../protocol/errors";
import { missingTimestamps, planInstancePointInTime, PointInTimeError } from "../jobs/point-in-time";
import { defineInstanceAction } from "./action";

export default defineInstanceAction({
  name: "DescribeSecondLevelBackupInfo",
  params: {
    BackupTimestamp: { type: "integer", required: true, min: 0, max: 32503680000, rangeCode: "InvalidParameter.InvalidParameter" },
  },
  async handle(instance, ctx, p) {
    const config = await ctx.catalog.streamConfig(instance.instanceId);
    if (config?.mode !== "SecondLevelBackup" || config.since === undefined) {
      throw new ApiError("FailedOperation.UnSupportError", { reason: `second-level backup is not on for ${instance.instanceId} (ModifyInstanceBackupMode BackupMode=SecondLevelBackup)` });
    }
    const now = ctx.services.clock.now();
    const at = p.BackupTimestamp!;
    if (at * 1000 > now) throw new ApiError("InvalidParameter.InvalidParameter", { reason: `\`BackupTimestamp\` ${at} is in the future (now ${Math.floor(now / 1000)})` });
    if (at * 1000 < now - 7 * 86_400_000) throw new ApiError("InvalidParameter.InvalidParameter", { reason: `\`BackupTimestamp\` ${at} is more than 7 days ago` });
    const missing = await missingTimestamps(ctx.catalog, config, now, instance.shardNum);
    let backupId = "";
    try {
      // A cluster: the second needs every shard's base; BackupId names shard 0's (the first the restore loads).
      backupId = (await planInstancePointInTime(ctx.catalog, config, at, now, instance.shardNum))[0]!.backup.backupId;
    } catch (err) {
      if (!(err instanceof PointInTimeError)) throw err;
      // No base reaches that second (before the first base, inside a gap, not stored yet): no BackupId.
    }
    return {
      BackupId: backupId,
      BackupTimestamp: at,
      MissingTimestamps: missing.map((g) => ({ StartTimeStamp: g.start, EndTimeStamp: g.end })),
      StartTimestamp: Math.floor(config.since / 1000),
    };
  },
});
