// Restore by commands: rebuild every key of an RDB on a running target (standalone or Redis Cluster) through
// pipelined commands, without replication. Works where restore-by-replication cannot: a target that refuses
// SYNC/REPLICAOF, an older or newer server, Valkey, a cluster with a different shard count.
//
// Strings always go by one `SET key value [NX] [PXAT t | PX ms]` (atomic, and cheaper for the server than
// RESTORE); a string over stringPieceBytes (1 MiB) is sent as SET + APPEND pieces, then PEXPIREAT.
// Other values take one of two paths (see src/redis/rdb/dump.ts for the encodings):
//  - RESTORE with a DUMP payload re-encoded for the target's RDB version (default whenever the target allows
//    the RESTORE command and the value fits maxPayloadBytes). Atomic per key; keeps LRU/LFU hints (5.0+).
//  - plain commands otherwise (mode "commands", RESTORE refused, or a value bigger than maxPayloadBytes):
//      list    RPUSH key batch...        set   SADD key batch...        zset  ZADD key score member ...
//      hash    HSET key f v ... (HMSET before 4.0), HPEXPIREAT key t FIELDS 1 f for field TTLs (7.4+)
//      stream  XADD key id f v ... per entry (an empty stream: XGROUP CREATE ... MKSTREAM + DESTROY),
//              XSETID key last-id [ENTRIESADDED n MAXDELETEDID id], XGROUP CREATE key g id [ENTRIESREAD n],
//              XCLAIM key g consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID per pending entry,
//              XGROUP CREATECONSUMER for consumers without pending entries (6.2+)
//      then PEXPIREAT key t for an expiring collection.
//    Not atomic per key: a concurrent reader may see a key partially built.
// Replace (default): RESTORE ... REPLACE, or DEL before a collection's commands (SET overwrites a string).
// Keep (replace: false): RESTORE without REPLACE (BUSYKEY -> skipped), SET NX, or for a collection an
// `EXISTS key` gate: its commands are held until the reply and dropped when the key exists.
// Keys whose TTL has already passed are not written (counted as expired).
//
// Flow control: at most maxInFlightBytes of commands sent without replies; the RDB source is read only as
// fast as the target answers. A target that dies mid-restore makes restoreByCommands reject with a
// CommandRestoreError naming the target and the progress so far.
//
// The pieces: target.ts probes what the target can do; in ../rdb/ (shared with the RESP export, export.ts),
// command-visitor.ts turns keys into commands, command-replies.ts settles each key from the replies,
// command-summary.ts holds the options, the target's capabilities and the summary.
import { Readable } from "node:stream";
import { ClusterRouter, CommandRouter, StandaloneRouter } from "../client/cluster";
import { PipelineError } from "../client/pipelined";
import { RdbParseError } from "../rdb/errors";
import { RdbReader } from "../rdb/reader";
import { RestoreShared } from "../rdb/command-replies";
import { CommandRestoreError, CommandRestoreOptions, emptySummary, RestoreSummary, TargetCapabilities } from "../rdb/command-summary";
import { RestoreVisitor } from "../rdb/command-visitor";
import { probeTarget } from "./target";

/** An RDB: a stream of chunks (file/blob/socket stream, async generator) or a whole Buffer. */
export type RdbSource = AsyncIterable<Buffer> | Readable | Buffer;

async function* bufferChunks(b: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += 1 << 16) yield b.subarray(i, i + (1 << 16));
}

/** Connects to the target: a cluster router when it is a cluster node, else a standalone one. */
export async function connectRouter(opts: CommandRestoreOptions, caps: TargetCapabilities): Promise<CommandRouter> {
  if (caps.cluster) return ClusterRouter.connect(opts.target, { timeoutMs: opts.timeoutMs, slotMap: opts.slotMap, allowedHosts: opts.allowedHosts });
  return StandaloneRouter.connect(opts.target, opts.timeoutMs);
}

/**
 * Restores one or more RDB streams (e.g. one per shard of a cluster backup) into the target by commands.
 * Resolves with the summary (per-key failures are counted there, not thrown); rejects with a
 * CommandRestoreError when the RDB is corrupt, the target becomes unreachable or stops answering, or the
 * caller aborts. Keys already written stay written.
 */
export async function restoreByCommands(sources: RdbSource | RdbSource[], opts: CommandRestoreOptions): Promise<RestoreSummary> {
  const t0 = Date.now();
  const where = `${opts.target.host}:${opts.target.port}`;
  let caps: TargetCapabilities;
  try {
    caps = await probeTarget(opts.target, opts.timeoutMs);
  } catch (err) {
    throw new CommandRestoreError(`cannot use restore target ${where}: ${(err as Error).message}`, undefined, { cause: err });
  }
  const summary = emptySummary(caps);
  let router: CommandRouter;
  try {
    router = await connectRouter(opts, caps);
  } catch (err) {
    throw new CommandRestoreError(`cannot connect to restore target ${where}: ${(err as Error).message}`, summary, { cause: err });
  }
  const shared = new RestoreShared(summary, opts, router);
  const maxInFlight = opts.maxInFlightBytes ?? 16 << 20;
  // an abort while we wait for replies closes the connections, which ends the wait at once
  const onAbort = (): void => router.close();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const list = (Array.isArray(sources) ? sources : [sources]).map((x) => (Buffer.isBuffer(x) ? bufferChunks(x) : x));
  const progress = (): void => {
    summary.ms = Date.now() - t0;
    summary.bytesSent = router.bytesSent;
    if (router instanceof ClusterRouter) summary.redirections = { ...router.redirections };
  };
  try {
    for (let i = 0; i < list.length; i++) {
      const visitor = new RestoreVisitor(router, caps, opts, shared);
      const reader = new RdbReader(visitor);
      for await (const chunk of list[i] as AsyncIterable<Buffer>) {
        if (opts.signal?.aborted) throw new CommandRestoreError(`restore aborted after ${summary.bytesRead} bytes of the RDB`, summary);
        summary.bytesRead += chunk.length;
        reader.feed(chunk);
        router.flush();
        if (router.pendingBytes + shared.heldBytes > maxInFlight) await router.waitBelow(maxInFlight / 2);
        if (opts.onProgress) {
          progress();
          opts.onProgress(summary);
        }
      }
      reader.end();
    }
    await router.finish();
    progress();
    return summary;
  } catch (err) {
    progress();
    const base = `restore into ${where} failed after ${summary.keys} keys written, ${summary.bytesRead} RDB bytes read`;
    if (err instanceof CommandRestoreError) throw err;
    if (opts.signal?.aborted) throw new CommandRestoreError(`restore into ${where} aborted after ${summary.keys} keys written, ${summary.bytesRead} RDB bytes read`, summary, { cause: err });
    if (err instanceof RdbParseError) throw new CommandRestoreError(`${base}: corrupt RDB: ${err.message}`, summary, { cause: err });
    if (err instanceof PipelineError) throw new CommandRestoreError(`${base}: ${err.message}`, summary, { cause: err });
    throw new CommandRestoreError(`${base}: ${(err as Error).message}`, summary, { cause: err });
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    router.close();
  }
}
