// Restores an RDB into a running Redis by acting as its replication master: the target is told
// `REPLICAOF <us>`, connects back, and we answer its PSYNC with a full resync whose payload is the backup.
// The target flushes and loads it natively (any encoding, any RDB version it understands); then
// `REPLICAOF NO ONE` makes it a master again. See /work/shared/spec/rdb-capture.md, last section.
//
// Safety rules, because a replica that fails to load leaves the target damaged:
//  - we refuse before touching the target when we can tell the load would fail (not an RDB, RDB version newer
//    than the target, bad checksum on targets that parse while receiving);
//  - the RDB's 8-byte CRC trailer is withheld until the streamed CRC matches it, so a disk-loading target
//    (the Redis default) never receives a complete corrupt file and keeps its data;
//  - whatever happens after REPLICAOF, we send `REPLICAOF NO ONE` so the target ends up a master.
//
// Loading from the socket (option loadFromSocket, what RestoreInstance uses): a disk-loading target writes the
// whole transfer to a file and only then loads it, so transfer and load run one after the other. Where CONFIG
// SET is allowed we switch the target to `repl-diskless-load swapdb` for the load (and back afterwards): it parses
// while receiving and keeps its old data set until the new one is complete, so a transfer we abandon (a short
// read) leaves the old data (checked on Redis 6.2, 7.0, 7.2, 7.4, Valkey 8.0). But a target parsing from the
// socket EXITS on corrupt content ("Internal error in RDB reading ... Terminating server"), so every byte is first
// parsed by our RDB engine and forwarded only once the unit it belongs to parsed cleanly and passed the checks a
// loading Redis makes (rdb/load-check.ts: duplicate keys and members, NaN scores, stream group consistency):
// such damage stops the transfer before the target sees it; damage inside a value that leaves it well-formed is
// caught by the withheld CRC trailer. Should
// our reader stop short on an RDB the CRC says is intact (a format it does not know, a unit too long to hold),
// the rest is read for the CRC and then re-read and forwarded unchecked. This replaces reading the whole file
// twice (the CRC pre-check, still used for targets already loading from the socket when loadFromSocket is off).
import net from "node:net";
import { Readable } from "node:stream";
import { crc64Equals, crc64Init, crc64Update } from "../rdb/crc64";
import { LoadCheck, LoadRuleViolation } from "../rdb/load-check";
import { RdbReader } from "../rdb/reader";
import { RedisEndpoint, RedisReplyError, RespConnection } from "../client/resp";
import { RestoreError, RestorePhase } from "./errors";
import { normalizeAddress } from "../../address";
import { MasterListener, payloadPreamble, SyncRequest, writeWithBackpressure } from "./master";
import { classifyTargetError, info, maxRdbVersion, openTarget, readTargetState, TargetState, totalKeys } from "./target";
import { testHook } from "../../test-hooks";

export { RestoreError, RestoreErrorKind, RestorePhase } from "./errors";
export { verifyTargetPassword } from "./target";

export interface RdbSource {
  /** Exact byte length of the plain (uncompressed) RDB. */
  size: number;
  /** A fresh stream of the RDB bytes; may be called twice (once to pre-verify the checksum). */
  open(): Promise<Readable>;
}

export interface RestoreOptions {
  /** Address the target connects to for the replication link. Default 127.0.0.1. */
  advertiseHost?: string;
  /** Interface our short-lived listener binds. Default: advertiseHost if it is loopback, else all interfaces. */
  listenHost?: string;
  /** Longest time without progress (connect-back is capped at 30 s of it). Default 120000. */
  timeoutMs?: number;
  onProgress?(sentBytes: number): void;
  /**
   * Awaited just before the target is told REPLICAOF <endpoint>: the caller records the endpoint durably, so
   * that if this process dies the target can be found and switched back to master (releaseTarget).
   */
  beforeReplicaOf?(endpoint: { host: string; port: number }): Promise<void>;
  signal?: AbortSignal;
  /**
   * Let the target parse the RDB from the socket while it arrives (see the header): switch its
   * repl-diskless-load to swapdb for the load when CONFIG SET is allowed and its memory leaves room for the old
   * data set beside the new one, validate the stream on the way. Default false (disk load, as Redis defaults).
   */
  loadFromSocket?: boolean;
  /**
   * Awaited before a target setting is changed for the load (loadFromSocket): the caller records the original
   * value durably, so that if this process dies it can be put back (restoreTargetConfig).
   */
  beforeConfigChange?(change: ConfigChange): Promise<void>;
  /** Awaited once that setting has been put back (the caller's record of it can go). */
  afterConfigRestore?(change: ConfigChange): Promise<void>;
  /**
   * loadFromSocket: bytes held back while one unit of the RDB (a key's compact encoding, a string piece) is
   * incomplete, before validation gives up and the file is proven by its CRC instead. Default 64 MiB.
   */
  maxHeldBytes?: number;
}

/** A target setting changed for the duration of a restore. */
export interface ConfigChange {
  parameter: "repl-diskless-load";
  original: string;
  value: string;
}

export interface RestoreResult {
  /** Keys in the target after the restore, summed over all databases (DBSIZE when only db0 is used). */
  keys: number;
  /** Milliseconds from REPLICAOF until the target reported the data set loaded. */
  loadMs: number;
  /** How the target received the data: written to its disk first, or parsed from the socket. */
  load: "disk" | "socket";
  /** Problems that did not stop the restore (e.g. a setting that could not be put back). */
  warnings: string[];
}

const CONNECT_BACK_LIMIT_MS = 30_000;
const POLL_MS = 20;
const RDB_HEADER = 9; // "REDIS" + 4 ASCII digits

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function asBuffer(v: unknown): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v as string | Uint8Array);
}

/** Parses the RDB header; undefined when it is not an RDB. */
function rdbVersion(head: Buffer): number | undefined {
  if (head.length < RDB_HEADER || head.toString("latin1", 0, 5) !== "REDIS") return undefined;
  const digits = head.toString("latin1", 5, 9);
  return /^\d{4}$/.test(digits) ? Number(digits) : undefined;
}

/** RDB >= 5 ends with an 8-byte CRC-64 of everything before it (all zero when rdbchecksum was off). */
const hasCrcTrailer = (version: number): boolean => version >= 5;

/** Reads a whole RDB stream and reports whether its CRC trailer matches (true also when it is disabled). */
async function checksumMatches(stream: Readable, size: number, guard: <T>(p: Promise<T>) => Promise<T>): Promise<boolean> {
  const bodyEnd = size - 8;
  const crc = crc64Init();
  const trailer = Buffer.alloc(8);
  let read = 0;
  const it = stream[Symbol.asyncIterator]();
  for (;;) {
    const r = await guard(it.next());
    if (r.done) break;
    const chunk = asBuffer(r.value);
    if (read + chunk.length > size) throw new RestoreError("source", `RDB source produced more than the announced ${size} bytes`);
    const body = Math.max(0, Math.min(chunk.length, bodyEnd - read));
    crc64Update(crc, chunk, 0, body);
    if (body < chunk.length) chunk.copy(trailer, read + body - bodyEnd, body);
    read += chunk.length;
  }
  if (read !== size) throw new RestoreError("source", `RDB source produced ${read} bytes, expected ${size}`);
  return trailer.every((b) => b === 0) || crc64Equals(crc, trailer);
}

type Phase = RestorePhase;

/** One restore run: owns every resource, the progress watchdog and the first failure. */
class Session {
  phase: Phase = "prepare";
  conn?: RespConnection;
  listener?: MasterListener;
  replica?: SyncRequest;
  private sources: Readable[] = [];
  replicaofSent = false;
  /** The setting changed for the load, to put back whatever happens. */
  configChanged?: ConfigChange;
  settled = false;
  sent = 0;
  private error?: RestoreError;
  private lastProgress = Date.now();
  private rejectFailed!: (e: RestoreError) => void;
  private readonly failed: Promise<never>;
  private readonly watchdog: NodeJS.Timeout;
  private readonly onAbort = (): void => this.fail(new RestoreError("aborted", "restore aborted by the caller"));

  constructor(readonly target: RedisEndpoint, readonly rdb: RdbSource, readonly opts: RestoreOptions, readonly timeoutMs: number) {
    this.failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => undefined); // observed through guard(); never an unhandled rejection
    this.watchdog = setInterval(() => this.checkProgress(), Math.max(50, Math.min(1000, timeoutMs / 4)));
    opts.signal?.addEventListener("abort", this.onAbort, { once: true });
    if (opts.signal?.aborted) this.onAbort();
  }

  get where(): string {
    return `${this.target.host}:${this.target.port}`;
  }

  touch(): void {
    this.lastProgress = Date.now();
  }

  fail(err: RestoreError): void {
    if (this.error || this.settled) return;
    this.error = err;
    this.rejectFailed(err);
  }

  /** Races a step against the first failure (timeout, abort, lost link). */
  guard<T>(p: Promise<T>): Promise<T> {
    if (this.error) return Promise.reject(this.error);
    return Promise.race([p, this.failed]);
  }

  async openSource(): Promise<Readable> {
    let stream: Readable;
    try {
      stream = await this.guard(this.rdb.open());
    } catch (err) {
      if (err instanceof RestoreError) throw err;
      throw new RestoreError("source", `cannot open the RDB: ${(err as Error).message}`, { cause: err });
    }
    this.sources.push(stream);
    // A read error surfaces through the iterator; this listener only keeps it from being unhandled.
    stream.on("error", () => undefined);
    return stream;
  }

  private checkProgress(): void {
    if (this.settled || this.error) return; // failing already (the listener may be closed)
    const limit = this.phase === "connect-back" ? Math.min(this.timeoutMs, CONNECT_BACK_LIMIT_MS) : this.timeoutMs;
    if (Date.now() - this.lastProgress <= limit) return;
    if (this.phase === "connect-back") {
      this.fail(new RestoreError("connect", `target ${this.where} did not connect back to ${this.advertiseHost}:${this.listener?.port} within ${limit} ms; set advertiseHost to an address the target can reach`));
    } else {
      this.fail(new RestoreError("timeout", `no progress for ${limit} ms during ${this.phase} (${this.sent} of ${this.rdb.size} bytes sent)`));
    }
  }

  get advertiseHost(): string {
    return this.opts.advertiseHost ?? "127.0.0.1";
  }

  /**
   * Our client connection went away before we were done: from the start, so that a target dying while we wait
   * for it to connect back fails the restore at once rather than after the connect-back limit.
   */
  watchClient(): void {
    const clientClosed = (): void => {
      const during = this.phase === "transfer" || this.phase === "load";
      this.fail(new RestoreError(during ? "load" : "connect", `lost the connection to target ${this.where} during ${this.phase}${during ? " (did it crash loading the RDB? see its log)" : ""}`));
    };
    if (this.conn!.socket.destroyed) clientClosed();
    else this.conn!.socket.once("close", clientClosed);
  }

  /** The replica's link went away before we were done. */
  watchReplica(): void {
    const replicaClosed = (): void => {
      const detail = this.phase === "transfer" ? `after receiving ${this.sent} of ${this.rdb.size} bytes` : "while loading";
      this.fail(new RestoreError("load", `target ${this.where} closed the replication link ${detail}: it could not load the RDB (see the target's log)`));
    };
    const socket = this.replica!.socket;
    if (socket.destroyed) replicaClosed();
    else socket.once("close", replicaClosed);
  }

  /** After a failure: stop feeding the target and make it a master again. Returns a problem, if any. */
  async restoreMasterRole(): Promise<string | undefined> {
    this.settled = true;
    // Closing the link first aborts a load that parses from the socket; the listener refuses its retries.
    this.releaseNetwork();
    if (!this.replicaofSent) return undefined;
    const loadingDeadline = Date.now() + this.timeoutMs;
    let connectFailures = 0;
    let conn = this.conn;
    for (;;) {
      try {
        conn ??= await RespConnection.connect(this.target, 5000);
        await conn.command("REPLICAOF", "NO", "ONE");
        if (conn !== this.conn) conn.close();
        return undefined;
      } catch (err) {
        const loading = err instanceof RedisReplyError && /^LOADING\b/.test(err.reply);
        if (!(err instanceof RedisReplyError)) {
          conn?.close();
          conn = undefined;
          connectFailures++;
        }
        // A disk-loading target cannot be interrupted; it answers again once its load is over.
        const giveUp = loading ? Date.now() > loadingDeadline : err instanceof RedisReplyError || connectFailures >= 10;
        if (giveUp) {
          conn?.close();
          return `the target could not be switched back to master (${(err as Error).message}); run REPLICAOF NO ONE on it`;
        }
        await sleep(loading ? 100 : 250);
      }
    }
  }

  /** Puts back a setting changed for the load. Returns a problem, if any. */
  async revertConfig(): Promise<string | undefined> {
    const change = this.configChanged;
    if (!change) return undefined;
    const usable = this.conn && !this.conn.socket.destroyed ? this.conn : undefined;
    try {
      await restoreTargetConfig(this.target, change, usable);
      this.configChanged = undefined;
      await this.opts.afterConfigRestore?.(change);
      return undefined;
    } catch (err) {
      return `${change.parameter} could not be set back to ${change.original} (${(err as Error).message}); run CONFIG SET ${change.parameter} ${change.original} on it`;
    }
  }

  releaseNetwork(): void {
    this.listener?.close();
    for (const s of this.sources) s.destroy();
  }

  dispose(): void {
    this.settled = true;
    clearInterval(this.watchdog);
    this.opts.signal?.removeEventListener("abort", this.onAbort);
    this.releaseNetwork();
    this.conn?.close();
  }
}

/**
 * Makes `target` load the RDB by acting as its replication master. The target's data is replaced by the
 * backup's. Rejects with RestoreError (see its `kind`); after any failure the target is left a master.
 * Targets that are replicas, in cluster mode, or use TLS for replication (tls-replication yes) are refused.
 */
export async function restoreRdb(target: RedisEndpoint, rdb: RdbSource, opts: RestoreOptions = {}): Promise<RestoreResult> {
  const session = new Session(target, rdb, opts, opts.timeoutMs ?? 120_000);
  try {
    const result = await run(session);
    const problem = await session.revertConfig();
    if (problem) result.warnings.push(problem);
    return result;
  } catch (err) {
    let e = err instanceof RestoreError ? err : new RestoreError("load", `restore failed: ${(err as Error).message}`, { cause: err });
    const phase = session.phase;
    const problems = [await session.restoreMasterRole(), await session.revertConfig()].filter((x): x is string => x !== undefined);
    if (problems.length) e = new RestoreError(e.kind, `${e.message}; also, ${problems.join("; ")}`, { cause: e.cause });
    // Where it failed tells the caller whether the target's data could have changed (see RestoreError.phase).
    e.phase ??= phase;
    throw e;
  } finally {
    session.dispose();
  }
}

async function run(s: Session): Promise<RestoreResult> {
  const { target, rdb, opts } = s;
  if (!Number.isSafeInteger(rdb.size) || rdb.size < RDB_HEADER + 1) {
    throw new RestoreError("load", `an RDB of ${rdb.size} bytes cannot be valid`);
  }
  s.conn = await s.guard(openTarget(target, Math.min(s.timeoutMs, 10_000)));
  s.watchClient();
  const state = await s.guard(readTargetState(s.conn, target));
  if (state.role !== "master") {
    throw new RestoreError("unsupported", `target ${s.where} is a replica of ${state.masterHost}:${state.masterPort}; restore into its master, or run REPLICAOF NO ONE on it first`);
  }
  if (state.clusterEnabled) throw new RestoreError("unsupported", `target ${s.where} runs in cluster mode, where REPLICAOF to an outside master is not allowed`);
  if (state.loading) throw new RestoreError("unsupported", `target ${s.where} is loading a data set; try again later`);

  // Read the header before touching the target, keeping the bytes to send later.
  const it = (await s.openSource())[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLen = 0;
  while (headLen < RDB_HEADER) {
    const r = await s.guard(it.next()).catch(sourceError);
    if (r.done) break;
    const b = asBuffer(r.value);
    head.push(b);
    headLen += b.length;
  }
  const first = Buffer.concat(head);
  const version = rdbVersion(first);
  if (version === undefined) throw new RestoreError("load", "not an RDB file (it does not start with REDIS and a 4-digit version); the target was not touched");
  const max = maxRdbVersion(state.version);
  if (max !== undefined && version > max) {
    throw new RestoreError("load", `RDB format version ${version} is newer than target ${s.where} (Redis ${state.version}) can load (up to ${max}); the target was not touched`);
  }
  // A target that parses while receiving (repl-diskless-load on-empty-db/swapdb, or unknown) would act on
  // corrupt bytes before the trailer is checked: either we validate the stream on the way (loadFromSocket),
  // or the whole file is verified first.
  const socket = opts.loadFromSocket ? await s.guard(prepareSocketLoad(s, state, rdb.size)) : false;
  if (!socket && state.disklessLoad !== "disabled" && hasCrcTrailer(version)) {
    if (!(await checksumMatches(await s.openSource(), rdb.size, (p) => s.guard(p)).catch(sourceError))) {
      throw new RestoreError("load", "the RDB checksum does not match its content (corrupt file); the target was not touched");
    }
  }

  const advertise = s.advertiseHost;
  // The target connects back from the address we reach it at (no NAT between us is assumed); loopback peers
  // are one machine whatever loopback address they use.
  const targetAddress = normalizeAddress(s.conn.socket.remoteAddress ?? "");
  const allowPeer = (peer: string) => peer === targetAddress || (isLoopback(peer) && isLoopback(targetAddress));
  s.listener = await MasterListener.listen(opts.listenHost ?? (isLoopback(advertise) ? advertise : undefined), allowPeer);
  const port = s.listener.port;
  const start = Date.now();
  s.phase = "connect-back";
  s.touch();
  await s.guard(opts.beforeReplicaOf?.({ host: advertise, port }) ?? Promise.resolve());
  s.replicaofSent = true; // set before sending: if the reply is lost we must still undo it
  try {
    await s.guard(s.conn.command("REPLICAOF", advertise, port));
  } catch (err) {
    // A refusal (renamed, ACL, cluster mode) changed nothing: no REPLICAOF NO ONE is owed.
    if (err instanceof RedisReplyError) s.replicaofSent = false;
    throw classifyTargetError(err, target, "REPLICAOF");
  }
  testHook("restore-replicaof-sent"); // crash point: the target follows an endpoint about to vanish
  s.replica = await s.guard(s.listener.waitForSync());
  s.watchReplica();

  s.phase = "transfer";
  s.touch();
  await sendPayload(s, s.replica, first, it, version, socket);

  s.phase = "load";
  s.touch();
  await waitUntilLoaded(s, port);
  testHook("restore-loaded"); // crash point: the target holds the backup but is still our replica
  const loadMs = Date.now() - start;

  s.phase = "finish";
  s.settled = true; // the target now drops our link on purpose
  try {
    await s.conn.command("REPLICAOF", "NO", "ONE");
  } catch (err) {
    s.settled = false;
    throw new RestoreError("load", `data loaded, but REPLICAOF NO ONE failed: ${(err as Error).message}`, { cause: err });
  }
  const keys = await totalKeys(s.conn);
  return { keys, loadMs, load: socket || state.disklessLoad === "swapdb" ? "socket" : "disk", warnings: [] };
}

/** Below this share of the machine's memory, a target with data may hold its old data set beside the new one. */
const SWAPDB_MEMORY_SHARE = 0.25;

/**
 * Decides whether the target will parse from the socket, switching repl-diskless-load to swapdb when that is
 * allowed and safe. swapdb keeps the old data set in memory until the new one is loaded, so a target with data
 * is switched only when its used memory is a small share of the machine's (the disk path needs room for the
 * new data set only). on-empty-db would flush nothing on an empty target but fall back to disk on a non-empty
 * one, so swapdb it is.
 */
async function prepareSocketLoad(s: Session, state: TargetState, size: number): Promise<boolean> {
  const conn = s.conn!;
  const mode = state.disklessLoad;
  if (mode === undefined) return false; // CONFIG GET refused: we cannot know, nor change it
  if (mode === "swapdb") return true;
  const keys = await totalKeys(conn);
  if (mode === "on-empty-db" && keys === 0) return true;
  if (keys > 0) {
    const mem = await info(conn, "memory");
    const used = Number(mem.get("used_memory"));
    const total = Number(mem.get("total_system_memory"));
    if (!(total > 0) || !(used + size <= total * SWAPDB_MEMORY_SHARE)) return false;
  }
  const change: ConfigChange = { parameter: "repl-diskless-load", original: mode, value: "swapdb" };
  await s.opts.beforeConfigChange?.(change);
  try {
    await conn.command("CONFIG", "SET", change.parameter, change.value);
  } catch (err) {
    if (err instanceof RedisReplyError) return false; // CONFIG SET refused (renamed, ACL, protected): disk path
    throw classifyTargetError(err, s.target, "CONFIG SET");
  }
  s.configChanged = change;
  return true;
}

/**
 * Puts a setting changed for a restore back to its original value, if it still has the value we set (someone
 * who changed it since is not overruled). Used after the restore and by recovery after a crash.
 */
export async function restoreTargetConfig(target: RedisEndpoint, change: ConfigChange, conn?: RespConnection): Promise<"restored" | "unchanged"> {
  const own = conn ?? (await openTarget(target, 10_000));
  try {
    const r = await own.command("CONFIG", "GET", change.parameter);
    const now = Array.isArray(r) && r.length >= 2 ? String(r[1]) : undefined;
    if (now !== change.value || now === change.original) return "unchanged";
    await own.command("CONFIG", "SET", change.parameter, change.original);
    return "restored";
  } finally {
    if (!conn) own.close();
  }
}

function sourceError(err: unknown): never {
  if (err instanceof RestoreError) throw err;
  throw new RestoreError("source", `reading the RDB failed: ${(err as Error).message}`, { cause: err });
}

/** Every callback present (and empty), so the reader decodes every value completely: nothing is skipped. */
/** Bytes held back while one unit of the RDB is incomplete; beyond it we stop validating (see StreamCheck). */
const MAX_HELD_BYTES = 64 << 20;

/**
 * Validation of a stream a target parses while receiving: the bytes of the RDB body are held until our reader
 * has parsed the unit they belong to, so a target never receives bytes it would choke on. After the first
 * rejection (or a unit too large to hold) nothing more is released; the caller decides by the CRC.
 */
class StreamCheck {
  // Every value decoded and checked against what a loading Redis refuses (load-check.ts).
  private readonly reader = new RdbReader(new LoadCheck(), { verifyChecksum: false });
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Absolute offset up to which bytes were released. */
  released = 0;
  failure: string | undefined;
  /** A rule a loading Redis enforces is broken: nothing more may be sent, whatever the CRC says. */
  violation: string | undefined;

  constructor(private readonly bodyEnd: number, private readonly maxHeld: number) {}

  /** Takes the next chunk (body and trailer bytes alike) and returns the body bytes now safe to send. */
  take(chunk: Buffer, body: Buffer): Buffer[] {
    if (this.failure !== undefined) return [];
    try {
      this.reader.feed(chunk);
    } catch (err) {
      if (err instanceof LoadRuleViolation) this.violation = err.message;
      return this.stop((err as Error).message);
    }
    if (body.length) {
      this.held.push(body);
      this.heldBytes += body.length;
    }
    let n = Math.min(this.reader.offset, this.bodyEnd) - this.released;
    const out: Buffer[] = [];
    while (n > 0 && this.held.length) {
      const b = this.held[0]!;
      if (b.length <= n) {
        out.push(b);
        this.held.shift();
        n -= b.length;
        this.heldBytes -= b.length;
        this.released += b.length;
      } else {
        out.push(b.subarray(0, n));
        this.held[0] = b.subarray(n);
        this.heldBytes -= n;
        this.released += n;
        n = 0;
      }
    }
    if (this.heldBytes > this.maxHeld) this.stop(`a unit of the RDB at offset ${this.released} is larger than ${this.maxHeld} bytes`);
    return out;
  }

  private stop(why: string): [] {
    this.failure = why;
    this.held = [];
    this.heldBytes = 0;
    return [];
  }
}

/**
 * Streams preamble + RDB with backpressure; the CRC trailer goes out only if it matches what was sent. With
 * `validate` (a target parsing from the socket), bytes go out only once our reader has parsed them.
 */
async function sendPayload(s: Session, replica: SyncRequest, first: Buffer, it: AsyncIterator<unknown>, version: number, validate: boolean): Promise<void> {
  const size = s.rdb.size;
  const socket: net.Socket = replica.socket;
  const checkCrc = hasCrcTrailer(version) && size >= RDB_HEADER + 8;
  const bodyEnd = checkCrc ? size - 8 : size;
  const trailer = Buffer.alloc(size - bodyEnd);
  const crc = crc64Init();
  const check = validate ? new StreamCheck(bodyEnd, s.opts.maxHeldBytes ?? MAX_HELD_BYTES) : undefined;
  let read = 0;
  const write = async (buf: Buffer): Promise<void> => {
    await s.guard(writeWithBackpressure(socket, buf));
    s.touch();
  };
  const send = async (buf: Buffer): Promise<void> => {
    await write(buf);
    const before = s.sent;
    s.sent += buf.length;
    if (before * 2 < size && s.sent * 2 >= size) testHook("restore-transfer"); // crash point: half the payload sent
    s.opts.onProgress?.(s.sent);
  };
  const feed = async (chunk: Buffer): Promise<void> => {
    if (read + chunk.length > size) throw new RestoreError("source", `RDB source produced more than the announced ${size} bytes`);
    const body = chunk.subarray(0, Math.max(0, Math.min(chunk.length, bodyEnd - read)));
    if (body.length && checkCrc) crc64Update(crc, body);
    if (check) {
      // Reading counts as progress even while bytes are held back (a long unit, or the rest read for the CRC).
      s.touch();
      for (const b of check.take(chunk, body)) await send(b);
      // The target is still waiting for the rest; closing now makes it discard the partial transfer.
      if (check.violation) throw new RestoreError("load", `${check.violation}; the transfer was abandoned before the target loaded anything`);
    } else if (body.length) {
      await send(body);
    }
    if (body.length < chunk.length) chunk.copy(trailer, read + body.length - bodyEnd, body.length);
    read += chunk.length;
  };

  await write(payloadPreamble(replica, s.listener!.replid, size));
  await feed(first);
  for (;;) {
    const r = await s.guard(it.next()).catch(sourceError);
    if (r.done) break;
    await feed(asBuffer(r.value));
  }
  if (read !== size) throw new RestoreError("source", `RDB source produced ${read} bytes, expected ${size}`);
  const crcDisabled = !checkCrc || trailer.every((b) => b === 0);
  if (!crcDisabled && !crc64Equals(crc, trailer)) {
    // The target is still waiting for the rest; closing now makes it discard the partial transfer.
    throw new RestoreError("load", `the RDB checksum does not match its content (corrupt file); the transfer was abandoned before the target loaded anything`);
  }
  if (check && check.released < bodyEnd) {
    // Our reader stopped short of the end although the file is whole by its CRC (a format it does not know,
    // or a unit too large to hold back): send the rest from a second read, unchecked.
    if (crcDisabled) {
      throw new RestoreError("load", `the RDB could not be validated before the target parsed it (${check.failure ?? "incomplete"}) and has no checksum to prove it intact; the transfer was abandoned before the target loaded anything`);
    }
    await resend(s, check.released, bodyEnd, send);
  }
  if (trailer.length) await write(trailer);
  testHook("restore-payload-sent"); // crash point: every byte written, the target may or may not have loaded them
  s.sent = size;
  s.opts.onProgress?.(size);
}

/** Sends bytes [from, to) of the RDB from a fresh read of the source. */
async function resend(s: Session, from: number, to: number, send: (b: Buffer) => Promise<void>): Promise<void> {
  let at = 0;
  const it = (await s.openSource())[Symbol.asyncIterator]();
  while (at < to) {
    const r = await s.guard(it.next()).catch(sourceError);
    if (r.done) throw new RestoreError("source", `RDB source ended at ${at} bytes on the second read, expected ${s.rdb.size}`);
    const chunk = asBuffer(r.value);
    const lo = Math.max(from, at) - at;
    const hi = Math.min(to, at + chunk.length) - at;
    if (hi > lo) await send(chunk.subarray(lo, hi));
    at += chunk.length;
  }
}

/** Polls the target until it reports our link up and its load finished. */
async function waitUntilLoaded(s: Session, port: number): Promise<void> {
  const conn = s.conn!;
  let lastSig = "";
  for (;;) {
    const [repl, pers] = await s.guard(Promise.all([info(conn, "replication"), info(conn, "persistence")]));
    if (repl.get("role") !== "slave" || Number(repl.get("master_port")) !== port) {
      throw new RestoreError("load", `target ${s.where} stopped replicating from us during the load (role ${repl.get("role")}); was REPLICAOF run by someone else?`);
    }
    const sig = [repl.get("master_link_status"), repl.get("master_sync_read_bytes"), pers.get("loading"), pers.get("loading_loaded_bytes")].join("|");
    if (sig !== lastSig) {
      lastSig = sig;
      s.touch();
    }
    const loaded = repl.get("master_link_status") === "up" && repl.get("master_sync_in_progress") === "0" && pers.get("loading") === "0" && pers.get("async_loading") !== "1";
    if (loaded) return;
    await s.guard(sleep(POLL_MS));
  }
}
