// DescribeBackupDownloadRestriction: the account's download restriction in the request's region (default NoLimit).
import { accountRestriction } from "../downloads/restrictions";
import { defineAction } from "./action";

export default defineAction({
  name: "DescribeBackupDownloadRestriction",
  schema: {},
  async handle(_p, ctx) {
    const r = await accountRestriction(ctx.catalog, ctx.accountId, ctx.region);
    return { LimitType: r.LimitType, VpcComparisonSymbol: r.VpcComparisonSymbol, IpComparisonSymbol: r.IpComparisonSymbol, LimitVpc: r.LimitVpc, LimitIp: r.LimitIp };
  },
});
