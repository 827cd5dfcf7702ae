// ModifyBackupDownloadRestriction: sets the account's download restriction in the request's region. It applies
// to links issued afterwards (a link carries the restriction in force when it was issued).
import { checkRestriction, putAccountRestriction } from "../downloads/restrictions";
import { defineAction } from "./action";
import { RESTRICTION_SCHEMA } from "./describe-backup-url";

export default defineAction({
  name: "ModifyBackupDownloadRestriction",
  mutates: true,
  schema: { ...RESTRICTION_SCHEMA, LimitType: { type: "string", required: true, maxLength: 64 } },
  async handle(p, ctx) {
    await putAccountRestriction(ctx.catalog, ctx.accountId, ctx.region, checkRestriction(p));
    return {};
  },
});
