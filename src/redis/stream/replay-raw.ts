// The clone's replay (jobs/clones.ts): stored stream units written into a fresh Redis as one raw byte stream — the
// master's RESP bytes as they are, units back to back after one `SELECT` of the first unit's database (later
// databases are selected by the stream's own SELECTs) — with the replies only counted, and errors kept, by a small
// RESP scanner. No per-command bookkeeping: it runs near `redis-cli --pipe` (bench/clone.ts), where the per-command
// pipelined replay of restore --at (replay.ts) keeps each command for its error message.
import net from "node:net";
import { encodeCommand, RedisEndpoint } from "../client/resp";
import type { StoredUnit } from "./segments";
import type { ReplayResult } from "./replay";

const CHUNK = 1 << 20;

/** Counts top-level RESP2 replies in a byte stream fed in pieces; errors are kept (the first one's text). */
export class ReplyCounter {
  replies = 0;
  errors = 0;
  firstError: string | undefined;
  private tail: Buffer = Buffer.alloc(0);
  /** Elements still to read in each open array (innermost last). */
  private readonly open: number[] = [];

  feed(chunk: Buffer): void {
    let buf = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    let at = 0;
    for (;;) {
      const eol = buf.indexOf("\r\n", at, "latin1");
      if (eol < 0) break;
      const type = buf[at]!;
      let next = eol + 2;
      let opens = -1;
      if (type === 0x24 /* $ */) {
        const len = Number(buf.toString("latin1", at + 1, eol));
        if (len >= 0) {
          if (buf.length < next + len + 2) break;
          next += len + 2;
        }
      } else if (type === 0x2a /* * */) {
        opens = Number(buf.toString("latin1", at + 1, eol));
      } else if (type === 0x2d /* - */ && this.open.length === 0) {
        this.errors++;
        this.firstError ??= buf.toString("utf8", at + 1, eol);
      }
      at = next;
      if (opens > 0) {
        this.open.push(opens);
        continue;
      }
      // One element done: close every array it completes.
      for (;;) {
        if (!this.open.length) {
          this.replies++;
          break;
        }
        const left = --this.open[this.open.length - 1]!;
        if (left > 0) break;
        this.open.pop();
      }
    }
    this.tail = at < buf.length ? Buffer.from(buf.subarray(at)) : Buffer.alloc(0);
    buf = Buffer.alloc(0);
  }
}

export async function replayRaw(ep: RedisEndpoint, units: readonly StoredUnit[], opts: { timeoutMs?: number } = {}): Promise<ReplayResult> {
  const t0 = Date.now();
  const socket = net.connect({ host: ep.host, port: ep.port });
  socket.setNoDelay(true);
  const counter = new ReplyCounter();
  const head: Buffer[] = [];
  if (ep.password) head.push(encodeCommand(ep.username ? ["AUTH", ep.username, ep.password] : ["AUTH", ep.password]));
  head.push(encodeCommand(["SELECT", String(units[0]?.db ?? 0)]));
  const commands = units.reduce((n, u) => n + u.commands, 0);
  const expected = head.length + commands;
  const authReplies = ep.password ? 1 : 0;
  try {
    await new Promise<void>((resolve, reject) => {
      let idle: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => reject(new Error(`the replay got no reply for ${opts.timeoutMs ?? 60_000} ms (${counter.replies} of ${expected})`)), opts.timeoutMs ?? 60_000);
      };
      socket.once("error", reject);
      socket.once("close", () => (counter.replies < expected ? reject(new Error(`the connection closed after ${counter.replies} of ${expected} replies`)) : undefined));
      socket.on("data", (d: Buffer) => {
        arm();
        const before = counter.errors;
        counter.feed(d);
        if (authReplies && counter.errors > before && counter.replies <= authReplies) reject(new Error(`AUTH refused: ${counter.firstError ?? ""}`));
        if (counter.replies >= expected) {
          clearTimeout(idle);
          resolve();
        }
      });
      socket.once("connect", async () => {
        arm();
        try {
          let batch: Buffer[] = [...head];
          let bytes = 0;
          const flush = async () => {
            if (!batch.length) return;
            const ok = socket.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch));
            batch = [];
            bytes = 0;
            if (!ok) await new Promise((r) => socket.once("drain", r));
          };
          for (const u of units) {
            batch.push(u.raw);
            bytes += u.raw.length;
            if (bytes >= CHUNK) await flush();
          }
          await flush();
        } catch (err) {
          reject(err as Error);
        }
      });
    });
  } finally {
    socket.destroy();
  }
  return { units: units.length, commands, errors: counter.errors, ...(counter.firstError ? { firstError: counter.firstError } : {}), ms: Date.now() - t0 };
}
