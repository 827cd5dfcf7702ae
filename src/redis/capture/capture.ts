// Takes an RDB snapshot of a running Redis over the network by speaking the replica side of the replication
// handshake (what `redis-cli --rdb` does), streaming the payload straight into a sink while the RDB inspector
// checks it on the way. Nothing is buffered beyond a socket chunk: memory stays flat for any snapshot size.
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { CodedError } from "../client/errors";
import { RedisEndpoint, RedisReplyError, RespConnection, RespProtocolError, RespValue } from "../client/resp";
import { RdbParseError } from "../rdb/errors";
import { RdbInfo, RdbInspector } from "../rdb/header";
import { VALKEY_REPLICA_VERSION } from "../rdb/constants";
import { readTopology, ShardInfo, TopologyError, TopologyOptions } from "../client/topology";

export type CaptureErrorCode =
  | "CONNECT" // refused, unreachable, DNS, TLS
  | "AUTH" // WRONGPASS / NOAUTH
  | "SYNC_REFUSED" // error reply to SYNC and PSYNC (NOPERM, renamed command, ...)
  | "PROTOCOL" // the peer does not speak RESP / replication as expected
  | "CLOSED" // connection lost before the snapshot was complete
  | "STALL" // no bytes for timeoutMs
  | "CORRUPT" // RDB validation failed (magic, version, truncation, CRC)
  | "STORAGE" // the sink failed
  | "ABORTED" // the caller's AbortSignal fired
  | "NODE_NOT_ALLOWED" // a cluster node is announced on a host the credentials may not be sent to
  | "NO_REPLICA" // BackupSource replica, and no replica of the shard is healthy
  | "FAILOVER"; // the master changed (Sentinel failover) while the backup was taken

/** A capture failure; `message` is written for an operator (it goes into the task's message as is). */
export class CaptureError extends CodedError<CaptureErrorCode> {
  override name = "CaptureError";
}

export interface CaptureOptions {
  /** Fails when the server sends nothing (not even a keep-alive) for this long. Default 60000. */
  timeoutMs?: number;
  /** Called with the running byte count after each received chunk. */
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
  /**
   * An open, authenticated connection to `endpoint` to take the snapshot over instead of opening one (e.g. the
   * one the topology was just read on: saves a connect + AUTH). The capture owns it from then on and closes it.
   */
  connection?: RespConnection;
}

/** What a capture without the RDB check on its path (captureRaw) learned. */
export interface RawCaptureResult {
  bytes: number;
  /** How the server framed the payload: `$EOF:<mark>` (diskless) or `$<len>` (disk-based). */
  payload: "eof-mark" | "length";
  /** From the start of the capture (connect, or the handed connection) until the replication link was closed. */
  linkMs: number;
}

export interface CaptureResult extends RawCaptureResult {
  rdb: RdbInfo;
}

const EOF_MARK_LEN = 40;

/**
 * The next line of a master's answer to SYNC/PSYNC (+FULLRESYNC, $EOF:<mark>, $<length>, -ERR) at the start of
 * `buf`, after the newlines it sends as keep-alives while it forks; `rest` is what follows the line, or, when no
 * whole line is there yet (`line` undefined), `buf` without the keep-alives.
 */
export function syncLine(buf: Buffer): { line?: string; rest: Buffer } {
  let start = 0;
  while (start < buf.length && buf[start] === 0x0a) start++;
  const eol = buf.indexOf("\r\n", start);
  if (eol < 0) return { rest: buf.subarray(start) };
  return { line: buf.toString("latin1", start, eol), rest: buf.subarray(eol + 2) };
}
const MAX_PREAMBLE_LINE = 1024;
const DEFAULT_TIMEOUT_MS = 60_000;

const where = (ep: RedisEndpoint): string => `${ep.host}:${ep.port}`;

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** Turns a connect/AUTH failure into a CaptureError with an operator-friendly message. */
function connectError(ep: RedisEndpoint, err: unknown): CaptureError {
  if (err instanceof CaptureError) return err;
  if (err instanceof RedisReplyError) {
    if (/^(WRONGPASS|NOAUTH)|invalid (username-)?password|without any password configured/i.test(err.reply)) {
      return new CaptureError("AUTH", `authentication refused by ${where(ep)}: ${err.reply}`);
    }
    return new CaptureError("PROTOCOL", `unexpected error reply from ${where(ep)}: ${err.reply}`);
  }
  if (err instanceof RespProtocolError) {
    return new CaptureError("PROTOCOL", `${where(ep)} does not look like a Redis server: ${err.message}`);
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ECONNREFUSED") return new CaptureError("CONNECT", `connection refused by ${where(ep)} (is Redis running and the port right?)`);
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return new CaptureError("CONNECT", `cannot resolve host ${ep.host}`);
  if (code === "ECONNRESET" || code === "EPIPE") return new CaptureError("CLOSED", `${where(ep)} closed the connection during the handshake (${code})`);
  return new CaptureError("CONNECT", `cannot connect to ${where(ep)}: ${describe(err)}`);
}

/** Runs a handshake command with a deadline (a silent peer must not hang the task forever). */
export async function commandWithin(conn: RespConnection, ep: RedisEndpoint, timeoutMs: number, ...args: string[]): Promise<RespValue> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      conn.close();
      reject(new CaptureError("STALL", `stalled: no reply to ${args[0]} from ${where(ep)} within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([conn.command(...args), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects and authenticates, bounded by timeoutMs, mapping failures to CaptureError. */
export async function connectForCapture(ep: RedisEndpoint, timeoutMs: number): Promise<RespConnection> {
  try {
    // RespConnection.connect authenticates too; its own timer only covers the TCP/TLS connect, so race it.
    let timer: NodeJS.Timeout | undefined;
    const connecting = RespConnection.connect(ep, timeoutMs);
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        connecting.then((c) => c.close(), () => undefined);
        reject(new CaptureError("STALL", `stalled: ${where(ep)} did not answer AUTH within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([connecting, deadline]);
    } finally {
      clearTimeout(timer);
    }
  } catch (err) {
    throw connectError(ep, err);
  }
}

/**
 * Streams one full snapshot of `endpoint` into `sink`. The sink's lifecycle is owned by the capture (like
 * stream.pipeline): on success it is ended and 'finish' awaited (then call commit() on a BlobWriter); on any
 * failure it is destroyed with the error and its 'close' awaited, so a BlobWriter has removed its temp file
 * by the time the promise rejects.
 */
export async function captureRdb(endpoint: RedisEndpoint, sink: Writable, opts: CaptureOptions = {}): Promise<CaptureResult> {
  const { rdb, ...raw } = await capture(endpoint, sink, opts, new RdbInspector());
  return { ...raw, rdb: rdb! };
}

/**
 * captureRdb with nothing on the socket's path but counting bytes and finding the end of the payload: the RDB
 * check (header, CRC-64 trailer) is the caller's, on the bytes it stored (the spool, jobs/backups.ts).
 */
export async function captureRaw(endpoint: RedisEndpoint, sink: Writable, opts: CaptureOptions = {}): Promise<RawCaptureResult> {
  const { rdb: _none, ...raw } = await capture(endpoint, sink, opts, undefined);
  return raw;
}

async function capture(endpoint: RedisEndpoint, sink: Writable, opts: CaptureOptions, inspector: RdbInspector | undefined): Promise<RawCaptureResult & { rdb?: RdbInfo }> {
  const started = performance.now();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sinkErrors = (err: Error): void => void err; // observed below; keeps an unhandled 'error' from crashing
  sink.on("error", sinkErrors);
  let conn: RespConnection | undefined = opts.connection;
  let replconfRefusal: string | undefined;
  try {
    if (opts.signal?.aborted) throw new CaptureError("ABORTED", "capture aborted before it started");
    if (sink.destroyed || sink.writableEnded) throw new CaptureError("STORAGE", "the backup sink is already closed");
    conn ??= await connectForCapture(endpoint, timeoutMs);
    // `version`: Valkey 9 sends a replica that announces no version (or one before 9.0) the RDB 11 format, which
    // cannot carry hash field TTLs (the transfer then breaks); announcing the newest Valkey whose format we read
    // gets its own (VALKEY080). Redis does not know the option and says so: that refusal is not worth keeping.
    for (const args of [["REPLCONF", "capa", "eof"], ["REPLCONF", "version", VALKEY_REPLICA_VERSION], ["REPLCONF", "rdb-only", "1"]]) {
      try {
        await commandWithin(conn, endpoint, timeoutMs, ...args);
      } catch (err) {
        // An error reply means an older server (or a user without +replconf): carry on like redis-cli does,
        // except when it says we are not authenticated.
        if (!(err instanceof RedisReplyError) || /^NOAUTH|^WRONGPASS/.test(err.reply)) throw err;
        if (args[1] !== "version") replconfRefusal ??= err.reply;
      }
    }
    if (opts.signal?.aborted) throw new CaptureError("ABORTED", "capture aborted");
    const result = await transfer(endpoint, conn, sink, timeoutMs, opts, inspector, started);
    await endSink(sink);
    return result;
  } catch (err) {
    conn?.close();
    let failure = err instanceof CaptureError ? err : connectError(endpoint, err);
    if (failure.code === "CLOSED" && replconfRefusal) {
      // e.g. "max number of clients reached": the REPLCONF reply explains the hang-up better than we can.
      failure = new CaptureError("CLOSED", `${failure.message}; earlier it answered REPLCONF with: ${replconfRefusal}`);
    }
    await destroySink(sink, failure);
    throw failure;
  } finally {
    sink.off("error", sinkErrors);
  }
}

async function endSink(sink: Writable): Promise<void> {
  sink.end();
  try {
    // Also rejects if the sink is destroyed before 'finish' (premature close), which plain events would miss.
    await finished(sink, { readable: false });
  } catch (err) {
    throw new CaptureError("STORAGE", `writing the backup failed: ${describe(err)}`);
  }
}

async function destroySink(sink: Writable, err: Error): Promise<void> {
  if (sink.closed) return;
  await new Promise<void>((resolve) => {
    // Streams created with emitClose:false never emit 'close'; don't wait forever for them.
    const fallback = setTimeout(resolve, 5_000);
    sink.once("close", () => {
      clearTimeout(fallback);
      resolve();
    });
    sink.destroy(err);
  });
}

/** Sends SYNC on the raw socket and streams the payload into the sink. */
function transfer(ep: RedisEndpoint, conn: RespConnection, sink: Writable, timeoutMs: number, opts: CaptureOptions, inspector: RdbInspector | undefined, started: number): Promise<RawCaptureResult & { rdb?: RdbInfo }> {
  return new Promise<RawCaptureResult & { rdb?: RdbInfo }>((resolve, reject) => {
    const { socket, buffered } = conn.sendRaw(["SYNC"]);
    let phase: "preamble" | "payload" | "done" = "preamble";
    let command: "SYNC" | "PSYNC" = "SYNC";
    let syncRefusal = "";
    let preamble: Buffer = Buffer.alloc(0);
    let eofMark: Buffer | undefined; // set for the $EOF: form
    let expected = -1; // set for the $<len> form
    let tail: Buffer = Buffer.alloc(0); // EOF form: the last (up to) 40 bytes, held back until we know they aren't the mark
    let bytes = 0;
    let paused = false;

    const stallTimer = setTimeout(onStall, timeoutMs);
    function onStall(): void {
      if (paused) {
        // Our own sink accepted nothing for that long (the timer was last refreshed when we paused).
        fail(new CaptureError("STORAGE", `writing the backup stalled: storage accepted no data for ${timeoutMs} ms after ${bytes} bytes`));
        return;
      }
      const what =
        phase === "preamble"
          ? `waiting for the snapshot after ${command} (not even keep-alives)`
          : `after ${bytes}${expected >= 0 ? ` of ${expected}` : ""} bytes of the snapshot`;
      fail(new CaptureError("STALL", `stalled: no data from ${where(ep)} for ${timeoutMs} ms ${what}`));
    }

    const onAbort = (): void => fail(new CaptureError("ABORTED", `capture aborted after ${bytes} bytes`));
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    // What the capture listens to while it runs: attached once below, detached by cleanup().
    const listening: Array<[NodeJS.EventEmitter, string, Parameters<NodeJS.EventEmitter["on"]>[1]]> = [
      [socket, "data", onData], [socket, "end", onEnd], [socket, "close", onEnd], [socket, "error", onSocketError],
      [sink, "error", onSinkError], [sink, "close", onSinkClose],
    ];

    function cleanup(): void {
      phase = "done";
      clearTimeout(stallTimer);
      opts.signal?.removeEventListener("abort", onAbort);
      for (const [emitter, event, listener] of listening) emitter.off(event, listener);
      sink.off("drain", onDrain);
      socket.on("error", () => undefined); // late errors from the destroyed socket are irrelevant
      socket.destroy();
    }

    function fail(err: Error): void {
      if (phase === "done") return;
      cleanup();
      reject(err);
    }

    function complete(): void {
      if (phase === "done") return;
      // With rdb-only the server drops the link itself; older servers would go on streaming commands.
      cleanup();
      const linkMs = performance.now() - started;
      let rdb: RdbInfo | undefined;
      try {
        rdb = inspector?.end();
      } catch (err) {
        reject(new CaptureError("CORRUPT", `corrupt snapshot from ${where(ep)}: ${describe(err)}`));
        return;
      }
      resolve({ bytes, payload: eofMark ? "eof-mark" : "length", linkMs, ...(rdb ? { rdb } : {}) });
    }

    function emit(data: Buffer): void {
      if (data.length === 0) return;
      bytes += data.length;
      try {
        inspector?.update(data);
      } catch (err) {
        if (err instanceof RdbParseError) throw new CaptureError("CORRUPT", `corrupt snapshot from ${where(ep)}: ${err.message}`);
        throw err;
      }
      if (!sink.write(data) && !paused) {
        paused = true;
        socket.pause();
        sink.once("drain", onDrain);
      }
      opts.onProgress?.(bytes);
    }

    function onDrain(): void {
      paused = false;
      stallTimer.refresh();
      if (phase !== "done") socket.resume();
    }

    /** Parses keep-alives and the payload header line; returns the bytes after it, or undefined if incomplete. */
    function readPreamble(chunk: Buffer): Buffer | undefined {
      preamble = preamble.length ? Buffer.concat([preamble, chunk]) : chunk;
      for (;;) {
        const { line, rest } = syncLine(preamble);
        preamble = rest;
        if (line === undefined) {
          if (preamble.length > MAX_PREAMBLE_LINE) throw protocolError();
          return undefined;
        }
        if (line.startsWith("-")) {
          if (command === "SYNC") {
            // SYNC may be renamed/denied while PSYNC (what real replicas use) is allowed: try it once.
            syncRefusal = line.slice(1);
            command = "PSYNC";
            socket.write("*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n");
            continue;
          }
          throw new CaptureError("SYNC_REFUSED", syncRefusedMessage(ep, syncRefusal, line.slice(1)));
        }
        if (line.startsWith("+")) continue; // +FULLRESYNC <replid> <offset> (PSYNC)
        if (line.startsWith("$EOF:") && line.length === 5 + EOF_MARK_LEN) {
          eofMark = Buffer.from(line.slice(5), "latin1");
          return rest;
        }
        if (/^\$[0-9]+$/.test(line)) {
          expected = Number(line.slice(1));
          return rest;
        }
        throw protocolError(line);
      }
    }

    function protocolError(line?: string): CaptureError {
      const shown = JSON.stringify((line ?? preamble.toString("latin1", 0, 60)).slice(0, 60));
      return new CaptureError("PROTOCOL", `unexpected reply to ${command} from ${where(ep)}: ${shown} (not a Redis master?)`);
    }

    function finish(last: Buffer): void {
      emit(last);
      complete();
    }

    function onPayload(chunk: Buffer): void {
      if (eofMark) {
        // Without concatenating tail + chunk (that would copy every chunk): look for the mark across the
        // boundary first, then inside the chunk. Searching the whole chunk (not just its end) also copes with
        // an old server that appends replication traffic right after the mark in the same packet.
        if (chunk.length < EOF_MARK_LEN) {
          const joined = Buffer.concat([tail, chunk]);
          const at = joined.indexOf(eofMark);
          if (at >= 0) return finish(joined.subarray(0, at));
          const cut = Math.max(0, joined.length - EOF_MARK_LEN);
          emit(joined.subarray(0, cut));
          tail = joined.subarray(cut);
          return;
        }
        const seam = tail.length ? Buffer.concat([tail, chunk.subarray(0, EOF_MARK_LEN - 1)]).indexOf(eofMark) : -1;
        if (seam >= 0) return finish(tail.subarray(0, seam));
        const at = chunk.indexOf(eofMark);
        if (at >= 0) {
          emit(tail);
          return finish(chunk.subarray(0, at));
        }
        emit(tail);
        emit(chunk.subarray(0, chunk.length - EOF_MARK_LEN));
        tail = Buffer.from(chunk.subarray(chunk.length - EOF_MARK_LEN)); // small copy: don't pin the chunk
      } else {
        const take = Math.min(chunk.length, expected - bytes);
        emit(chunk.subarray(0, take));
        if (bytes === expected) complete();
      }
    }

    function onData(chunk: Buffer): void {
      if (phase === "done") return;
      stallTimer.refresh();
      try {
        if (phase === "preamble") {
          const rest = readPreamble(chunk);
          if (rest === undefined) return;
          phase = "payload";
          preamble = Buffer.alloc(0);
          if (expected === 0) return complete(); // inspector.end() reports the empty payload
          if (rest.length) onPayload(rest);
        } else {
          onPayload(chunk);
        }
      } catch (err) {
        fail(err instanceof CaptureError ? err : new CaptureError("PROTOCOL", describe(err)));
      }
    }

    function onEnd(): void {
      if (phase === "preamble") {
        fail(new CaptureError("CLOSED", `${where(ep)} closed the connection after ${command}, before sending a snapshot`));
      } else if (phase === "payload") {
        const got = expected >= 0 ? `${bytes} of ${expected} bytes` : `${bytes + tail.length} bytes (end-of-transfer mark not seen)`;
        fail(new CaptureError("CLOSED", `${where(ep)} closed the connection mid-transfer after ${got}`));
      }
    }

    function onSocketError(err: Error): void {
      const got = phase === "payload" ? ` after ${bytes} bytes` : "";
      fail(new CaptureError("CLOSED", `connection to ${where(ep)} failed during the transfer${got}: ${describe(err)}`));
    }

    function onSinkError(err: Error): void {
      fail(new CaptureError("STORAGE", `writing the backup failed after ${bytes} bytes: ${describe(err)}`));
    }

    function onSinkClose(): void {
      fail(new CaptureError("STORAGE", `the backup sink was closed after ${bytes} bytes, before the snapshot was complete`));
    }

    for (const [emitter, event, listener] of listening) emitter.on(event, listener);
    if (buffered.length) onData(buffered);
  });
}

function syncRefusedMessage(ep: RedisEndpoint, syncReply: string, psyncReply: string): string {
  const both = `SYNC: ${syncReply}; PSYNC: ${psyncReply}`;
  let hint = "";
  if (/NOPERM/i.test(both)) hint = " — the user needs +sync, +psync and +replconf (or @admin)";
  else if (/unknown command/i.test(both)) hint = " — the replication commands are renamed or disabled on this server";
  return `${where(ep)} refused to send a snapshot (${both})${hint}`;
}

export interface DiscoverOptions extends TopologyOptions {
  /** An open, authenticated connection to the endpoint to read the topology on (left open); absent: one of its own. */
  connection?: RespConnection;
}

/**
 * Finds what to back up through `endpoint` (topology.ts): for a cluster, every master that serves slots (same
 * credentials/TLS), ordered by first slot, with its replicas; for a standalone server, the endpoint itself and the
 * replicas its INFO replication lists. Announced masters on other hosts than the registered ones are refused
 * unless `opts.allowedHosts` admits them: the credentials go to every master. Nothing is followed unless the
 * endpoint itself accepted the credentials (a failed AUTH ends discovery).
 */
export async function discoverShards(endpoint: RedisEndpoint, timeoutMs = 10_000, opts: DiscoverOptions = {}): Promise<{ cluster: boolean; masters: RedisEndpoint[]; shards: ShardInfo[] }> {
  const conn = opts.connection ?? (await connectForCapture(endpoint, timeoutMs));
  try {
    const run = async (...args: string[]): Promise<string> => {
      try {
        const v = await commandWithin(conn, endpoint, timeoutMs, ...args);
        return Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
      } catch (err) {
        if (err instanceof RedisReplyError) {
          throw new CaptureError(/^NOAUTH|^WRONGPASS/.test(err.reply) ? "AUTH" : "PROTOCOL", `${args.join(" ")} failed on ${where(endpoint)}: ${err.reply}`);
        }
        throw err instanceof CaptureError ? err : connectError(endpoint, err);
      }
    };
    const topology = await readTopology(run, endpoint, opts).catch((err: unknown) => {
      if (err instanceof TopologyError) throw new CaptureError(err.code === "NODE_FAILED" ? "CONNECT" : err.code, err.message);
      throw err;
    });
    return { cluster: topology.cluster, masters: topology.shards.map((s) => s.endpoint), shards: topology.shards };
  } finally {
    if (!opts.connection) conn.close();
  }
}
