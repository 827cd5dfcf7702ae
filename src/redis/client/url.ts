// The Redis URL of an instance, as a value: a direct server (`redis://`, `rediss://` for TLS) or a master found
// through its Sentinels (`redis-sentinel://`, `rediss-sentinel://`). Parsed once, validated whole, and shown
// with every password hidden.
//
//   redis://[user[:password]@]host[:port]                                   port 6379
//   redis-sentinel://[user[:password]@]h1[:port][,h2[:port]...]/masterName  port 26379
//       [?sentinelUsername=U&sentinelPassword=P]
//
// In a Sentinel URL the user and password before `@` are the data nodes' (master and replicas: the ones a
// backup and a restore authenticate with, and RestoreInstance's Password is compared with), as in `redis://`.
// The Sentinels' own credentials, when they have any (`requirepass`/ACL on the Sentinel), are the query
// parameters `sentinelUsername` and `sentinelPassword`. `rediss-sentinel://` uses TLS for both.
import type { RedisEndpoint } from "./resp";

export interface HostPort {
  host: string;
  port: number;
}

export interface Credentials {
  username?: string;
  password?: string;
  tls?: boolean;
}

export interface DirectUrl {
  kind: "direct";
  endpoint: RedisEndpoint;
}

export interface SentinelUrl {
  kind: "sentinel";
  masterName: string;
  sentinels: HostPort[];
  /** Credentials and TLS of the data nodes (master and replicas). */
  data: Credentials;
  /** Credentials and TLS of the Sentinels. */
  sentinel: Credentials;
}

export type RedisUrl = DirectUrl | SentinelUrl;

export class RedisUrlError extends Error {
  override name = "RedisUrlError";
}

const SENTINEL_PARAMS = new Set(["sentinelUsername", "sentinelPassword"]);

/** Parses an instance's Redis URL; throws RedisUrlError naming the part that is wrong. */
export function parseRedisUrl(url: string): RedisUrl {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === "redis-sentinel" || scheme === "rediss-sentinel") return parseSentinelUrl(url, scheme === "rediss-sentinel");
  return { kind: "direct", endpoint: parseDirectUrl(url) };
}

/** The one endpoint of a `redis://`/`rediss://` URL; a Sentinel URL is refused (it names no server). */
export function parseEndpointUrl(url: string): RedisEndpoint {
  const parsed = parseRedisUrl(url);
  if (parsed.kind !== "direct") throw new RedisUrlError("a Sentinel URL names no single server: resolve its master first");
  return parsed.endpoint;
}

function parseDirectUrl(url: string): RedisEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisUrlError(`not a valid URL: use redis://[user:password@]host:port, or redis-sentinel://[user:password@]host:26379[,host:26379]/masterName`);
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
    throw new RedisUrlError(`scheme must be redis://, rediss://, redis-sentinel:// or rediss-sentinel://, got ${u.protocol}//`);
  }
  if (!u.hostname) throw new RedisUrlError("the URL has no host");
  const port = u.port ? Number(u.port) : 6379;
  const ep: RedisEndpoint = { host: u.hostname.replace(/^\[|\]$/g, ""), port };
  if (u.username) ep.username = decodeURIComponent(u.username);
  if (u.password) ep.password = decodeURIComponent(u.password);
  if (u.protocol === "rediss:") ep.tls = true;
  return ep;
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new RedisUrlError(`the ${what} is not valid percent-encoding`);
  }
}

function parseHostPort(text: string, position: number): HostPort {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]/?#@,\s]+))(?::(\d{1,5}))?$/i.exec(text);
  if (!m) throw new RedisUrlError(`Sentinel ${position} ${JSON.stringify(text)} is not host[:port]`);
  const port = m[3] === undefined ? 26379 : Number(m[3]);
  if (port < 1 || port > 65535) throw new RedisUrlError(`Sentinel ${position} has port ${m[3]}, not 1-65535`);
  return { host: (m[1] ?? m[2])!, port };
}

function parseSentinelUrl(url: string, tls: boolean): SentinelUrl {
  const rest = url.slice(url.indexOf("://") + 3);
  const hash = rest.indexOf("#");
  if (hash >= 0) throw new RedisUrlError("a Sentinel URL has no #fragment");
  const q = rest.indexOf("?");
  const beforeQuery = q >= 0 ? rest.slice(0, q) : rest;
  const slash = beforeQuery.indexOf("/");
  const authority = slash >= 0 ? beforeQuery.slice(0, slash) : beforeQuery;
  const path = slash >= 0 ? beforeQuery.slice(slash + 1) : "";
  const at = authority.lastIndexOf("@");
  const userinfo = at >= 0 ? authority.slice(0, at) : "";
  const hosts = at >= 0 ? authority.slice(at + 1) : authority;
  if (!hosts) throw new RedisUrlError("the Sentinel URL names no Sentinel: use redis-sentinel://host:26379[,host:26379]/masterName");
  const sentinels = hosts.split(",").map((h, i) => parseHostPort(h, i + 1));
  const masterName = decode(path.replace(/\/$/, ""), "master name");
  if (!masterName) throw new RedisUrlError("the Sentinel URL names no master: add /masterName after the Sentinels (the name in `sentinel monitor`)");
  if (masterName.includes("/") || /\s/.test(masterName)) throw new RedisUrlError(`the master name ${JSON.stringify(masterName)} has a '/' or a space`);
  const data: Credentials = {};
  if (userinfo) {
    const colon = userinfo.indexOf(":");
    const user = decode(colon >= 0 ? userinfo.slice(0, colon) : userinfo, "user name");
    const pass = colon >= 0 ? decode(userinfo.slice(colon + 1), "password") : "";
    if (user) data.username = user;
    if (pass) data.password = pass;
  }
  const sentinel: Credentials = {};
  if (q >= 0) {
    for (const [k, v] of new URLSearchParams(rest.slice(q + 1))) {
      if (!SENTINEL_PARAMS.has(k)) throw new RedisUrlError(`unknown parameter ${JSON.stringify(k)} in the Sentinel URL (known: ${[...SENTINEL_PARAMS].join(", ")})`);
      if (v === "") continue;
      if (k === "sentinelUsername") sentinel.username = v;
      else sentinel.password = v;
    }
  }
  if (tls) {
    data.tls = true;
    sentinel.tls = true;
  }
  return { kind: "sentinel", masterName, sentinels, data, sentinel };
}

/** The data-node password of an instance's URL (what RestoreInstance's Password must equal); "" when none. */
export function dataPassword(url: RedisUrl): string {
  return (url.kind === "direct" ? url.endpoint.password : url.data.password) ?? "";
}

/** The address an instance is shown at (DescribeInstances' WanIp/Port): the server, or the first Sentinel. */
export function shownAddress(url: RedisUrl): HostPort {
  return url.kind === "direct" ? { host: url.endpoint.host, port: url.endpoint.port } : url.sentinels[0]!;
}

/** An endpoint at `at` with these credentials. */
function endpointAt(c: Credentials, at: HostPort): RedisEndpoint {
  const ep: RedisEndpoint = { host: at.host, port: at.port };
  if (c.username) ep.username = c.username;
  if (c.password) ep.password = c.password;
  if (c.tls) ep.tls = true;
  return ep;
}

/** An endpoint of a data node at `at`, with the URL's data-node credentials. */
export function dataEndpoint(url: SentinelUrl, at: HostPort): RedisEndpoint {
  return endpointAt(url.data, at);
}

/** An endpoint of a Sentinel, with the Sentinels' credentials. */
export function sentinelEndpoint(url: SentinelUrl, at: HostPort): RedisEndpoint {
  return endpointAt(url.sentinel, at);
}
