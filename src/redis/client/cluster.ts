// Redis Cluster routing for bulk writes: hash slots (CRC16/XMODEM of the key or of its {hash tag}, mod 16384),
// the slot map (topology.ts), and a router that pipelines each command to the master owning its slot and
// follows redirections:
//  - MOVED <slot> <addr>: the slot lives elsewhere now. We stop sending, wait for every outstanding reply,
//    refresh the slot map, re-send the redirected commands in their original order, then resume.
//  - ASK <slot> <addr>: the slot is being migrated and this key is already (or will be) on the target: the
//    command is re-sent there preceded by ASKING, without changing the map.
// Every address the router connects to (the first slot map, a refreshed one, a MOVED or ASK target) must pass
// the host allow-list of topology.ts: the seed's host, or one the operator allowed (--cluster-hosts). Each
// connection is sent the instance's credentials, so a node answering MOVED with an address of its choosing
// must not collect them: such a redirection fails the restore (ClusterHostError) before anything is sent there.
// Pausing until all replies are in is what keeps a key's commands in order across a redirection: a key's
// commands all went to one node (the map does not change while commands are in flight), so its redirected
// commands come back in order and are re-sent in that order before anything newer is sent for it.
import { PipelinedConnection, PipelineError, ReplyKind, decodeCommand } from "./pipelined";
import { ByteWriter } from "../rdb/rdb-writer";
import { RedisEndpoint } from "./resp";
import { hostAllowed, readSlotMap, SlotRange, TopologyError } from "./topology";

// The slot map comes from the one topology reader (CLUSTER NODES, allow-list); re-exported for the routers' users.
export { readSlotMap, SlotRange };

const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let j = 0; j < 8; j++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    t[i] = crc;
  }
  return t;
})();

export function crc16(b: Uint8Array, start = 0, end = b.length): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b[i]) & 0xff];
  return crc;
}

/**
 * The hash slot of a key: CRC16 of the first non-empty {...} section if there is one, else of the key. Ours, not
 * cluster-key-slot: that one hashes "a" for the key "{}a}", where Redis hashes the whole key (an empty first tag).
 */
export function keySlot(key: Uint8Array | string): number {
  const b = typeof key === "string" ? Buffer.from(key) : key;
  const open = b.indexOf(0x7b);
  if (open >= 0) {
    const close = b.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(b, open + 1, close) & 16383;
  }
  return crc16(b) & 16383;
}

/** Writes commands to a target; implemented for a standalone server and for a cluster. */
export interface CommandRouter {
  /** Starts a command concerning `key` (routing) with argc arguments (the command name included). */
  begin(key: Buffer, argc: number): void;
  arg(a: Buffer | string): void;
  /** Appends already RESP-encoded arguments. */
  rawArgs(bytes: Buffer): void;
  /** Finishes the command; its reply is reported to onReply with `tag`. */
  end(tag: number): void;
  /**
   * Sends a complete RESP-encoded command concerning `key`, in database `db` (default: the current one) —
   * held commands are released after later keys may have switched databases.
   */
  sendEncoded(key: Buffer, bytes: Buffer, tag: number, db?: number): void;
  /** Sends a keyless command to every master (FUNCTION LOAD); returns how many replies to expect. */
  broadcast(args: ReadonlyArray<Buffer | string>, tag: number): number;
  /** Makes the following commands run in database `db` (standalone only; a cluster has db 0 only). */
  selectDb(db: number): void;
  flush(): void;
  /** Bytes of commands sent so far. */
  readonly bytesSent: number;
  /** Bytes sent or held whose replies have not arrived. */
  readonly pendingBytes: number;
  waitBelow(limit: number): Promise<void>;
  /** Resolves when every reply has arrived. */
  finish(): Promise<void>;
  close(): void;
  readonly cluster: boolean;
  /** Reply callback; `command()` returns the command's bytes (valid during the call). */
  onReply: (tag: number, kind: ReplyKind, text: string | undefined, nil: boolean, command: () => Buffer) => void;
}

/** Tag for the router's own commands (SELECT, ASKING): replies are checked for errors but not reported. */
export const INTERNAL_TAG = -1;

export class StandaloneRouter implements CommandRouter {
  readonly cluster = false;
  onReply: CommandRouter["onReply"] = () => undefined;
  private db = 0;

  constructor(private readonly conn: PipelinedConnection) {
    const cmd = (): Buffer => conn.currentCommand();
    conn.onReply = (tag, kind, text, nil) => {
      if (tag === INTERNAL_TAG) {
        if (kind === ReplyKind.Error) throw new PipelineError(`${conn.address} refused ${decodeCommand(cmd())[0]}: ${text}`);
        return;
      }
      this.onReply(tag, kind, text, nil, cmd);
    };
  }

  static async connect(ep: RedisEndpoint, timeoutMs?: number): Promise<StandaloneRouter> {
    return new StandaloneRouter(await PipelinedConnection.connect(ep, { timeoutMs }));
  }

  begin(_key: Buffer, argc: number): void {
    this.conn.begin(argc);
  }

  arg(a: Buffer | string): void {
    this.conn.arg(a);
  }

  rawArgs(bytes: Buffer): void {
    this.conn.rawArgs(bytes);
  }

  end(tag: number): void {
    this.conn.end(tag);
  }

  sendEncoded(_key: Buffer, bytes: Buffer, tag: number, db?: number): void {
    if (db === undefined || db === this.db) return this.conn.sendRaw(bytes, tag);
    this.conn.command(["SELECT", String(db)], INTERNAL_TAG);
    this.conn.sendRaw(bytes, tag);
    this.conn.command(["SELECT", String(this.db)], INTERNAL_TAG);
  }

  broadcast(args: ReadonlyArray<Buffer | string>, tag: number): number {
    this.conn.command(args, tag);
    return 1;
  }

  get bytesSent(): number {
    return this.conn.stats.bytes;
  }

  selectDb(db: number): void {
    if (db === this.db) return;
    this.conn.command(["SELECT", String(db)], INTERNAL_TAG);
    this.db = db;
  }

  flush(): void {
    this.conn.flush();
  }

  get pendingBytes(): number {
    return this.conn.inflightBytes;
  }

  waitBelow(limit: number): Promise<void> {
    return this.conn.waitBelow(limit);
  }

  finish(): Promise<void> {
    return this.conn.waitBelow(0);
  }

  close(): void {
    this.conn.close();
  }
}

interface Redirect {
  bytes: Buffer;
  tag: number;
  ask: boolean;
  address: string;
  slot: string;
}

/** The cluster named a node on a host that is not allowed: nothing was sent to it. */
export class ClusterHostError extends PipelineError {
  override name = "ClusterHostError";
}

export interface ClusterRouterOptions {
  timeoutMs?: number;
  /** Use this slot map instead of asking (tests: a stale map exercises MOVED). */
  slotMap?: SlotRange[];
  /** Hosts besides the registered ones that nodes may be on (--cluster-hosts: names, addresses, CIDR ranges, `*`). */
  allowedHosts?: readonly string[];
  /** The hosts the operator registered (default: the seed's). */
  registeredHosts?: readonly string[];
}

interface Held {
  slot: number;
  bytes: Buffer;
  tag: number;
}

const MAX_REDIRECTS = 8;

export class ClusterRouter implements CommandRouter {
  readonly cluster = true;
  onReply: CommandRouter["onReply"] = () => undefined;
  private readonly conns = new Map<string, PipelinedConnection>();
  private readonly slotOwner: Array<PipelinedConnection | undefined> = new Array(16384);
  private current: PipelinedConnection | undefined;
  // while redirections are being resolved, new commands are encoded here instead of being sent
  private paused = false;
  private held: Held[] = [];
  private heldBytes = 0;
  private readonly hold = new RespEncoder();
  private holdSlot = 0;
  private redirects: Redirect[] = [];
  private resolving: Promise<void> | undefined;
  private failure: Error | undefined;
  /** Counts of redirections followed (for reports and tests). */
  readonly redirections = { moved: 0, ask: 0, mapRefreshes: 0 };

  private readonly timeoutMs: number | undefined;
  private readonly allowedHosts: readonly string[];
  private readonly registeredHosts: readonly string[];

  private constructor(private readonly seed: RedisEndpoint, opts: ClusterRouterOptions) {
    this.timeoutMs = opts.timeoutMs;
    this.allowedHosts = opts.allowedHosts ?? [];
    this.registeredHosts = opts.registeredHosts ?? [seed.host];
  }

  /** Connects to every master of the cluster that `seed` belongs to (each on an allowed host). */
  static async connect(seed: RedisEndpoint, opts: ClusterRouterOptions = {}): Promise<ClusterRouter> {
    const r = new ClusterRouter(seed, opts);
    try {
      await r.applyMap(opts.slotMap ?? (await r.readMap(seed)), `the slot map of ${seed.host}:${seed.port}`);
    } catch (err) {
      r.close();
      throw err;
    }
    return r;
  }

  /** The masters in use, by address. */
  get nodes(): string[] {
    return [...this.conns.keys()];
  }

  /** CLUSTER NODES through `via`, refusing a master on a host not allowed (TopologyError NODE_NOT_ALLOWED). */
  private readMap(via: RedisEndpoint): Promise<SlotRange[]> {
    return readSlotMap(via, undefined, this.allowedHosts, this.registeredHosts);
  }

  /** The connection to `ep`, opened if needed, only on an allowed host; `why` says who named it (for the refusal). */
  private async node(ep: RedisEndpoint, why: string): Promise<PipelinedConnection> {
    const address = `${ep.host}:${ep.port}`;
    let c = this.conns.get(address);
    if (!c) {
      if (!hostAllowed(ep.host, this.registeredHosts, this.allowedHosts)) {
        throw new ClusterHostError(`${why} names ${address}, a host not allowed (not the registered host ${this.registeredHosts.join(", ")} nor in --cluster-hosts): `
          + `the restore stops there, and that address was never connected to nor sent the instance's credentials`);
      }
      c = await PipelinedConnection.connect(ep, { timeoutMs: this.timeoutMs });
      this.conns.set(address, c);
      const conn = c;
      const cmd = (): Buffer => conn.currentCommand();
      c.onReply = (tag, kind, text, nil) => this.reply(conn, tag, kind, text, nil, cmd);
    }
    return c;
  }

  private async applyMap(ranges: SlotRange[], from: string): Promise<void> {
    this.slotOwner.fill(undefined);
    for (const r of ranges) {
      const c = await this.node(r.master, `${from} (slots ${r.start}-${r.end})`);
      for (let s = r.start; s <= r.end; s++) this.slotOwner[s] = c;
    }
  }

  private endpointFor(address: string): RedisEndpoint {
    const colon = address.lastIndexOf(":");
    return { ...this.seed, host: address.slice(0, colon) || this.seed.host, port: Number(address.slice(colon + 1)) };
  }

  begin(key: Buffer, argc: number): void {
    const slot = keySlot(key);
    if (this.paused) {
      this.current = undefined;
      this.holdSlot = slot;
      this.hold.begin(argc);
      return;
    }
    const c = this.slotOwner[slot];
    if (!c) throw new PipelineError(`no cluster node serves slot ${slot} (cluster incomplete?)`);
    this.current = c;
    c.begin(argc);
  }

  arg(a: Buffer | string): void {
    if (this.current) this.current.arg(a);
    else this.hold.arg(a);
  }

  rawArgs(bytes: Buffer): void {
    if (this.current) this.current.rawArgs(bytes);
    else this.hold.rawArgs(bytes);
  }

  end(tag: number): void {
    if (this.current) {
      this.current.end(tag);
      return;
    }
    this.holdCommand(this.holdSlot, this.hold.take(), tag);
  }

  private holdCommand(slot: number, bytes: Buffer, tag: number): void {
    this.held.push({ slot, bytes, tag });
    this.heldBytes += bytes.length;
  }

  sendEncoded(key: Buffer, bytes: Buffer, tag: number): void {
    const slot = keySlot(key);
    if (this.paused) return this.holdCommand(slot, bytes, tag);
    const c = this.slotOwner[slot];
    if (!c) throw new PipelineError(`no cluster node serves slot ${slot} (cluster incomplete?)`);
    c.sendRaw(bytes, tag);
  }

  broadcast(args: ReadonlyArray<Buffer | string>, tag: number): number {
    // functions are per node; slot moves do not concern them, so they bypass the redirection logic
    for (const c of this.conns.values()) c.command(args, tag);
    return this.conns.size;
  }

  get bytesSent(): number {
    let n = 0;
    for (const c of this.conns.values()) n += c.stats.bytes;
    return n;
  }

  selectDb(db: number): void {
    if (db !== 0) throw new PipelineError(`a Redis Cluster has only database 0 (asked for db ${db})`);
  }

  flush(): void {
    for (const c of this.conns.values()) c.flush();
  }

  get pendingBytes(): number {
    let n = this.heldBytes;
    for (const c of this.conns.values()) n += c.inflightBytes;
    for (const r of this.redirects) n += r.bytes.length;
    return n;
  }

  async waitBelow(limit: number): Promise<void> {
    this.flush();
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.resolving) {
        await this.resolving;
        continue;
      }
      if (this.pendingBytes <= limit && (limit > 0 || this.allAnswered())) return;
      const per = limit > 0 ? Math.max(1, Math.floor(limit / this.conns.size)) : 0;
      await Promise.all([...this.conns.values()].map((c) => c.waitBelow(per)));
    }
  }

  private allAnswered(): boolean {
    for (const c of this.conns.values()) if (c.pendingReplies > 0) return false;
    return this.held.length === 0 && this.redirects.length === 0;
  }

  finish(): Promise<void> {
    return this.waitBelow(0);
  }

  close(): void {
    for (const c of this.conns.values()) c.close();
  }

  private reply(conn: PipelinedConnection, tag: number, kind: ReplyKind, text: string | undefined, nil: boolean, cmd: () => Buffer): void {
    if (kind === ReplyKind.Error && text !== undefined) {
      const moved = text.startsWith("MOVED ");
      const ask = !moved && text.startsWith("ASK ");
      if (moved || ask) {
        // "MOVED 3999 127.0.0.1:6381"
        const [, slot = "?", address = ""] = text.split(" ");
        if (moved) this.redirections.moved++;
        else this.redirections.ask++;
        this.redirects.push({ bytes: Buffer.from(cmd()), tag, ask, address, slot });
        this.paused = true;
        this.resolving ??= this.resolve().finally(() => (this.resolving = undefined));
        return;
      }
    }
    if (tag === INTERNAL_TAG) {
      if (kind === ReplyKind.Error) this.failure ??= new PipelineError(`${conn.address} refused ${decodeCommand(cmd())[0]}: ${text}`);
      return;
    }
    this.onReply(tag, kind, text, nil, cmd);
  }

  /**
   * Waits for every reply, follows the collected redirections (repeatedly), then releases held commands.
   * Never rejects: a failure is recorded and reported by waitBelow/finish.
   */
  private async resolve(): Promise<void> {
    let rounds = 0;
    try {
      for (;;) {
        await Promise.all([...this.conns.values()].map((c) => c.waitBelow(0)));
        const batch = this.redirects;
        if (batch.length === 0) break;
        this.redirects = [];
        if (batch.some((r) => !r.ask)) {
          const moved = batch.find((r) => !r.ask)!;
          const refused = (err: unknown): err is TopologyError => err instanceof TopologyError && err.code === "NODE_NOT_ALLOWED";
          const map = await this.readMap(this.seed).catch(async (err: unknown) => {
            if (refused(err)) throw err;
            // the seed may be gone; ask any live node
            for (const c of this.conns.values()) {
              try {
                return await this.readMap(c.endpoint);
              } catch (e) {
                if (refused(e)) throw e;
                /* try the next */
              }
            }
            throw new PipelineError("cannot refresh the cluster slot map from any node");
          }).catch((err: unknown) => {
            if (refused(err)) throw new ClusterHostError(`refreshing the slot map after MOVED ${moved.slot} ${moved.address}: ${err.message}; the restore stops there`, { cause: err });
            throw err;
          });
          await this.applyMap(map, `the slot map refreshed after MOVED ${moved.slot} ${moved.address}`);
          this.redirections.mapRefreshes++;
        }
        if (++rounds > MAX_REDIRECTS) {
          throw new PipelineError(`commands were redirected ${MAX_REDIRECTS} times in a row (last to ${batch[0].address}); the cluster is resharding too fast or misconfigured`);
        }
        for (const r of batch) {
          const target = await this.node(this.endpointFor(r.address), `the ${r.ask ? "ASK" : "MOVED"} ${r.slot} redirection from the cluster`);
          if (r.ask) target.command(["ASKING"], INTERNAL_TAG);
          target.sendRaw(r.bytes, r.tag);
        }
      }
      this.paused = false;
      const held = this.held;
      this.held = [];
      this.heldBytes = 0;
      for (const h of held) {
        const c = this.slotOwner[h.slot];
        if (!c) throw new PipelineError(`no cluster node serves slot ${h.slot} after the map refresh`);
        c.sendRaw(h.bytes, h.tag);
      }
    } catch (err) {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
      for (const c of this.conns.values()) c.close();
    }
  }
}

/** Encodes one command at a time into a standalone buffer (commands held back instead of sent). */
export class RespEncoder {
  private readonly w = new ByteWriter(256);

  begin(argc: number): void {
    this.w.reset();
    this.w.bytes(Buffer.from(`*${argc}\r\n`, "latin1"));
  }

  arg(a: Buffer | string): void {
    const b = typeof a === "string" ? Buffer.from(a) : a;
    this.w.bytes(Buffer.from(`$${b.length}\r\n`, "latin1"));
    this.w.bytes(b);
    this.w.u8(0x0d).u8(0x0a);
  }

  rawArgs(bytes: Buffer): void {
    this.w.bytes(bytes);
  }

  /** The encoded command (a copy). */
  take(): Buffer {
    return Buffer.from(this.w.view());
  }
}
