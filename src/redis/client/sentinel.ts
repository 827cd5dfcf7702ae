// Finding the current master of a Sentinel-managed Redis: the Sentinels of the URL are asked in order
// (`SENTINEL get-master-addr-by-name`, the client protocol of https://redis.io/docs/reference/sentinel-clients/),
// the first that knows the name answers, and the master it names is checked to say role:master (a Sentinel can
// be behind during a failover). Over our own RESP client: the caller needs a plain endpoint for the replication
// handshake, which no general client hands over.
import { parseInfo, RedisEndpoint, RedisReplyError, RespConnection, RespValue } from "./resp";
import { hostAllowed } from "./topology";
import { CodedError } from "./errors";
import { dataEndpoint, HostPort, RedisUrl, sentinelEndpoint, SentinelUrl } from "./url";

export class SentinelError extends CodedError<"UNREACHABLE" | "UNKNOWN_MASTER" | "NOT_MASTER" | "NODE_NOT_ALLOWED"> {
  override name = "SentinelError";
}

export const addressOf = (a: HostPort): string => (a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

async function within<T>(work: Promise<T>, ms: number, what: string, onLate?: (v: T) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      work.then((v) => onLate?.(v), () => undefined);
      reject(new Error(`${what}: no answer within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function ask(ep: RedisEndpoint, timeoutMs: number, args: string[]): Promise<RespValue> {
  const conn = await within(RespConnection.connect(ep, timeoutMs), timeoutMs, `connect to ${addressOf(ep)}`, (c) => c.close());
  try {
    return await within(conn.command(...args), timeoutMs, `${args.slice(0, 2).join(" ")} on ${addressOf(ep)}`);
  } finally {
    conn.close();
  }
}

function reason(err: unknown): string {
  if (err instanceof RedisReplyError) return err.reply;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const msg = err instanceof Error ? err.message : String(err);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

export interface SentinelAnswer {
  /** The master's address as the Sentinel announces it. */
  master: HostPort;
  /** The Sentinel that answered. */
  sentinel: HostPort;
}

/** Asks the Sentinels in order for the master of `url.masterName`; the first that knows it answers. */
export async function askMaster(url: SentinelUrl, timeoutMs = 5_000): Promise<SentinelAnswer> {
  const failures: string[] = [];
  for (const s of url.sentinels) {
    try {
      const reply = await ask(sentinelEndpoint(url, s), timeoutMs, ["SENTINEL", "get-master-addr-by-name", url.masterName]);
      if (!Array.isArray(reply) || reply.length < 2) {
        failures.push(`${addressOf(s)}: does not monitor a master named ${url.masterName}`);
        continue;
      }
      const port = Number(String(reply[1]));
      if (!Number.isInteger(port) || port <= 0) throw new Error(`answered an address without a port (${JSON.stringify(reply.map(String))})`);
      return { master: { host: String(reply[0]), port }, sentinel: s };
    } catch (err) {
      failures.push(`${addressOf(s)}: ${reason(err)}`);
    }
  }
  const unknown = failures.every((f) => f.includes("does not monitor"));
  throw new SentinelError(unknown ? "UNKNOWN_MASTER" : "UNREACHABLE", `no Sentinel gave the master of ${url.masterName} (${failures.join("; ")})`);
}

export interface ResolvedInstance {
  /** The node to back up / restore into: the URL's server, or the master the Sentinels name now. */
  endpoint: RedisEndpoint;
  /** The hosts the operator registered: credentials may go there without --cluster-hosts. */
  registeredHosts: string[];
  /** For a Sentinel URL: who answered and the master it named (to see a failover happen). */
  sentinel?: { url: SentinelUrl; answer: SentinelAnswer };
}

/**
 * The endpoint an instance's URL stands for now. For a Sentinel URL: the current master, which must be on a
 * registered or allowed host (the Sentinels' hosts are registered) and must itself say role:master.
 */
export async function resolveInstance(url: RedisUrl, o: { timeoutMs?: number; allowedHosts?: readonly string[]; checkRole?: boolean } = {}): Promise<ResolvedInstance> {
  if (url.kind === "direct") return { endpoint: url.endpoint, registeredHosts: [url.endpoint.host] };
  const timeoutMs = o.timeoutMs ?? 5_000;
  const answer = await askMaster(url, timeoutMs);
  const registeredHosts = url.sentinels.map((s) => s.host);
  const master = addressOf(answer.master);
  if (!hostAllowed(answer.master.host, registeredHosts, o.allowedHosts)) {
    throw new SentinelError("NODE_NOT_ALLOWED", `Sentinel ${addressOf(answer.sentinel)} names ${master} as the master of ${url.masterName}, a host that is neither a Sentinel's nor allowed (--cluster-hosts); the credentials were not sent there`);
  }
  const endpoint = dataEndpoint(url, answer.master);
  const resolved: ResolvedInstance = { endpoint, registeredHosts: [...registeredHosts, answer.master.host], sentinel: { url, answer } };
  if (o.checkRole === false) return resolved;
  let role: string | undefined;
  try {
    role = parseInfo(await ask(endpoint, timeoutMs, ["INFO", "replication"])).get("role");
  } catch (err) {
    throw new SentinelError("UNREACHABLE", `Sentinel ${addressOf(answer.sentinel)} names ${master} as the master of ${url.masterName}, but it cannot be asked: ${reason(err)}`);
  }
  if (role !== "master") {
    throw new SentinelError("NOT_MASTER", `Sentinel ${addressOf(answer.sentinel)} names ${master} as the master of ${url.masterName}, but it reports role:${role ?? "?"} (a failover in progress?); try again shortly`);
  }
  return resolved;
}

/**
 * For a Sentinel instance: whether the Sentinels name another master now than when `r` was resolved (a failover
 * happened meanwhile), as a sentence naming the switch; undefined when not, or when no Sentinel can be asked.
 */
export async function masterSwitch(r: ResolvedInstance, timeoutMs = 5_000): Promise<string | undefined> {
  if (!r.sentinel) return undefined;
  const now = await askMaster(r.sentinel.url, timeoutMs).catch(() => undefined);
  if (!now) return undefined;
  const before = addressOf(r.sentinel.answer.master);
  const after = addressOf(now.master);
  if (before === after) return undefined;
  return `the master of ${r.sentinel.url.masterName} switched from ${before} to ${after} during the backup (Sentinel failover, as Sentinel ${addressOf(now.sentinel)} reports)`;
}
