// Tencent CRS's InstanceType codes and backup FileType strings, as this server assigns them: one table, read by
// backups (what a capture found), instance registration, fixtures and DescribeInstances.

export type ServerName = "redis" | "valkey";

export interface InstanceTypeRow {
  code: number;
  server: ServerName;
  /** Major versions (of its server) the code stands for. */
  majors: readonly number[];
  cluster: boolean;
}

/**
 * The codes we assign: 2.8 standalone 5, 4.0 6/7 (standard/cluster), 5.0 8/9, 6.x 15/16, 7.x and later 17/18
 * (Redis 8 too: CRS has no code of its own for it; the FileType says "RDB-Redis 8.6"), Valkey 8 19/20 and Valkey 9
 * and later 21/22 (the cloud lists 19-22 as its Valkey codes). Versions older than 4.0 map to the 2.8 code (5) or,
 * for a cluster, the oldest cluster code (7), as CRS has no 3.x types.
 */
export const INSTANCE_TYPES: readonly InstanceTypeRow[] = [
  { code: 5, server: "redis", majors: [0, 1, 2, 3], cluster: false },
  { code: 6, server: "redis", majors: [4], cluster: false },
  { code: 7, server: "redis", majors: [0, 1, 2, 3, 4], cluster: true },
  { code: 8, server: "redis", majors: [5], cluster: false },
  { code: 9, server: "redis", majors: [5], cluster: true },
  { code: 15, server: "redis", majors: [6], cluster: false },
  { code: 16, server: "redis", majors: [6], cluster: true },
  { code: 17, server: "redis", majors: [7], cluster: false },
  { code: 18, server: "redis", majors: [7], cluster: true },
  { code: 19, server: "valkey", majors: [7, 8], cluster: false },
  { code: 20, server: "valkey", majors: [7, 8], cluster: true },
  { code: 21, server: "valkey", majors: [9], cluster: false },
  { code: 22, server: "valkey", majors: [9], cluster: true },
];

/** Codes the cloud uses for Valkey (19-22). */
const VALKEY_CODES = { from: 19, to: 22 };

/** An instance registered without a probe (and a fixture without InstanceType): Redis 7.x standard. */
export const DEFAULT_INSTANCE_TYPE = 17;
/** A fixture backup without FileType. */
export const DEFAULT_FILE_TYPE = "RDB-Redis 7.0";

function majorMinor(version: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(version.trim());
  if (!m) throw new Error(`cannot read a Redis version from ${JSON.stringify(version)}`);
  return [Number(m[1]), Number(m[2])];
}

/** The InstanceType code for a server version and topology (see INSTANCE_TYPES; Redis 8+ take 7.x's, Valkey 10+ 9.x's). */
export function instanceTypeFor(version: string, cluster: boolean, server: ServerName = "redis"): number {
  const major = server === "valkey" ? Math.max(7, Math.min(majorMinor(version)[0], 9)) : Math.min(majorMinor(version)[0], 7);
  const row = INSTANCE_TYPES.find((r) => r.server === server && r.cluster === cluster && r.majors.includes(major));
  return row!.code;
}

/** Which server an InstanceType code stands for (19-22: Valkey; the rest: Redis). */
export function serverOfType(instanceType: number): ServerName {
  return instanceType >= VALKEY_CODES.from && instanceType <= VALKEY_CODES.to ? "valkey" : "redis";
}

/** Whether an InstanceType code is a cluster one (DescribeInstances' ProductType). */
export function isClusterType(instanceType: number): boolean {
  return INSTANCE_TYPES.some((r) => r.code === instanceType && r.cluster);
}

/** The standard (one-shard) code of the same server and version as `instanceType` (itself when not a cluster code). */
export function standaloneTypeOf(instanceType: number): number {
  const row = INSTANCE_TYPES.find((r) => r.code === instanceType);
  if (!row?.cluster) return instanceType;
  const major = Math.max(...row.majors);
  return INSTANCE_TYPES.find((r) => r.server === row.server && !r.cluster && r.majors.includes(major))!.code;
}

/** The FileType of a backup written by this server version, e.g. "RDB-Redis 7.0". */
export function fileTypeFor(version: string, server: ServerName = "redis"): string {
  const [major, minor] = majorMinor(version);
  return `RDB-${server === "valkey" ? "Valkey" : "Redis"} ${major}.${minor}`;
}
