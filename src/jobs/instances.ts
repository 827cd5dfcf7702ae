// Registering live Redis servers as instances: ids, probing what the server is, and keeping its password out
// of anything printed.
import crypto from "node:crypto";
import type { Catalog } from "../catalog/catalog";
import { maskUrl } from "../log";
import { INSTANCE_ID_PATTERN } from "../protocol/ids";
import { ALL_WEEKDAYS } from "../protocol/schedule";
import type { Instance } from "../catalog/types";
import { commandWithin, connectForCapture, discoverShards } from "../redis/capture/capture";
import { DEFAULT_INSTANCE_TYPE, instanceTypeFor } from "../protocol/instance-types";
import { parseInfo } from "../redis/client/resp";
import { resolveInstance } from "../redis/client/sentinel";
import { parseRedisUrl } from "../redis/client/url";
import type { BackupSource } from "../records";

const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/**
 * A random string over `alphabet` (ids, generated keys). Every character is uniform over the alphabet:
 * crypto.randomInt draws without the bias of `byte % length` (which favours the first 256 % length symbols).
 */
export function randomString(length: number, alphabet: string): string {
  if (alphabet.length < 2 || alphabet.length > 2 ** 16) throw new RangeError("the alphabet must have 2 to 65536 symbols");
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[crypto.randomInt(alphabet.length)];
  return out;
}

export function generateInstanceId(): string {
  return `crs-${randomString(8, ID_ALPHABET)}`;
}

/** The URL with its password replaced, for display and logs. */
export const maskRedisUrl = maskUrl;

export interface RedisProbe {
  redisVersion: string;
  cluster: boolean;
  shardNum: number;
  instanceType: number;
  memSizeMb: number;
}

/**
 * Connects (authenticating), reads INFO and, for a cluster, its masters — each step with a deadline, so a server
 * that accepts the connection and then says nothing cannot hang a registration.
 */
export async function probeRedis(url: string, o: { timeoutMs?: number; allowedHosts?: readonly string[] } = {}): Promise<RedisProbe> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const { endpoint: ep, registeredHosts } = await resolveInstance(parseRedisUrl(url), { timeoutMs, allowedHosts: o.allowedHosts });
  const conn = await connectForCapture(ep, timeoutMs);
  let info: Map<string, string>;
  try {
    info = parseInfo(await commandWithin(conn, ep, timeoutMs, "INFO"));
  } finally {
    conn.close();
  }
  const field = (name: string) => info.get(name)?.trim();
  // Valkey reports a Redis-compatible redis_version too; its own version is valkey_version.
  const valkey = field("valkey_version");
  const redisVersion = valkey ?? field("redis_version") ?? "0.0.0";
  const cluster = field("cluster_enabled") === "1";
  const shardNum = cluster ? (await discoverShards(ep, timeoutMs, { allowedHosts: o.allowedHosts, registeredHosts })).masters.length : 1;
  const maxmemory = Number(field("maxmemory") ?? 0);
  const used = Number(field("used_memory") ?? 0);
  return { redisVersion, cluster, shardNum, instanceType: instanceTypeFor(redisVersion, cluster, valkey ? "valkey" : "redis"), memSizeMb: Math.ceil((maxmemory || used) / 1048576) };
}

export interface RegisterOptions {
  instanceId?: string;
  name?: string;
  region: string;
  accountId: string;
  redisUrl: string;
  /** Skip connecting to the server (register now, learn its version at the first backup). */
  noCheck?: boolean;
  /** Hosts a cluster may announce its nodes on besides the registered one. */
  allowedHosts?: readonly string[];
  /** Which node backups snapshot (default master). */
  backupSource?: BackupSource;
  /** Encrypt its backups (true), never (false), or as the server says (absent). */
  encryptBackups?: boolean;
  now: number;
}

export async function registerInstance(catalog: Catalog, o: RegisterOptions): Promise<Instance> {
  const instanceId = o.instanceId ?? generateInstanceId();
  if (!INSTANCE_ID_PATTERN.test(instanceId)) throw new Error(`instance id must be crs- followed by 8 lower-case letters or digits, got ${JSON.stringify(instanceId)}`);
  parseRedisUrl(o.redisUrl);
  const existing = await catalog.instance(instanceId);
  if (existing && existing.deletedAt === undefined) throw new Error(`instance ${instanceId} is already registered`);
  const probe = o.noCheck ? undefined : await probeRedis(o.redisUrl, { allowedHosts: o.allowedHosts });
  const instance: Instance = {
    instanceId, accountId: o.accountId, region: o.region, name: o.name ?? instanceId, redisUrl: o.redisUrl,
    instanceType: probe?.instanceType ?? DEFAULT_INSTANCE_TYPE, shardNum: probe?.shardNum ?? 1, memSizeMb: probe?.memSizeMb ?? 0, createdAt: o.now,
    autoBackupWeekDays: ALL_WEEKDAYS, autoBackupPeriod: "00:00-01:00", backupStorageDays: 7, lastAutoWindow: 0,
  };
  if (probe) instance.redisVersion = probe.redisVersion;
  if (o.backupSource && o.backupSource !== "master") instance.backupSource = o.backupSource;
  if (o.encryptBackups !== undefined) instance.encryptBackups = o.encryptBackups;
  await catalog.upsertInstance(instance);
  if (probe) await catalog.updateInstance(instanceId, { redisVersion: probe.redisVersion, shardNum: probe.shardNum, memSizeMb: probe.memSizeMb });
  return (await catalog.instance(instanceId))!;
}
