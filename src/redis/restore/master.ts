// The master side of the Redis replication handshake, just enough to hand one replica a full RDB:
// answer PING/AUTH/REPLCONF, then reply to PSYNC/SYNC with +FULLRESYNC and a `$<len>` payload.
// (Facts from redis/redis src/replication.c: syncWithMaster and readSyncBulkPayload, replica side.)
import { randomBytes } from "node:crypto";
import net from "node:net";
import { parseResp, RespValue } from "../client/resp";
import { normalizeAddress } from "../../address";

/** A replica that finished the handshake and asked for the data set. */
export interface SyncRequest {
  socket: net.Socket;
  /** PSYNC (Redis >= 2.8) expects a +FULLRESYNC line before the payload; plain SYNC does not. */
  psync: boolean;
  /** The port the replica announced with REPLCONF listening-port, if any. */
  listeningPort?: number;
  remoteAddress?: string;
}

const MAX_HANDSHAKE_BYTES = 64 * 1024;

/** Splits one command off the front of buf: RESP multibulk (what replicas send) or inline (`SYNC\r\n`). */
function takeCommand(buf: Buffer): { args: string[]; next: number } | undefined {
  if (buf[0] === 0x2a /* * */) {
    const parsed = parseResp(buf, 0);
    if (!parsed) return undefined;
    const items = Array.isArray(parsed.value) ? parsed.value : [];
    return { args: items.map((v: RespValue) => (Buffer.isBuffer(v) ? v.toString("latin1") : String(v))), next: parsed.next };
  }
  const end = buf.indexOf("\n");
  if (end < 0) return undefined;
  const line = buf.toString("latin1", 0, end).replace(/\r$/, "").trim();
  return { args: line ? line.split(/\s+/) : [], next: end + 1 };
}

/**
 * A short-lived listener that lets exactly one replica through to PSYNC/SYNC. Other connections are served
 * the handshake too (we cannot know in advance which socket is the target's), but once one of them asks for
 * the data set, the listener stops accepting and every other socket is destroyed.
 */
export class MasterListener {
  readonly replid = randomBytes(20).toString("hex");
  private readonly sockets = new Set<net.Socket>();
  private chosen: SyncRequest | undefined;
  private waiters: Array<(r: SyncRequest) => void> = [];

  private constructor(private readonly server: net.Server, allowPeer?: (address: string) => boolean) {
    this.port = (server.address() as net.AddressInfo).port;
    server.on("connection", (s) => {
      // Only the target may fetch the snapshot: anyone else reaching the port would be handed a user's data.
      if (allowPeer && !allowPeer(normalizeAddress(s.remoteAddress ?? ""))) return void s.destroy();
      this.onConnection(s);
    });
  }

  static listen(host: string | undefined, allowPeer?: (address: string) => boolean): Promise<MasterListener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once("error", reject);
      server.listen({ port: 0, host }, () => {
        server.off("error", reject);
        // Errors after listening (e.g. EMFILE on accept) must not crash the process; the restore times out.
        server.on("error", () => undefined);
        resolve(new MasterListener(server, allowPeer));
      });
    });
  }

  /** Kept from the start: the server no longer has an address once closed. */
  readonly port: number;

  /** Resolves when a replica sends PSYNC or SYNC. */
  waitForSync(): Promise<SyncRequest> {
    if (this.chosen) return Promise.resolve(this.chosen);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private onConnection(socket: net.Socket): void {
    if (this.chosen) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined); // 'close' follows; the restore watches the chosen socket itself.
    let buf: Buffer = Buffer.alloc(0);
    let listeningPort: number | undefined;
    const onData = (chunk: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (buf.length > MAX_HANDSHAKE_BYTES) return void socket.destroy();
      for (;;) {
        let cmd: { args: string[]; next: number } | undefined;
        try {
          cmd = takeCommand(buf);
        } catch {
          return void socket.destroy(); // not a Redis replica
        }
        if (!cmd) return;
        buf = buf.subarray(cmd.next);
        const name = (cmd.args[0] ?? "").toUpperCase();
        switch (name) {
          case "":
            break; // blank line: replicas never send one, but it is harmless
          case "PING":
            socket.write("+PONG\r\n");
            break;
          case "AUTH": // the target has masterauth set; we have no password of our own to check
            socket.write("+OK\r\n");
            break;
          case "REPLCONF":
            if ((cmd.args[1] ?? "").toLowerCase() === "listening-port") listeningPort = Number(cmd.args[2]);
            socket.write("+OK\r\n");
            break;
          case "PSYNC":
          case "SYNC":
            socket.off("data", onData);
            this.choose({ socket, psync: name === "PSYNC", listeningPort, remoteAddress: socket.remoteAddress });
            return;
          default:
            // Anything else means this is not a replica handshake.
            return void socket.destroy();
        }
      }
    };
    socket.on("data", onData);
  }

  private choose(req: SyncRequest): void {
    if (this.chosen) return void req.socket.destroy();
    this.chosen = req;
    this.server.close(); // one replica only: later connects (including the target's retries) are refused
    for (const s of this.sockets) if (s !== req.socket) s.destroy();
    // After the payload the replica sends REPLCONF ACK once a second; consume and ignore (never reply to ACK).
    req.socket.on("data", () => undefined);
    for (const w of this.waiters.splice(0)) w(req);
  }
}

/** Writes buf, resolving once the socket can take more (backpressure); rejects if the socket goes away. */
export function writeWithBackpressure(socket: net.Socket, buf: Uint8Array): Promise<void> {
  if (socket.destroyed) return Promise.reject(new Error("replication link closed"));
  if (socket.write(buf)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      socket.off("drain", onDrain);
      socket.off("close", onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new Error("replication link closed"));
    socket.on("drain", onDrain);
    socket.on("close", onClose);
  });
}

/** The line(s) that precede the RDB bytes. Offset 0: the target's replication history starts anew. */
export function payloadPreamble(req: SyncRequest, replid: string, size: number): Buffer {
  return Buffer.from(`${req.psync ? `+FULLRESYNC ${replid} 0\r\n` : ""}$${size}\r\n`, "latin1");
}
