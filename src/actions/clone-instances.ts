// CloneInstances: new instances from one of the caller's backups, or (CloneTime) from a second of an instance's
// second-level backup stream. Each clone is a redis-server this service provisions itself (src/instances/,
// jobs/clones.ts): registered at once with a new crs- id in the caller's account and region, Status 1 while it
// loads, 2 once ready. The billing, zone, network, security-group, tag, template and alarm fields are checked for
// their shape and mean nothing here (no cloud to bill or place it in); the port comes from --clone-ports, not VPort.
// A cluster's backup or second clones into ONE standalone server holding every shard's keys (the local provider
// runs single processes; a cluster-shaped clone waits for a provider that can place one).
import { ApiError } from "../protocol/errors";
import { PointInTimeError, planInstancePointInTime } from "../jobs/point-in-time";
import { defineInstanceAction, ID_MAX_LENGTH } from "./action";

/** At most this many clones per request (each is a process of this node). */
export const MAX_CLONES = 10;

/** The rule of Tencent's instance passwords: 8-64 characters of these classes, at least two classes, not starting with "/". */
const SPECIALS = "()`~!@#$%^&*-+=_|{}[]:;<>,.?/";
export function passwordProblem(pw: string): string | undefined {
  if (pw.length < 8 || pw.length > 64) return `\`Password\` must be 8 to 64 characters, got ${pw.length}`;
  if (pw.startsWith("/")) return "`Password` must not start with \"/\"";
  const bad = [...pw].find((c) => !/[A-Za-z0-9]/.test(c) && !SPECIALS.includes(c));
  if (bad !== undefined) return `\`Password\` may hold letters, digits and ${SPECIALS} only, got ${JSON.stringify(bad)}`;
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, new RegExp(`[${SPECIALS.replace(/[\]\\^-]/g, "\\$&")}]`)].filter((r) => r.test(pw)).length;
  if (classes < 2) return "`Password` must mix at least two of lower-case letters, upper-case letters, digits and special characters";
  return undefined;
}

const int = { type: "integer" } as const;
const str = (maxLength: number) => ({ type: "string", maxLength }) as const;

export default defineInstanceAction({
  name: "CloneInstances",
  mutates: true,
  params: {
    GoodsNum: { type: "integer", required: true, min: 1, max: MAX_CLONES },
    ZoneId: { type: "integer", required: true, min: 0 },
    BillingMode: { type: "integer", required: true, min: 0, max: 1 },
    Period: { type: "integer", required: true, min: 1, max: 60 },
    SecurityGroupIdList: { type: "array", required: true, items: str(64), maxItems: 100 },
    BackupId: { type: "string", required: true, maxLength: ID_MAX_LENGTH },
    NoAuth: { type: "boolean" },
    VpcId: str(64),
    SubnetId: str(64),
    InstanceName: str(128),
    Password: str(128),
    AutoRenew: { type: "integer", min: 0, max: 2 },
    VPort: { type: "integer", min: 1024, max: 65535 },
    NodeSet: { type: "array", maxItems: 16, items: { type: "object", fields: { NodeType: int, NodeId: int, ZoneId: int, ZoneName: str(64) } } },
    ProjectId: int,
    ResourceTags: { type: "array", maxItems: 50, items: { type: "object", fields: { TagKey: str(128), TagValue: str(256) } } },
    TemplateId: str(64),
    AlarmPolicyList: { type: "array", items: str(64), maxItems: 50 },
    CloneTime: str(32),
  },
  async handle(source, ctx, p) {
    const { backup } = await ctx.scope.backup(p.BackupId!, source);
    if (p.InstanceName !== undefined && !/^[\p{Script=Han}A-Za-z0-9_-]{1,59}$/u.test(p.InstanceName)) {
      throw new ApiError("InvalidParameterValue", { reason: "`InstanceName` must be 1 to 59 Chinese characters, letters, digits, \"-\" or \"_\"" });
    }
    if (p.Password !== undefined && p.Password !== "") {
      if (p.NoAuth === true) throw new ApiError("InvalidParameterValue", { reason: "`NoAuth` true and a `Password` exclude each other" });
      const problem = passwordProblem(p.Password);
      if (problem) throw new ApiError("InvalidParameterValue.PasswordRuleError", { reason: problem });
    } else if (p.NoAuth !== true) {
      throw new ApiError("InvalidParameterValue.PasswordEmpty", { reason: "a clone needs a `Password`, or `NoAuth` true for one without" });
    }
    if (backup.status !== 2 && backup.status !== 4) {
      throw new ApiError("ResourceUnavailable.BackupStatusAbnormal", { reason: `the backup ${backup.backupId} has Status ${backup.status}; only a kept (2) or exported (4) backup can be cloned` });
    }
    let atSec: number | undefined;
    if (p.CloneTime !== undefined) {
      const ms = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(p.CloneTime) ? ctx.time.parse(p.CloneTime) : undefined;
      if (ms === undefined) throw new ApiError("InvalidParameterValue", { reason: `\`CloneTime\` must be a time YYYY-MM-DD HH:mm:ss, got ${JSON.stringify(p.CloneTime.slice(0, 32))}` });
      atSec = Math.floor(ms / 1000);
      const config = await ctx.catalog.streamConfig(source.instanceId);
      if (!config || config.mode !== "SecondLevelBackup") {
        throw new ApiError("FailedOperation.UnSupportError", { reason: `\`CloneTime\` is only for instances with second-level backup on; ${source.instanceId} has it off` });
      }
      // The same plan the task makes: refused now when that second cannot be restored. BackupId only has to be
      // one of the source's backups: the clone starts from the base the planner picks for that second.
      try {
        await planInstancePointInTime(ctx.catalog, config, atSec, ctx.services.clock.now(), source.shardNum);
      } catch (err) {
        if (err instanceof PointInTimeError) throw new ApiError("InvalidParameterValue", { reason: `\`CloneTime\` ${p.CloneTime} cannot be cloned: ${err.message}` });
        throw err;
      }
    }
    const made = await ctx.services.clones.enqueue({
      source, backup, count: p.GoodsNum!, ...(atSec !== undefined ? { atSec } : {}),
      ...(p.Password ? { password: p.Password } : {}), ...(p.InstanceName ? { name: p.InstanceName } : {}),
    });
    return { DealId: String(made[0]!.taskId), InstanceIds: made.map((m) => m.instanceId) };
  },
});
