// RDB format constants (redis/redis src/rdb.h), and what each value type needs from a server.

/** Highest RDB version this engine reads (Redis 7.4 and 8.x write 12; Valkey 8 writes 11). */
export const RDB_MAX_KNOWN_VERSION = 12;
/** Lowest RDB version there is. */
export const RDB_MIN_VERSION = 1;
/** First RDB version with a CRC-64 trailer (Redis 2.6+). */
export const RDB_CHECKSUM_SINCE = 5;

export const RdbType = {
  STRING: 0,
  LIST: 1,
  SET: 2,
  ZSET: 3,
  HASH: 4,
  ZSET_2: 5,
  MODULE_PRE_GA: 6,
  MODULE_2: 7,
  HASH_ZIPMAP: 9,
  LIST_ZIPLIST: 10,
  SET_INTSET: 11,
  ZSET_ZIPLIST: 12,
  HASH_ZIPLIST: 13,
  LIST_QUICKLIST: 14,
  STREAM_LISTPACKS: 15,
  HASH_LISTPACK: 16,
  ZSET_LISTPACK: 17,
  LIST_QUICKLIST_2: 18,
  STREAM_LISTPACKS_2: 19,
  SET_LISTPACK: 20,
  STREAM_LISTPACKS_3: 21,
  HASH_METADATA_PRE_GA: 22,
  HASH_LISTPACK_EX_PRE_GA: 23,
  HASH_METADATA: 24,
  HASH_LISTPACK_EX: 25,
} as const;

export const Opcode = {
  SLOT_INFO: 0xf4,
  FUNCTION2: 0xf5,
  FUNCTION_PRE_GA: 0xf6,
  MODULE_AUX: 0xf7,
  IDLE: 0xf8,
  FREQ: 0xf9,
  AUX: 0xfa,
  RESIZEDB: 0xfb,
  EXPIRETIME_MS: 0xfc,
  EXPIRETIME: 0xfd,
  SELECTDB: 0xfe,
  EOF: 0xff,
} as const;

export const ModuleOpcode = { EOF: 0, SINT: 1, UINT: 2, FLOAT: 3, DOUBLE: 4, STRING: 5 } as const;

/** The logical type of a key, as `TYPE` reports it. */
export type ValueKind = "string" | "list" | "set" | "zset" | "hash" | "stream" | "module";

/** The object type number Redis uses (OBJ_STRING..OBJ_STREAM) — it is what DEBUG DIGEST mixes in. */
export const OBJ_TYPE: Record<ValueKind, number> = { string: 0, list: 1, set: 2, zset: 3, hash: 4, module: 5, stream: 6 };

export interface TypeDesc {
  kind: ValueKind;
  /** Encoding name as OBJECT ENCODING would (roughly) say, for reports. */
  encoding: string;
  /** First RDB version whose loader knows this type byte. */
  sinceRdb: number;
}

const T = RdbType;
export const TYPE_DESC: Record<number, TypeDesc> = {
  [T.STRING]: { kind: "string", encoding: "string", sinceRdb: 1 },
  [T.LIST]: { kind: "list", encoding: "linkedlist", sinceRdb: 1 },
  [T.SET]: { kind: "set", encoding: "hashtable", sinceRdb: 1 },
  [T.ZSET]: { kind: "zset", encoding: "skiplist", sinceRdb: 1 },
  [T.HASH]: { kind: "hash", encoding: "hashtable", sinceRdb: 1 },
  [T.ZSET_2]: { kind: "zset", encoding: "skiplist", sinceRdb: 8 },
  [T.MODULE_2]: { kind: "module", encoding: "module", sinceRdb: 8 },
  [T.HASH_ZIPMAP]: { kind: "hash", encoding: "zipmap", sinceRdb: 2 },
  [T.LIST_ZIPLIST]: { kind: "list", encoding: "ziplist", sinceRdb: 2 },
  [T.SET_INTSET]: { kind: "set", encoding: "intset", sinceRdb: 2 },
  [T.ZSET_ZIPLIST]: { kind: "zset", encoding: "ziplist", sinceRdb: 2 },
  [T.HASH_ZIPLIST]: { kind: "hash", encoding: "ziplist", sinceRdb: 2 },
  [T.LIST_QUICKLIST]: { kind: "list", encoding: "quicklist", sinceRdb: 7 },
  [T.STREAM_LISTPACKS]: { kind: "stream", encoding: "stream", sinceRdb: 9 },
  [T.HASH_LISTPACK]: { kind: "hash", encoding: "listpack", sinceRdb: 10 },
  [T.ZSET_LISTPACK]: { kind: "zset", encoding: "listpack", sinceRdb: 10 },
  [T.LIST_QUICKLIST_2]: { kind: "list", encoding: "quicklist", sinceRdb: 10 },
  [T.STREAM_LISTPACKS_2]: { kind: "stream", encoding: "stream", sinceRdb: 10 },
  [T.SET_LISTPACK]: { kind: "set", encoding: "listpack", sinceRdb: 11 },
  [T.STREAM_LISTPACKS_3]: { kind: "stream", encoding: "stream", sinceRdb: 11 },
  [T.HASH_METADATA_PRE_GA]: { kind: "hash", encoding: "hashtable", sinceRdb: 12 },
  [T.HASH_LISTPACK_EX_PRE_GA]: { kind: "hash", encoding: "listpack", sinceRdb: 12 },
  [T.HASH_METADATA]: { kind: "hash", encoding: "hashtable", sinceRdb: 12 },
  [T.HASH_LISTPACK_EX]: { kind: "hash", encoding: "listpack", sinceRdb: 12 },
};

/**
 * Highest RDB version a server release writes and loads, from its version string. Valkey reports itself via
 * `valkey_version`/`valkey-ver`; Valkey 8.x is RDB 11. Undefined when the release is unknown (newer): callers
 * then assume the newest format this engine knows.
 */
export function rdbVersionOf(server: "redis" | "valkey", version: string): number | undefined {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return undefined;
  const v = Number(m[1]) * 100 + Number(m[2]);
  if (server === "valkey") {
    if (v < 800) return rdbVersionOf("redis", version); // Valkey 7.2 is Redis 7.2
    if (v < 900) return 11;
    return undefined;
  }
  if (v < 302) return 6;
  if (v < 400) return 7;
  if (v < 500) return 8;
  if (v < 700) return 9;
  if (v < 702) return 10;
  if (v < 704) return 11;
  if (v < 900) return 12;
  return undefined;
}

/** Decodes the 9-character module type name from a module type id (the low 10 bits are the encoding version). */
export function moduleNameFromId(id: bigint): { name: string; encVersion: number } {
  const charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const encVersion = Number(id & 1023n);
  let rest = id >> 10n;
  const out: string[] = [];
  for (let j = 0; j < 9; j++) {
    out.unshift(charset[Number(rest & 63n)]);
    rest >>= 6n;
  }
  return { name: out.join(""), encVersion };
}
