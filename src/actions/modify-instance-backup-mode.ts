// ModifyInstanceBackupMode: switch second-level backup (the replication stream, point-in-time recovery) on or
// off. The TaskId is of a task that is done at once; the stream starts on the next lease pass of a node. A
// cluster streams every master (jobs/streams.ts), under one lease for the instance.
import { parseRedisUrl } from "../redis/client/url";
import { ApiError } from "../protocol/errors";
import type { BackupMode } from "../catalog/types";
import { defineInstanceAction } from "./action";

const MODES: readonly BackupMode[] = ["SecondLevelBackup", "NormalLevelBackup"];

export default defineInstanceAction({
  name: "ModifyInstanceBackupMode",
  mutates: true,
  params: {
    BackupMode: { type: "string", required: true, maxLength: 64 },
  },
  async handle(instance, ctx, p) {
    const mode = p.BackupMode as BackupMode;
    if (!MODES.includes(mode)) throw new ApiError("InvalidParameter.NotSupported", { reason: `\`BackupMode\` must be SecondLevelBackup or NormalLevelBackup, got ${JSON.stringify(p.BackupMode!.slice(0, 64))}` });
    if (mode === "SecondLevelBackup") {
      if (!instance.redisUrl) throw new ApiError("FailedOperation.UnSupportError", { reason: `${instance.instanceId} has no Redis server registered (a catalogue-only instance), so it has no stream to back up` });
      if (parseRedisUrl(instance.redisUrl).kind === "sentinel") {
        throw new ApiError("FailedOperation.UnSupportError", { reason: `${instance.instanceId} is registered through Sentinel; second-level backup streams one directly registered master only in this version` });
      }
    }
    return { TaskId: await ctx.services.streams.setMode(instance, mode) };
  },
});
