// Checking a finished restore against the backup, as far as the target lets us:
//  - "digest": the target's DEBUG DIGEST against the digest the backup says it should report (a standalone
//    target that received the whole backup). One command, whatever the size. When they differ we go on key by
//    key to name the first differing key, and to tell a real difference from keys whose TTL ran out meanwhile.
//  - "keys": DEBUG DIGEST-VALUE of every restored key against the value digest computed from a second read of
//    the backup (a cluster target, filters, a target that held other keys): routed by slot on a cluster.
// A target refusing DEBUG (the default from Redis 7.0: enable-debug-command no) cannot be verified; that is
// reported, not treated as a difference.
import type { ValueKind } from "../rdb/constants";
import { DigestOptions, DigestVisitor, scoreFormatForServer } from "../rdb/digest";
import type { ScoreFormat } from "../rdb/double-format";
import type { KeyHeader } from "../rdb/reader";
import { KeyDifference, verifyAgainstServer } from "../rdb/key-diff";
import { RedisEndpoint, RedisReplyError, RespConnection } from "../client/resp";
import { globMatch } from "../rdb/glob";
import { parseInfo } from "./target";

/** The keys a restore was asked for (none set: all of them). */
export interface KeySelection {
  dbs?: number[];
  match?: string;
  types?: ValueKind[];
}

export type Verification =
  | { outcome: "equal"; how: "digest"; digest: string }
  | { outcome: "equal"; how: "keys"; keys: number; extraOnTarget: number; note?: string }
  | { outcome: "different"; how: "digest" | "keys"; first?: KeyDifference; missing?: number; different?: number; digest?: { expected: string; actual: string }; note?: string }
  | { outcome: "skipped"; reason: string };

/** Keys whose TTL ends within this long are not compared: they may or may not still be there. */
const EXPIRY_MARGIN_MS = 5_000;

/**
 * Which keys of the backup a restore wrote: selected by the filters and not expired (restoreByCommands skips
 * expired keys). `marginMs` also leaves out keys about to expire.
 */
export function restoredKeyFilter(sel: KeySelection, marginMs = 0): (h: KeyHeader) => boolean {
  const match = sel.match !== undefined ? Buffer.from(sel.match) : undefined;
  return (h) => {
    if (sel.dbs && !sel.dbs.includes(h.db)) return false;
    if (sel.types && !sel.types.includes(h.type)) return false;
    if (match && !globMatch(match, h.key)) return false;
    return h.expireAt === -1 || h.expireAt > Date.now() + marginMs;
  };
}

/**
 * The data-set digest of only the keys `keep` accepts: what DEBUG DIGEST reports on a target that received
 * exactly those keys. Feed it the same chunks the restore reads (one RdbReader per RDB, one visitor for all).
 */
export class SelectedDigest extends DigestVisitor {
  private skipping = false;

  constructor(opts: DigestOptions, private readonly keep: (h: KeyHeader) => boolean) {
    super(opts);
  }

  override onKeyStart(h: KeyHeader): boolean | void {
    this.skipping = !this.keep(h);
    if (this.skipping) return false;
    super.onKeyStart(h);
  }

  override onKeyEnd(h: KeyHeader): void {
    if (this.skipping) {
      this.skipping = false; // the reader still reports the end of a skipped key
      return;
    }
    super.onKeyEnd(h);
  }
}

/** How a target formats scores (which decides the digest of sorted sets), from INFO server. */
export async function targetScoreFormat(target: RedisEndpoint, conn?: RespConnection): Promise<ScoreFormat> {
  const c = conn ?? (await RespConnection.connect(target, 10_000));
  try {
    const server = parseInfo(await c.command("INFO", "server"));
    return scoreFormatForServer(server.get("redis_version") ?? "", server.get("valkey_version"));
  } finally {
    if (!conn) c.close();
  }
}

/** Why a reply error from DEBUG means "not allowed here" (disabled, renamed, denied by ACL, or too old). */
function debugRefusal(err: unknown): string | undefined {
  if (!(err instanceof RedisReplyError)) return undefined;
  if (/unknown (DEBUG )?subcommand|syntax error/i.test(err.reply)) return "the target's DEBUG has no DIGEST-VALUE (Redis < 5.0)";
  if (/DEBUG command not allowed|unknown command|NOPERM/i.test(err.reply)) return "DEBUG not allowed";
  return undefined;
}

/** The target's DEBUG DIGEST (40 hex digits). Rejects with the reply error where DEBUG is not allowed. */
export async function datasetDigest(target: RedisEndpoint): Promise<string> {
  const conn = await RespConnection.connect(target, 10_000);
  try {
    const reply = await conn.command("DEBUG", "DIGEST");
    return Buffer.isBuffer(reply) ? reply.toString("latin1") : String(reply);
  } finally {
    conn.close();
  }
}

export interface VerifyRestoreOptions {
  target: RedisEndpoint;
  /** The target is a cluster: only the key-by-key comparison applies. */
  cluster: boolean;
  /** The DEBUG DIGEST the target should report; absent: compare key by key. */
  expectedDigest?: string;
  /** Fresh reads of the backup's RDBs (one per shard), for the key-by-key comparison. */
  open(): Promise<Array<AsyncIterable<Buffer>>>;
  /** The keys the restore was asked for. */
  selection: KeySelection;
  /** Hash field TTLs were dropped by the restore. */
  ignoreFieldTtls?: boolean;
  /** A cluster target's masters are compared only on its own host or these (--cluster-hosts); default: its own only. */
  allowedHosts?: readonly string[];
}

/** Compares the target with the backup; never rejects for the target's refusals (they are "skipped"). */
export async function verifyRestore(o: VerifyRestoreOptions): Promise<Verification> {
  let digest: { expected: string; actual: string } | undefined;
  if (o.expectedDigest !== undefined && !o.cluster) {
    let actual: string;
    try {
      actual = await datasetDigest(o.target);
    } catch (err) {
      return { outcome: "skipped", reason: debugRefusal(err) ?? `DEBUG DIGEST failed: ${(err as Error).message}` };
    }
    if (actual === o.expectedDigest) return { outcome: "equal", how: "digest", digest: actual };
    digest = { expected: o.expectedDigest, actual };
  }
  const byKeys = await verifyKeys(o);
  if (!digest) return byKeys;
  if (byKeys.outcome === "skipped") return { outcome: "different", how: "digest", digest, note: `the keys could not be compared: ${byKeys.reason}` };
  if (byKeys.outcome === "different") return { ...byKeys, how: "digest", digest };
  // Every key compares equal: the data sets differ only by keys beyond the backup's or whose TTL ran out.
  return { ...byKeys, note: `the data-set digest differed (${digest.actual}, expected ${digest.expected}) by keys the backup does not have or whose TTL ran out` };
}

type KeyVerification = Exclude<Verification, { how: "digest" }>;

async function verifyKeys(o: VerifyRestoreOptions): Promise<KeyVerification> {
  const selected = restoredKeyFilter(o.selection, EXPIRY_MARGIN_MS);
  try {
    const r = await verifyAgainstServer(await o.open(), o.target, {
      // module values are digested by their module, which we cannot run: not compared
      dbs: o.selection.dbs, keyFilter: (h) => h.type !== "module" && selected(h), ignoreFieldTtls: o.ignoreFieldTtls, maxDifferences: 1, allowedHosts: o.allowedHosts ?? [],
    });
    if (r.missing + r.different === 0) return { outcome: "equal", how: "keys", keys: r.keys, extraOnTarget: r.extraOnTarget };
    return { outcome: "different", how: "keys", first: r.differences[0], missing: r.missing, different: r.different };
  } catch (err) {
    const refused = debugRefusal(err);
    if (refused) return { outcome: "skipped", reason: refused };
    return { outcome: "skipped", reason: `the comparison failed: ${(err as Error).message}` };
  }
}

function keyName(d: KeyDifference): string {
  return `${JSON.stringify(d.key)}${d.db !== 0 ? ` (db ${d.db})` : ""}`;
}

/** One line for a task's message. */
export function describeVerification(v: Verification): string {
  switch (v.outcome) {
    case "equal":
      if (v.how === "digest") return `verified equal (digest ${v.digest})`;
      return `verified equal key by key (${v.keys} keys${v.extraOnTarget ? `; ${v.extraOnTarget} other keys on the target` : ""})${v.note ? `; ${v.note}` : ""}`;
    case "different": {
      const parts = [v.digest ? `NOT equal to the backup: digest ${v.digest.actual}, expected ${v.digest.expected}` : "NOT equal to the backup"];
      if (v.first) parts.push(`first differing key ${keyName(v.first)}${v.first.actual === "0".repeat(40) ? " (missing on the target)" : ""}`);
      if (v.missing !== undefined) parts.push(`${v.missing} missing, ${v.different ?? 0} different`);
      if (v.note) parts.push(v.note);
      return parts.join("; ");
    }
    case "skipped":
      return `not verified (${v.reason})`;
  }
}
