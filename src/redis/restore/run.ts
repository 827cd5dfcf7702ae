// Running a restore into a target: the path chosen (plan.ts), the replication path (replication.ts) or the
// command path (commands.ts) run, the result verified against the backup (verify.ts) and described in one
// message; and, after a crash, a target put back as it was (recoverTarget). The backup's files come as
// streams opened on demand, the task as a few hooks (progress, state saved for recovery, the recorded digest):
// this module knows nothing of tasks, the catalogue or the storage (src/jobs/restores.ts is the task's
// lifecycle around it).
//
//  - replication: the target loads the RDB natively through the replication protocol; the fastest, and its data
//    set is replaced as a whole. Taken when the mode allows it, the backup has one shard, no keys are selected
//    (filters, keep-existing), and the target is a standalone master that loads the RDB's version. In auto mode
//    a target that refuses it before anything changed (REPLICAOF renamed or denied, INFO refused) gets the
//    command path instead.
//  - commands: every key rebuilt by commands (RESTORE or plain writes), into any Redis, Valkey or Redis Cluster;
//    keys are merged into what the target holds. Every cluster backup (all of its shards' files as sources),
//    cluster targets, targets too old for the RDB, and filtered restores.
//
// After the restore the target is compared with the backup: DEBUG DIGEST where a standalone target received the
// whole backup, key by key otherwise. A difference is reported as verification "different" (the caller fails
// the task). A target refusing DEBUG is "not verified".
import type { Readable } from "node:stream";
import { formatBytes } from "../../units";
import type { RedisEndpoint } from "../client/resp";
import { resolveInstance } from "../client/sentinel";
import { parseRedisUrl } from "../client/url";
import { RdbReader } from "../rdb/reader";
import { restoreByCommands } from "./commands";
import { CommandRestoreError, describeDrops, RestoreSummary, summaryNotes } from "../rdb/command-summary";
import { RestoreError } from "./errors";
import { checkClusterHosts, expectedDigestAfterLoad, isEmptyTarget, OpenRdb, planRestore, RdbHead, refusedBeforeChange, RestorePlan, scoreFormatOf, targetDigest } from "./plan";
import { ConfigChange, restoreRdb, restoreTargetConfig } from "./replication";
import { RestoreRequest, selective } from "./request";
import { probeTarget, releaseTarget } from "./target";
import { describeVerification, KeySelection, restoredKeyFilter, SelectedDigest, Verification, verifyRestore } from "./verify";

/** What a finished restore reports (the task's result; the CLI prints it). */
export interface RestoreReport {
  path: "replication" | "commands";
  /** Why that path. */
  reason: string;
  /** Keys loaded (replication: all keys the target holds) or written (commands). */
  keys: number;
  skipped: number;
  failed: number;
  /** Keys not selected by the filters, and keys whose TTL had passed (not written). */
  filtered: number;
  expired: number;
  /** RDB bytes read. */
  bytes: number;
  ms: number;
  /** What was dropped as asked (--drop-field-ttls, --drop-stream-idmp), if anything. */
  dropped?: string;
  verification: Verification;
  /** The task's message. */
  message: string;
}

/** One of the backup's files (a shard), read as plain RDB bytes. */
export interface RestoreSource {
  shard: number;
  /** Plain RDB bytes. */
  bytes: number;
  /** Names it in messages ("backup file <key>"). */
  name: string;
  /** A fresh read of the plain bytes (replication streams it as the sync payload). */
  open(): Promise<Readable>;
}

/** A digest of a shard computed here, in the source's own format (the caller may attach it to the backup). */
export interface ComputedDigest {
  shard: number;
  digest: string;
  keys?: number;
}

/** What a run is told, and how it tells (the task's hooks). */
export interface RestoreRun {
  target: RedisEndpoint;
  request: RestoreRequest;
  /** The backup's files in shard order (more than one: a cluster backup). */
  sources: readonly RestoreSource[];
  /** The address the target connects back to (this node's short-lived replication endpoint). */
  advertiseHost: string;
  /** Hosts a cluster target may announce nodes on besides the registered one. */
  clusterHosts?: readonly string[];
  signal?: AbortSignal;
  /** When the work began (Date.now(); "in all" and `ms` count from it), now by default. */
  startedAt?: number;
  /** 0..95 while data goes over, 96 once it has; best effort. */
  progress(percent: number): void;
  /** Bytes read of the total (the CLI's progress bar). */
  onBytes?(done: number, total: number): void;
  /** Persists what recovery needs before an action it would have to undo (awaited: durable first). */
  saveState(state: RestoreState): Promise<void>;
  /** Shows the chosen path while it runs; the final message replaces it. */
  announce(text: string): Promise<void>;
  /** Replication refused in auto mode, going on by commands. */
  onFallback?(err: unknown): void;
  /** The digest recorded for a shard (may wait for one still being computed). */
  recordedDigest(shard: number): Promise<string | undefined>;
  /** A digest computed here where the backup had none, in the source's format. */
  computedDigest?(d: ComputedDigest): Promise<void>;
}

/**
 * What recovery needs of a run, saved before the actions it would undo: the path, our replication endpoint
 * the target was told to follow (null once it no longer does), a setting changed for the load (null once put back).
 */
export interface RestoreState {
  path?: "replication" | "commands";
  replicaOf?: { host: string; port: number } | null;
  config?: ConfigChange | null;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;

/** A stream opened only when first read: a cluster backup's shards are read one after the other. */
async function* lazily(open: OpenRdb, tap?: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  for await (const chunk of await open()) {
    tap?.(chunk);
    yield chunk;
  }
}

/** The endpoint a registered Redis URL points at now (a Sentinel URL: the current master). */
export async function resolveTarget(redisUrl: string, clusterHosts?: readonly string[], checkRole = true): Promise<RedisEndpoint> {
  const { endpoint } = await resolveInstance(parseRedisUrl(redisUrl), { allowedHosts: clusterHosts, ...(checkRole ? {} : { checkRole: false }) });
  return endpoint;
}

/**
 * Restores the sources into the target by the path the plan chooses, verifies and describes the result.
 * Rejects with the task's failure message; a verification "different" is returned (the caller decides).
 */
export async function runRestore(run: RestoreRun): Promise<RestoreReport> {
  const t0 = run.startedAt ?? Date.now();
  const first = run.sources[0]!;
  let plan = await planRestore(run.request, run.sources.length, run.target, first.open, first.name);
  await run.announce(`restoring by ${plan.path}: ${plan.reason}`);
  if (plan.path === "replication") {
    try {
      return await byReplication(run, plan, t0);
    } catch (err) {
      if (run.request.mode !== "auto" || !refusedBeforeChange(err)) throw err instanceof RestoreError ? new Error(`replication: ${err.message}`, { cause: err }) : err;
      plan = { path: "commands", reason: `the target refused replication (${(err as Error).message})` };
      run.onFallback?.(err);
      await run.announce(`restoring by commands: ${plan.reason}`);
    }
  }
  return byCommands(run, plan, t0);
}

// ---------------------------------------------------------------------------------------- replication

async function byReplication(run: RestoreRun, plan: RestorePlan, t0: number): Promise<RestoreReport> {
  const file = run.sources[0]!;
  const ep = run.target;
  const result = await restoreRdb(ep, { size: file.bytes, open: file.open }, {
    advertiseHost: run.advertiseHost, signal: run.signal, loadFromSocket: true,
    beforeReplicaOf: (endpoint) => run.saveState({ path: "replication", replicaOf: endpoint }),
    beforeConfigChange: (change) => run.saveState({ config: change }),
    afterConfigRestore: () => run.saveState({ config: null }),
    onProgress: (sent) => {
      run.progress((sent / Math.max(1, file.bytes)) * 95);
      run.onBytes?.(sent, file.bytes);
    },
  });
  run.progress(96);
  const verification = await verifyRestore({
    target: ep, cluster: false, selection: {},
    // A failure computing it (the file unreadable a second time) leaves the key-by-key comparison to report.
    expectedDigest: await expectedAfterReplication(run, file, plan.head!).catch(() => undefined),
    open: async () => [await file.open()],
  });
  const parts = [`replication: ${result.keys} keys loaded in ${result.loadMs} ms (${result.load === "socket" ? "from the socket" : "through the target's disk"}, ${formatBytes(file.bytes)}, ${seconds(Date.now() - t0)} in all)`, describeVerification(verification), ...result.warnings];
  return { path: "replication", reason: plan.reason, keys: result.keys, skipped: 0, failed: 0, filtered: 0, expired: 0, bytes: file.bytes, ms: Date.now() - t0, verification, message: parts.join("; ") };
}

/**
 * The DEBUG DIGEST the target should report after loading `file` (plan.ts), after the backup's recorded one
 * (which may still be being computed); a digest computed here in the source's format is handed back.
 */
async function expectedAfterReplication(run: RestoreRun, file: RestoreSource, head: RdbHead): Promise<string | undefined> {
  const r = await expectedDigestAfterLoad(() => run.recordedDigest(file.shard), head, run.target, file.open);
  if (r?.computed && r.sourceFormat) await run.computedDigest?.({ shard: file.shard, digest: r.digest, keys: r.keys }).catch(() => undefined);
  return r?.digest;
}

// ---------------------------------------------------------------------------------------- commands

async function byCommands(run: RestoreRun, plan: RestorePlan, t0: number): Promise<RestoreReport> {
  const { target: ep, request: r } = run;
  // Recorded first: an interrupted run is then known to have written part of the backup, nothing to undo.
  await run.saveState({ path: "commands", replicaOf: null });
  const caps = await probeTarget(ep).catch((err: unknown) => {
    throw new CommandRestoreError(`cannot use restore target ${ep.host}:${ep.port}: ${(err as Error).message}`, undefined, { cause: err });
  });
  if (caps.cluster) await checkClusterHosts(ep, run.clusterHosts ?? []);
  const selection: KeySelection = { dbs: r.dbs, match: r.match, types: r.types };
  // The data-set digest applies to a standalone target that held nothing and receives the whole backup.
  const whole = !selective(r);
  const digest = !caps.cluster && whole && (await isEmptyTarget(ep)) ? new SelectedDigest({ scoreFormat: scoreFormatOf(caps), ignoreFieldTtls: !caps.hashFieldTtl || caps.server === "valkey" }, restoredKeyFilter(selection)) : undefined;
  const total = run.sources.reduce((n, f) => n + f.bytes, 0);
  const sources = run.sources.map((f) => {
    const reader = digest ? new RdbReader(digest) : undefined;
    return lazily(f.open, reader && ((chunk) => reader.feed(chunk)));
  });
  let summary: RestoreSummary;
  try {
    summary = await restoreByCommands(sources, {
      target: ep, replace: r.replace, dbs: r.dbs, match: r.match, types: r.types, signal: run.signal,
      dropFieldTtls: r.dropFieldTtls, dropStreamIdmp: r.dropStreamIdmp, allowedHosts: run.clusterHosts ?? [],
      onProgress: (s) => {
        run.progress((s.bytesRead / Math.max(1, total)) * 95);
        run.onBytes?.(s.bytesRead, total);
      },
    });
  } catch (err) {
    const s = err instanceof CommandRestoreError ? err.summary : undefined;
    throw new Error(`commands: ${(err as Error).message}${s ? ` (${counts(s)})` : ""}; the target keeps the keys written before the failure`, { cause: err });
  }
  run.progress(96);
  const head = `commands${plan.reason === "asked for" ? "" : ` (${plan.reason})`}: ${counts(summary)}, ${formatBytes(summary.bytesRead)} in ${seconds(summary.ms)}${summaryNotes(summary)}`;
  const report = (verification: Verification, extra: string[] = []): RestoreReport => ({
    path: "commands", reason: plan.reason, keys: summary.keys, skipped: summary.skipped, failed: summary.failed, filtered: summary.filtered, expired: summary.expired,
    bytes: summary.bytesRead, ms: Date.now() - t0, verification, dropped: describeDrops(summary), message: [head, ...extra, describeVerification(verification)].join("; "),
  });
  if (summary.failed > 0) {
    const f = summary.failures[0];
    const first = f ? `first: ${JSON.stringify(f.key)}${f.db > 0 ? ` (db ${f.db})` : ""}: ${f.error}` : "";
    // Keys the backup holds are not on the target: the restore did not do what was asked.
    throw new Error(report({ outcome: "skipped", reason: `${summary.failed} keys failed` }, [first]).message);
  }
  if (!r.replace && summary.skipped > 0) return report({ outcome: "skipped", reason: `${summary.skipped} existing keys were kept, as asked` });
  const expected = digest?.result();
  const verification = await verifyRestore({
    target: ep, cluster: caps.cluster, selection, ignoreFieldTtls: !caps.hashFieldTtl || caps.server === "valkey", allowedHosts: run.clusterHosts ?? [],
    expectedDigest: expected && expected.moduleKeys === 0 ? expected.digest : undefined,
    open: async () => run.sources.map((f) => lazily(f.open)),
  });
  return report(verification);
}

function counts(s: RestoreSummary): string {
  const parts = [`${s.keys} written`, `${s.skipped} skipped`, `${s.failed} failed`];
  if (s.filtered) parts.push(`${s.filtered} not selected`);
  if (s.expired) parts.push(`${s.expired} expired`);
  return parts.join(", ");
}

// ---------------------------------------------------------------------------------------- recovery

/** What recovery found (the queue's Undone). */
export interface RecoveredTarget {
  outcome?: "succeed" | "failed";
  note?: string;
}

export interface RecoverTargetOptions {
  /** The target's registered Redis URL (a Sentinel URL: the master it names, whatever its role). */
  redisUrl: string;
  clusterHosts?: readonly string[];
  /** The backup's digest of its one file, the target's data set is checked against (undefined: none known). */
  digest(): Promise<string | undefined>;
}

/** The note an interrupted command restore gets (it has nothing to switch back); nothing otherwise. */
export function interruptedNote(state: RestoreState, why: "failed" | "interrupted"): RecoveredTarget {
  return state.path === "commands" && why === "interrupted"
    ? { note: "the restore by commands stopped part-way: the target holds the keys written until then (part of the backup); run it again to complete it" }
    : {};
}

/** Whether a run's saved state leaves anything on the target to put back. */
export function needsRecovery(state: RestoreState, why: "failed" | "interrupted"): boolean {
  return (why === "interrupted" && !!followedEndpoint(state)) || !!state.config;
}

function followedEndpoint(state: RestoreState): { host: string; port: number } | undefined {
  return state.path !== "commands" ? (state.replicaOf ?? undefined) : undefined;
}

/**
 * After a failed run the restore itself already made the target a master again and put its setting back;
 * after an interrupted one the target may still follow our dead endpoint: make it a master, put the setting
 * back, then see whether it holds the backup. Call it where needsRecovery says so.
 */
export async function recoverTarget(state: RestoreState, why: "failed" | "interrupted", o: RecoverTargetOptions): Promise<RecoveredTarget> {
  let undone = interruptedNote(state, why);
  const endpoint = followedEndpoint(state);
  const change = state.config ?? undefined;
  // The master a Sentinel names, whatever its role: an interrupted restore left it a replica of our endpoint.
  const ep = await resolveTarget(o.redisUrl, o.clusterHosts, false);
  if (why === "interrupted" && endpoint) undone = await releaseAndCheck(ep, endpoint, o.digest);
  if (change) {
    // restoreRdb puts it back itself, and says so in its error when it could not: this is for a crash, or
    // one more try at a target that was away then.
    const problem = await restoreTargetConfig(ep, change).then(() => undefined, (err: unknown) => `${change.parameter} could not be set back to ${change.original} (${(err as Error).message}); run CONFIG SET ${change.parameter} ${change.original} on it`);
    if (problem && why === "interrupted") undone = { ...undone, note: undone.note ? `${undone.note}; ${problem}` : problem };
  }
  return undone;
}

async function releaseAndCheck(ep: RedisEndpoint, endpoint: { host: string; port: number }, backupDigest: () => Promise<string | undefined>): Promise<RecoveredTarget> {
  let released;
  try {
    released = await releaseTarget(ep, endpoint);
  } catch (err) {
    // Unreachable now: recovery is retried on a later pass rather than leaving it a replica unnoticed.
    throw new RestoreError("connect", `the restore target ${ep.host}:${ep.port} could not be reached to switch it back to master: ${(err as Error).message}`);
  }
  const what = released.released ? "the target was switched back to master (REPLICAOF NO ONE)" : `the target no longer followed our endpoint (role ${released.role}) and was left as it is`;
  const digest = await backupDigest();
  if (!digest) return { outcome: "failed", note: `${what}; it holds ${released.keys} keys, which could not be verified against the backup (no digest recorded for it, and none could be computed from its file)` };
  const actual = await targetDigest(ep).catch(() => undefined);
  if (actual === undefined) return { outcome: "failed", note: `${what}; it holds ${released.keys} keys (DEBUG DIGEST is not allowed there, so they could not be verified)` };
  return actual === digest
    ? { outcome: "succeed", note: `${what}; its data set is verified equal to the backup (digest ${digest})` }
    : { outcome: "failed", note: `${what}; its data set differs from the backup (digest ${actual}, backup ${digest}): the load did not complete` };
}
