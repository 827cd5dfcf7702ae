// A small RESP2 client: enough to authenticate, run admin commands and then hand the raw socket over to the
// replication code. Written here rather than taken from a client library because the replication handshake
// needs byte-level control of the socket after SYNC, which general clients do not give.
import net from "node:net";
import tls from "node:tls";

export interface RedisEndpoint {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** true for TLS with default verification; an object for explicit options (ca, servername, ...). */
  tls?: boolean | tls.ConnectionOptions;
}

export type RespValue = string | number | Buffer | null | RespValue[];

/** An error reply from the server (`-ERR ...`). */
export class RedisReplyError extends Error {
  constructor(readonly reply: string) {
    super(reply);
    this.name = "RedisReplyError";
  }
}

export class RespProtocolError extends Error {
  override name = "RespProtocolError";
}

/** Parses one RESP value from buf at offset; returns undefined when more bytes are needed. */
export function parseResp(buf: Buffer, offset: number): { value: RespValue | RedisReplyError; next: number } | undefined {
  if (offset >= buf.length) return undefined;
  const lineEnd = buf.indexOf("\r\n", offset, "latin1");
  if (lineEnd < 0) return undefined;
  const type = buf[offset];
  const line = buf.toString("utf8", offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case 0x2b: // +
      return { value: line, next };
    case 0x2d: // -
      return { value: new RedisReplyError(line), next };
    case 0x3a: // :
      return { value: Number(line), next };
    case 0x24: { // $
      const len = Number(line);
      if (!Number.isInteger(len)) throw new RespProtocolError(`bad bulk length ${JSON.stringify(line)}`);
      if (len < 0) return { value: null, next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.subarray(next, next + len), next: next + len + 2 };
    }
    case 0x2a: { // *
      const count = Number(line);
      if (!Number.isInteger(count)) throw new RespProtocolError(`bad array length ${JSON.stringify(line)}`);
      if (count < 0) return { value: null, next };
      const items: RespValue[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseResp(buf, at);
        if (!item) return undefined;
        if (item.value instanceof RedisReplyError) throw item.value;
        items.push(item.value);
        at = item.next;
      }
      return { value: items, next: at };
    }
    default:
      throw new RespProtocolError(`unexpected byte 0x${(type ?? 0).toString(16)} in reply`);
  }
}

export function encodeCommand(args: ReadonlyArray<string | Buffer | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

interface Pending {
  resolve(v: RespValue): void;
  reject(e: Error): void;
}

export class RespConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: Pending[] = [];
  private failure: Error | undefined;
  private detached = false;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(err));
    socket.on("close", () => this.fail(new Error("connection closed by the server")));
  }

  /** Connects and, when the endpoint has credentials, authenticates. */
  static async connect(ep: RedisEndpoint, timeoutMs = 10_000): Promise<RespConnection> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const onError = (err: Error) => {
        clearTimeout(timer);
        s.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => onError(new Error(`connect to ${ep.host}:${ep.port} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      const readyEvent = ep.tls ? "secureConnect" : "connect";
      const s: net.Socket = ep.tls
        ? tls.connect({ host: ep.host, port: ep.port, servername: net.isIP(ep.host) ? undefined : ep.host, ...(typeof ep.tls === "object" ? ep.tls : {}) })
        : net.connect({ host: ep.host, port: ep.port });
      s.once("error", onError);
      s.once(readyEvent, () => {
        clearTimeout(timer);
        s.off("error", onError);
        resolve(s);
      });
    });
    socket.setNoDelay(true);
    const conn = new RespConnection(socket);
    try {
      if (ep.password !== undefined && ep.password !== "") {
        await conn.command(...(ep.username ? ["AUTH", ep.username, ep.password] : ["AUTH", ep.password]));
      }
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  command(...args: Array<string | Buffer | number>): Promise<RespValue> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.detached) return Promise.reject(new Error("connection was detached"));
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(encodeCommand(args));
    });
  }

  /** Sends a command whose reply the caller will read from the raw socket (SYNC, PSYNC). */
  sendRaw(args: Array<string | Buffer | number>): { socket: net.Socket; buffered: Buffer } {
    const handover = this.detach();
    handover.socket.write(encodeCommand(args));
    return handover;
  }

  /** Stops RESP parsing and returns the socket plus any bytes already received but not consumed. */
  detach(): { socket: net.Socket; buffered: Buffer } {
    if (this.pending.length) throw new Error("cannot detach with replies pending");
    this.detached = true;
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("error");
    this.socket.removeAllListeners("close");
    const buffered = this.buffer;
    this.buffer = Buffer.alloc(0);
    return { socket: this.socket, buffered };
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    let offset = 0;
    try {
      while (this.pending.length) {
        const parsed = parseResp(this.buffer, offset);
        if (!parsed) break;
        offset = parsed.next;
        const p = this.pending.shift()!;
        if (parsed.value instanceof RedisReplyError) p.reject(parsed.value);
        else p.resolve(parsed.value);
      }
    } catch (err) {
      this.fail(err as Error);
      this.socket.destroy();
      return;
    }
    this.buffer = offset >= this.buffer.length ? Buffer.alloc(0) : this.buffer.subarray(offset);
  }

  private fail(err: Error): void {
    if (!this.failure) this.failure = err;
    const waiting = this.pending;
    this.pending = [];
    for (const p of waiting) p.reject(err);
  }
}

/** Parses `redis://[user[:password]@]host[:port]` and `rediss://` (TLS) into an endpoint. */
export function parseRedisUrl(url: string): RedisEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`not a valid URL: use redis://[user:password@]host:port`);
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") throw new Error(`scheme must be redis:// or rediss://, got ${u.protocol}//`);
  if (!u.hostname) throw new Error("the URL has no host");
  const port = u.port ? Number(u.port) : 6379;
  const ep: RedisEndpoint = { host: u.hostname.replace(/^\[|\]$/g, ""), port };
  if (u.username) ep.username = decodeURIComponent(u.username);
  if (u.password) ep.password = decodeURIComponent(u.password);
  if (u.protocol === "rediss:") ep.tls = true;
  return ep;
}
