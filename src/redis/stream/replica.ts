// The replica side of PSYNC, kept open: what a real Redis replica does, minus applying the commands. It
// announces `capa eof psync2`, asks to continue from a durable point (`PSYNC <replid> <offset+1>`) or for a full
// resync (`PSYNC ? -1`), hands a full resync's RDB to the caller's sink (the stream's base), then cuts the
// command stream into units (parser.ts). It answers the master's `REPLCONF GETACK` and sends `REPLCONF ACK
// <durable offset>` every second: the offset the caller says is stored, never the one received, so `WAIT 1` on the
// master means "in the backup".
import type net from "node:net";
import type { Writable } from "node:stream";
import { RedisEndpoint, RedisReplyError, encodeCommand } from "../client/resp";
import { CaptureError, commandWithin, connectForCapture, syncLine } from "../capture/capture";
import { CommandStreamParser, StreamUnit } from "./parser";

export interface ResumePoint {
  replid: string;
  /** The durable offset: every byte through it is stored. */
  offset: number;
  /** The database selected at that offset (after +CONTINUE the master does not send SELECT again). */
  db: number;
}

export interface ReplicaHandlers {
  /**
   * A full resync: the master's RDB, aligned to (replid, offset), is about to be written to the returned sink.
   * Called before any unit; the sink is ended when the RDB is complete and the promise from `baseDone` awaited
   * before units flow.
   */
  onFullResync(replid: string, offset: number): Writable;
  /** The RDB written to the sink is complete (after 'finish'); units follow only once this resolves. */
  baseDone(bytes: number): Promise<void>;
  /** `+CONTINUE`: the stream goes on from the resume point; `replid` is the master's (new after a failover). */
  onContinue(replid: string): void;
  /** Complete units, in order, with the time they arrived. */
  onUnits(units: StreamUnit[], arrivalMs: number): void;
  /** The link ended (error or close); not called after close(). */
  onEnd(err: Error): void;
}

export interface ReplicaOptions {
  /** How often REPLCONF ACK is sent. Default 1000 ms. */
  ackMs?: number;
  /** Handshake and stall timeout (the master PINGs every 10 s by default). Default 60000 ms. */
  timeoutMs?: number;
  now?: () => number;
}

const EOF_MARK_LEN = 40;

export class ReplicaLink {
  private socket: net.Socket | undefined;
  private parser: CommandStreamParser | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The offset acknowledged to the master (set by the owner after each commit). */
  durable = 0;
  replid = "";

  private constructor(private readonly ep: RedisEndpoint, private readonly h: ReplicaHandlers, private readonly o: ReplicaOptions) {}

  /** Connects, asks to continue from `resume` (or for a full resync) and starts streaming. */
  static async open(ep: RedisEndpoint, resume: ResumePoint | undefined, h: ReplicaHandlers, o: ReplicaOptions = {}): Promise<ReplicaLink> {
    const link = new ReplicaLink(ep, h, o);
    await link.start(resume);
    return link;
  }

  /** Bytes received and not yet in a complete unit plus what is complete: the master offset seen. */
  get received(): number {
    return this.parser?.received ?? 0;
  }

  private async start(resume: ResumePoint | undefined): Promise<void> {
    const timeoutMs = this.o.timeoutMs ?? 60_000;
    const conn = await connectForCapture(this.ep, timeoutMs);
    try {
      await commandWithin(conn, this.ep, timeoutMs, "REPLCONF", "capa", "eof", "capa", "psync2");
    } catch (err) {
      conn.close();
      if (err instanceof RedisReplyError) throw new CaptureError("SYNC_REFUSED", `${this.ep.host}:${this.ep.port} refused REPLCONF: ${err.reply}`);
      throw err;
    }
    const { socket, buffered } = conn.sendRaw(resume ? ["PSYNC", resume.replid, String(resume.offset + 1)] : ["PSYNC", "?", "-1"]);
    this.socket = socket;
    this.durable = resume?.offset ?? 0;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      };
      this.run(socket, buffered, resume, settle);
    });
  }

  private run(socket: net.Socket, first: Buffer, resume: ResumePoint | undefined, started: (err?: Error) => void): void {
    const timeoutMs = this.o.timeoutMs ?? 60_000;
    const now = this.o.now ?? Date.now;
    let phase: "reply" | "rdb-header" | "rdb" | "base" | "stream" = "reply";
    let pending: Buffer = Buffer.alloc(0);
    let sink: Writable | undefined;
    let eofMark: Buffer | undefined;
    let expected = -1;
    let got = 0;
    let tail: Buffer = Buffer.alloc(0);
    let queued: Buffer[] = []; // stream bytes that arrived while the base was being finished

    const fail = (err: Error): void => {
      if (this.closed) return;
      this.close();
      sink?.destroy(err);
      started(err);
      this.h.onEnd(err);
    };
    this.stallTimer = setTimeout(() => fail(new CaptureError("STALL", `no data from ${this.ep.host}:${this.ep.port} for ${timeoutMs} ms`)), timeoutMs);

    const startStream = (offset: number, db: number): void => {
      this.parser = new CommandStreamParser(offset, db);
      phase = "stream";
      this.ackTimer = setInterval(() => this.ack(), this.o.ackMs ?? 1000);
      this.ackTimer.unref?.();
      started();
    };

    const feed = (chunk: Buffer): void => {
      const units = this.parser!.push(chunk);
      if (this.getAckSeen(chunk)) this.ack();
      if (units.length) this.h.onUnits(units, now());
    };

    const rdbBytes = (data: Buffer): void => {
      if (!data.length) return;
      got += data.length;
      if (!sink!.write(data)) {
        socket.pause();
        sink!.once("drain", () => socket.resume());
      }
    };

    const endBase = (rest: Buffer): void => {
      phase = "base";
      if (rest.length) queued.push(rest);
      const s = sink!;
      s.once("finish", () => {
        this.h.baseDone(got).then(() => {
          if (this.closed) return;
          startStream(fullOffset, 0);
          const backlog = queued;
          queued = [];
          for (const b of backlog) feed(b);
        }, (err: Error) => fail(err));
      });
      s.end();
    };

    let fullOffset = 0;
    const onRdb = (chunk: Buffer): void => {
      if (eofMark) {
        const joined = tail.length ? Buffer.concat([tail, chunk]) : chunk;
        const at = joined.indexOf(eofMark);
        if (at >= 0) {
          rdbBytes(joined.subarray(0, at));
          return endBase(joined.subarray(at + EOF_MARK_LEN));
        }
        const cut = Math.max(0, joined.length - EOF_MARK_LEN);
        rdbBytes(joined.subarray(0, cut));
        tail = Buffer.from(joined.subarray(cut));
      } else {
        const take = Math.min(chunk.length, expected - got);
        rdbBytes(chunk.subarray(0, take));
        if (got === expected) endBase(chunk.subarray(take));
      }
    };

    const onData = (chunk: Buffer): void => {
      if (this.closed) return;
      this.stallTimer?.refresh();
      try {
        if (phase === "stream") return feed(chunk);
        if (phase === "base") return void queued.push(chunk);
        if (phase === "rdb") return onRdb(chunk);
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        for (;;) {
          const next = syncLine(pending); // past the keep-alives the master sends while it forks
          pending = next.rest;
          if (next.line === undefined) return;
          const line = next.line;
          if (phase === "reply") {
            if (line.startsWith("-")) throw new CaptureError("SYNC_REFUSED", `${this.ep.host}:${this.ep.port} refused PSYNC: ${line.slice(1)}`);
            const full = /^\+FULLRESYNC ([0-9a-f]{40}) (\d+)$/.exec(line);
            if (full) {
              this.replid = full[1]!;
              fullOffset = Number(full[2]);
              sink = this.h.onFullResync(this.replid, fullOffset);
              sink.on("error", (err) => fail(err));
              phase = "rdb-header";
              continue;
            }
            const cont = /^\+CONTINUE(?: ([0-9a-f]{40}))?$/.exec(line);
            if (cont && resume) {
              this.replid = cont[1] ?? resume.replid;
              this.h.onContinue(this.replid);
              startStream(resume.offset, resume.db);
              if (pending.length) feed(pending);
              pending = Buffer.alloc(0);
              return;
            }
            throw new CaptureError("PROTOCOL", `unexpected reply to PSYNC from ${this.ep.host}:${this.ep.port}: ${JSON.stringify(line.slice(0, 80))}`);
          }
          // rdb-header
          if (line.startsWith("$EOF:") && line.length === 5 + EOF_MARK_LEN) eofMark = Buffer.from(line.slice(5), "latin1");
          else if (/^\$\d+$/.test(line)) expected = Number(line.slice(1));
          else throw new CaptureError("PROTOCOL", `unexpected RDB header from ${this.ep.host}:${this.ep.port}: ${JSON.stringify(line.slice(0, 80))}`);
          phase = "rdb";
          const rest = pending;
          pending = Buffer.alloc(0);
          if (expected === 0) return endBase(rest);
          if (rest.length) onRdb(rest);
          return;
        }
      } catch (err) {
        fail(err as Error);
      }
    };
    socket.on("data", onData);
    socket.on("error", (err) => fail(new CaptureError("CLOSED", `replication link to ${this.ep.host}:${this.ep.port} failed: ${err.message}`)));
    socket.on("close", () => fail(new CaptureError("CLOSED", `${this.ep.host}:${this.ep.port} closed the replication link`)));
    if (first.length) onData(first);
  }

  /** Whether a chunk holds a REPLCONF GETACK (cheap check; the answer is the durable offset anyway). */
  private getAckSeen(chunk: Buffer): boolean {
    return chunk.indexOf("GETACK") >= 0 || chunk.indexOf("getack") >= 0;
  }

  /** Sends `REPLCONF ACK <durable offset>`. */
  ack(): void {
    if (this.closed || !this.socket || this.socket.destroyed) return;
    this.socket.write(encodeCommand(["REPLCONF", "ACK", String(this.durable)]));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ackTimer);
    clearTimeout(this.stallTimer);
    this.socket?.on("error", () => undefined);
    this.socket?.destroy();
  }
}
