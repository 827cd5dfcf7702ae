// DescribeBackupUrl: download links for a backup, one per shard. A kept backup (Status 2) is exported first
// (Status 3 and Locked while it runs, then Status 4); an exported one is answered at once with fresh links.
// The links are served by this server (src/downloads/) and work for 6 hours.
import { describeStatus } from "../jobs/exports";
import { issueLink } from "../downloads/links";
import { downloadForm, downloadName, downloadSize } from "../downloads/encrypted";
import { accountRestriction, checkRestriction } from "../downloads/restrictions";
import { ApiError } from "../protocol/errors";
import type { Schema } from "../protocol/schema";
import { BACKUP_OF_INSTANCE, defineAction } from "./action";

/** The restriction fields DescribeBackupUrl and ModifyBackupDownloadRestriction share. */
export const RESTRICTION_SCHEMA = {
  LimitType: { type: "string", maxLength: 64 },
  VpcComparisonSymbol: { type: "string", maxLength: 64 },
  IpComparisonSymbol: { type: "string", maxLength: 64 },
  LimitVpc: {
    type: "array",
    maxItems: 1000,
    items: { type: "object", fields: { Region: { type: "string", required: true, maxLength: 64 }, VpcList: { type: "array", items: { type: "string", maxLength: 128 }, maxItems: 1000 } } },
  },
  LimitIp: { type: "array", items: { type: "string", maxLength: 128 }, maxItems: 1000 },
} as const satisfies Schema;

export default defineAction({
  name: "DescribeBackupUrl",
  instanceParam: "InstanceId",
  schema: { ...BACKUP_OF_INSTANCE, ...RESTRICTION_SCHEMA },
  async handle(p, ctx) {
    const instance = await ctx.scope.instance(p.InstanceId!);
    // The per-call restriction when LimitType is given, else the account's for this region.
    const restriction = p.LimitType !== undefined ? checkRestriction(p) : await accountRestriction(ctx.catalog, ctx.accountId, ctx.region);
    const { backup: found } = await ctx.scope.backup(p.BackupId!, instance);
    if (found.status !== 2 && found.status !== 3 && found.status !== 4) {
      throw new ApiError("ResourceUnavailable.BackupStatusInvalid", { reason: `backup ${found.backupId} cannot be downloaded (${describeStatus(found.status)})` });
    }
    // Refusals (locked, wrong status) and a failed export become their API codes in src/actions/errors.ts.
    const backup = await ctx.services.exports.ensureExported(found.backupId);
    const form = downloadForm(ctx.services.config, backup);
    const infos = [...backup.files]
      .sort((a, b) => a.shard - b.shard)
      .map((f) => {
        const url = issueLink(ctx.services.links, ctx.services.clock.now(), { origin: ctx.origin, backup, shard: f.shard, accountId: ctx.accountId, restriction });
        return { FileName: downloadName(form, backup, f.shard), FileSize: downloadSize(form, f), DownloadUrl: url, InnerDownloadUrl: url };
      });
    return {
      DownloadUrl: infos.map((i) => i.DownloadUrl),
      InnerDownloadUrl: infos.map((i) => i.InnerDownloadUrl),
      Filenames: infos.map((i) => i.FileName),
      BackupInfos: infos,
    };
  },
});
