// Restore by commands across versions: backups of Redis 4.0, 6.2, 7.0, 7.4 and Valkey 8 (taken through the
// capture path) restored into Redis 5.0, 6.2, 7.0, 7.4 and Valkey 8, by RESTORE payloads ("auto") and by plain
// commands; the target's DEBUG DIGEST must equal the digest computed from the backup (in the target's score
// format). Features a target lacks (7.4 hash field TTLs, streams on 4.0) give a precise per-key error or the
// documented downgrade. Then filters, replace/keep, a target that refuses replication (and RESTORE), and a
// target that dies or freezes mid-restore.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { digestRdb, readRdbSync, StreamValue, streamIdString, verifyAgainstServer } from "../src/redis/rdb/index";
import { restoreByCommands } from "../src/redis/restore/commands";
import { CommandRestoreError, CommandRestoreOptions, RestoreSummary } from "../src/redis/rdb/command-summary";
import { RedisEndpoint, RespConnection, RespValue } from "../src/redis/client/resp";
import { captureToBuffer, chunks, debugDigest, LONG_TTL, writeCorpus } from "./support/rdb-corpus";
import { RedisProcess, startRedis } from "./support/redis";
import { missing, ServerVersion, startVersion, version } from "./support/versions";

const SOURCES = ["4.0", "6.2", "7.0", "7.4", "8.6", "valkey-8.0", "valkey-9.1"].map(version);
const TARGETS = ["8.6", "5.0", "6.2", "7.0", "7.4", "valkey-8.0", "valkey-9.1"].map(version);
// (8.6 first: the IDMP history in the 8.6 backup is remembered for 300 s after it was written)

const str = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : String(v));
const fpconv = (v: ServerVersion): boolean => v.server === "valkey" || v.setListpack;

async function cmd(ep: RedisEndpoint, ...args: Array<string | number>): Promise<RespValue> {
  const c = await RespConnection.connect(ep);
  try {
    return await c.command(...args);
  } finally {
    c.close();
  }
}

interface Backup {
  v: ServerVersion;
  rdb: Buffer;
}

const backups = new Map<string, Backup>();

/** Hash field TTLs in a backup. */
function fieldTtls(rdb: Buffer): number {
  let n = 0;
  for (const k of readRdbSync(rdb).keys) if (k.type === "hash") n += (k.value as Array<[Buffer, Buffer, number]>).filter((f) => f[2] !== -1).length;
  return n;
}

function assertClean(s: RestoreSummary, label: string): void {
  assert.equal(s.failed, 0, `${label}: ${JSON.stringify(s.failures.slice(0, 3))}`);
}

before(async () => {
  await Promise.all(
    SOURCES.filter((v) => v.bin).map(async (v) => {
      const r = await startVersion(v);
      try {
        await writeCorpus(r.endpoint, v);
        backups.set(v.name, { v, rdb: await captureToBuffer(r.endpoint) });
      } finally {
        r.kill();
      }
    }),
  );
});

describe("cross-version matrix (digest-equal after restore by commands)", () => {
  for (const t of TARGETS) {
    test(`into ${t.server} ${t.version}`, { skip: missing(t) }, async () => {
      assert.equal(backups.size, SOURCES.filter((v) => v.bin).length, "every source was backed up");
      const target = await startVersion(t);
      try {
        for (const b of backups.values()) {
          for (const mode of ["auto", "commands"] as const) {
            const label = `${b.v.name} -> ${t.name} (${mode})`;
            await cmd(target.endpoint, "FLUSHALL");
            if (t.functions) await cmd(target.endpoint, "FUNCTION", "FLUSH");
            const dropFieldTtls = b.v.hfe && !t.hfe;
            // IDMP state (8.6) survives only RESTORE into 8.6: elsewhere it is dropped on request, and counted
            const keepsIdmp = t.idmp && mode === "auto";
            const dropStreamIdmp = b.v.idmp && !keepsIdmp;
            const s = await restoreByCommands(chunks(b.rdb, 8192), { target: target.endpoint, mode, dropFieldTtls, dropStreamIdmp });
            // Valkey's DEBUG DIGEST leaves field TTLs out
            const expected = digestRdb(b.rdb, { scoreFormat: fpconv(t) ? "fpconv" : "%.17g", ignoreFieldTtls: !t.hfe || t.server === "valkey" });
            if (!t.functions && b.v.functions) {
              // the only thing such a target cannot take: reported, not silently lost
              assert.equal(s.functions.failed, 1, label);
              assert.match(s.failures.map((f) => f.error).join("\n"), /functions need Redis 7\.0\+/);
              assert.equal(s.failed, 0, label);
            } else {
              assertClean(s, label);
            }
            assert.equal(s.keys, expected.keys, label);
            assert.equal(await debugDigest(target.endpoint), expected.digest, label);
            if (mode === "auto") assert.ok(s.byRestore > 0, `${label}: collections went by RESTORE`);
            else assert.equal(s.byRestore, 0, label);
            if (dropFieldTtls) assert.equal(s.droppedFieldTtls, fieldTtls(b.rdb), label);
            else assert.equal(s.droppedFieldTtls, 0, label);
            assert.equal(s.droppedStreamIdmp, dropStreamIdmp ? 1 : 0, label);
            if (b.v.hfe && t.hfe) {
              // every field TTL kept, to the millisecond
              const src = readRdbSync(b.rdb).keys.filter((k) => k.type === "hash" && (k.value as Array<[Buffer, Buffer, number]>).some((f) => f[2] !== -1));
              for (const k of src) {
                const fields = (k.value as Array<[Buffer, Buffer, number]>);
                const got = (await cmd(target.endpoint, "HPEXPIRETIME", k.key.toString(), "FIELDS", fields.length, ...fields.map((f) => f[0].toString()))) as RespValue[];
                assert.deepEqual(got.map(Number), fields.map((f) => f[2]), `${label}: field TTLs of ${k.key}`);
              }
            }
            if (keepsIdmp && b.v.idmp) {
              const info = async (ep: RedisEndpoint): Promise<string> => {
                const x = (await cmd(ep, "XINFO", "STREAM", "st:idmp")) as RespValue[];
                const m = new Map<string, string>();
                for (let i = 0; i < x.length; i += 2) m.set(str(x[i]), str(x[i + 1]));
                return ["idmp-duration", "idmp-maxsize", "pids-tracked", "iids-tracked", "iids-added", "iids-duplicates"].map((f) => `${f}=${m.get(f)}`).join(" ");
              };
              assert.equal(await info(target.endpoint), "idmp-duration=300 idmp-maxsize=50 pids-tracked=2 iids-tracked=3 iids-added=3 iids-duplicates=1", `${label}: IDMP state`);
              // the remembered iid still deduplicates on the target
              const again = str(await cmd(target.endpoint, "XADD", "st:idmp", "IDMP", "p1", "i2", "*", "a", 9));
              assert.equal(Number(await cmd(target.endpoint, "XLEN", "st:idmp")), 4, `${label}: ${again} was a duplicate`);
            }
            // what the digest does not cover: TTL values, stream groups and pending entries, functions
            const ttl = Number(await cmd(target.endpoint, "PTTL", "h:ttl"));
            assert.ok(ttl > LONG_TTL - 600_000 && ttl <= LONG_TTL, `${label}: PTTL ${ttl}`);
            if (b.v.streams) {
              // the backup's own groups, PEL and consumers (as the source server had them)
              const st = readRdbSync(b.rdb).keys.find((k) => k.key.toString() === "st:full")!.value as StreamValue;
              const g1 = st.groups.find((g) => g.name.toString() === "g1")!;
              const pending = (await cmd(target.endpoint, "XPENDING", "st:full", "g1")) as RespValue[];
              assert.equal(Number(pending[0]), g1.pendingEntries.length, `${label}: g1 PEL size`);
              const consumers = ((pending[3] as RespValue[][]) ?? []).map((x) => `${str(x[0])}:${str(x[1])}`).sort();
              assert.deepEqual(consumers, g1.consumerList.map((c) => `${c.name}:${c.pendingIds.length}`).sort(), label);
              const groups = ((await cmd(target.endpoint, "XINFO", "GROUPS", "st:full")) as RespValue[][]).map((g) => {
                const m = new Map<string, string>();
                for (let i = 0; i < g.length; i += 2) m.set(str(g[i]), str(g[i + 1]));
                return `${m.get("name")}@${m.get("last-delivered-id")}`;
              });
              assert.deepEqual(groups.sort(), st.groups.map((g) => `${g.name}@${streamIdString(g.lastId)}`).sort(), label);
              const detail = (await cmd(target.endpoint, "XPENDING", "st:full", "g1", "-", "+", 10)) as RespValue[][];
              assert.deepEqual(
                detail.map((d) => `${str(d[0])}/${str(d[1])}/${Number(d[3])}`).sort(),
                g1.consumerList.flatMap((c) => c.pendingIds.map((id) => `${streamIdString(id)}/${c.name}/${g1.pendingEntries.find((p) => streamIdString(p.id) === streamIdString(id))!.deliveryCount}`)).sort(),
                `${label}: pending entries with owner and delivery count`,
              );
            }
            if (t.functions && b.v.functions) {
              assert.equal(s.functions.loaded, 1, label);
              assert.match(JSON.stringify((await cmd(target.endpoint, "FUNCTION", "LIST")) as unknown, (_k, x) => (x?.type === "Buffer" ? Buffer.from(x.data).toString() : x)), /corpuslib/);
            }
          }
        }
      } finally {
        target.kill();
      }
    });
  }
});

describe("features a target lacks", () => {
  test("7.4 hash field TTLs into 7.0: a precise per-key error by default, the rest restored", { skip: missing(version("7.4")) }, async () => {
    const b = backups.get("7.4")!;
    const target = await startVersion(version("7.0"));
    try {
      for (const mode of ["auto", "commands"] as const) {
        await cmd(target.endpoint, "FLUSHALL");
        const s = await restoreByCommands(chunks(b.rdb, 8192), { target: target.endpoint, mode });
        assert.equal(s.failed, 2, mode);
        assert.deepEqual(s.failures.map((f) => f.key).sort(), ["hx:big", "hx:small"]);
        for (const f of s.failures) assert.match(f.error, /hash field TTL.*\(Redis 7\.4 HEXPIRE\).*cannot be kept/);
        assert.equal(Number(await cmd(target.endpoint, "EXISTS", "hx:big", "hx:small")), 0, `${mode}: no partial key left`);
        assert.equal(s.keys, digestRdb(b.rdb).keys - 2);
      }
    } finally {
      target.kill();
    }
  });

  test("Redis 8.6 hash field TTLs (HSETEX, HPEXPIRE) into 7.2: refused per key, precisely; into 8.6 exactly", { skip: missing(version("8.6")) ?? missing(version("7.2")) }, async () => {
    const b = backups.get("8.6")!;
    const ttlKeys = ["hx:big", "hx:setex", "hx:small"];
    const target = await startVersion(version("7.2"));
    try {
      for (const mode of ["auto", "commands"] as const) {
        await cmd(target.endpoint, "FLUSHALL");
        const s = await restoreByCommands(chunks(b.rdb, 8192), { target: target.endpoint, mode, dropStreamIdmp: true });
        assert.deepEqual(s.failures.map((f) => f.key).sort(), ttlKeys, mode);
        for (const f of s.failures) assert.match(f.error, /hash field TTL.*\(Redis 7\.4 HEXPIRE\).*cannot be kept on .*(RDB version 11|redis 7\.2\.6).*allow dropping field TTLs/, mode);
        assert.equal(Number(await cmd(target.endpoint, "EXISTS", ...ttlKeys)), 0, `${mode}: no partial key left`);
        assert.equal(s.keys, digestRdb(b.rdb).keys - 3, mode);
      }
      // without the option, the IDMP state is refused just as precisely
      await cmd(target.endpoint, "FLUSHALL");
      const s = await restoreByCommands(chunks(b.rdb, 8192), { target: target.endpoint, dropFieldTtls: true });
      assert.deepEqual(s.failures.map((f) => f.key), ["st:idmp"]);
      assert.match(s.failures[0].error, /XADD IDMP state \(Redis 8\.6: 2 producer\(s\) of remembered iids, 3 iids added, 1 duplicates\) cannot be kept on a target with RDB version 11/);
    } finally {
      target.kill();
    }
    // into 8.6: the same data set, digest-equal, every field TTL to the millisecond (checked in the matrix too)
    const same = await startVersion(version("8.6"));
    try {
      const s = await restoreByCommands(chunks(b.rdb, 8192), { target: same.endpoint });
      assertClean(s, "8.6 -> 8.6");
      assert.equal(await debugDigest(same.endpoint), digestRdb(b.rdb).digest);
      const ttl = Number(await cmd(same.endpoint, "HPTTL", "hx:setex", "FIELDS", 1, "s1"));
      assert.ok(ttl > LONG_TTL - 600_000 && ttl <= LONG_TTL, `HSETEX field TTL ${ttl}`);
      assert.equal(Number(((await cmd(same.endpoint, "HPTTL", "hx:setex", "FIELDS", 1, "plain")) as RespValue[])[0]), -1);
    } finally {
      same.kill();
    }
  });

  test("streams into Redis 4.0: refused per key with the reason, everything else restored", { skip: missing(version("4.0")) ?? missing(version("7.0")) }, async () => {
    const b = backups.get("7.0")!;
    const target = await startVersion(version("4.0"));
    try {
      const s = await restoreByCommands(chunks(b.rdb, 8192), { target: target.endpoint });
      const streamKeys = s.failures.filter((f) => /has no streams \(they need Redis 5\.0\+\)/.test(f.error)).map((f) => f.key).sort();
      assert.deepEqual(streamKeys, ["st:empty", "st:full", "st:mk", "st:ttl"]);
      assert.equal(s.keys, digestRdb(b.rdb).keys - 4);
      assert.equal(str(await cmd(target.endpoint, "HGET", "h:big", "field-7")), "value-7");
    } finally {
      target.kill();
    }
  });
});

describe("filters, replace and keep", () => {
  let target: RedisProcess;
  let rdb: Buffer;
  before(async () => {
    rdb = backups.get("7.0")!.rdb;
    target = await startVersion(version("7.0"));
  });
  after(() => target?.kill());

  const dbKeys = async (db: number): Promise<string[]> => {
    const c = await RespConnection.connect(target.endpoint);
    try {
      await c.command("SELECT", db);
      return ((await c.command("KEYS", "*")) as Buffer[]).map(str).sort();
    } finally {
      c.close();
    }
  };

  test("db, match and type filters", async () => {
    await cmd(target.endpoint, "FLUSHALL");
    let s = await restoreByCommands(chunks(rdb, 4096), { target: target.endpoint, dbs: [3] });
    assert.deepEqual(await dbKeys(3), ["db3:l", "db3:s", "db3:ttl"]);
    assert.deepEqual(await dbKeys(0), []);
    assert.equal(s.keys, 3);
    assert.equal(s.filtered, digestRdb(rdb).keys - 3);

    await cmd(target.endpoint, "FLUSHALL");
    s = await restoreByCommands(chunks(rdb, 4096), { target: target.endpoint, match: "set:i[13]*" });
    assert.deepEqual(await dbKeys(0), ["set:i16", "set:i32"]);

    await cmd(target.endpoint, "FLUSHALL");
    s = await restoreByCommands(chunks(rdb, 4096), { target: target.endpoint, types: ["hash", "stream"], dbs: [0] });
    assert.deepEqual(await dbKeys(0), ["h:big", "h:longval", "h:small", "h:ttl", "st:empty", "st:full", "st:mk", "st:ttl"]);
    assertClean(s, "types");

    await cmd(target.endpoint, "FLUSHALL");
    s = await restoreByCommands(chunks(rdb, 4096), { target: target.endpoint, dbs: [3, 15], targetDb: 5 });
    assert.deepEqual(await dbKeys(5), ["db15:set", "db3:l", "db3:s", "db3:ttl"]);
  });

  for (const mode of ["auto", "commands"] as const) {
    test(`replace (default) overwrites, keep counts existing keys as skipped (${mode})`, async () => {
      const existing = async (): Promise<void> => {
        await cmd(target.endpoint, "FLUSHALL");
        await cmd(target.endpoint, "SET", "s:short", "old");
        await cmd(target.endpoint, "RPUSH", "l:nodes", "old");
        await cmd(target.endpoint, "HSET", "h:big", "old", "1");
        await cmd(target.endpoint, "SET", "z:big", "not a zset");
      };
      const all = digestRdb(rdb);
      await existing();
      let s = await restoreByCommands(chunks(rdb, 4096), { target: target.endpoint, mode });
      assertClean(s, "replace");
      assert.equal(s.keys, all.keys);
      assert.equal(await debugDigest(target.endpoint), all.digest, "replace gives exactly the backup");

      await existing();
      s = await restoreByCommands(chunks(rdb, 4096), { target: target.endpoint, mode, replace: false, maxInFlightBytes: 4096 });
      assertClean(s, "keep");
      assert.equal(s.skipped, 4);
      assert.equal(s.keys, all.keys - 4);
      assert.equal(str(await cmd(target.endpoint, "GET", "s:short")), "old");
      assert.deepEqual(((await cmd(target.endpoint, "LRANGE", "l:nodes", 0, -1)) as Buffer[]).map(str), ["old"]);
      assert.deepEqual(((await cmd(target.endpoint, "HGETALL", "h:big")) as Buffer[]).map(str), ["old", "1"]);
      assert.equal(str(await cmd(target.endpoint, "GET", "z:big")), "not a zset");
      assert.equal(Number(await cmd(target.endpoint, "ZCARD", "z:small")), 8, "absent keys are written");
    });
  }
});

describe("finding the keys that differ after a restore", () => {
  test("per-key DIGEST-VALUE comparison names the first differing, missing and extra keys", { skip: missing(version("7.4")) }, async () => {
    const b = backups.get("7.4")!;
    const target = await startVersion(version("7.4"));
    try {
      await restoreByCommands(chunks(b.rdb, 8192), { target: target.endpoint });
      let v = await verifyAgainstServer(chunks(b.rdb, 8192), target.endpoint, { batch: 7 });
      assert.equal(v.keys, digestRdb(b.rdb).keys);
      assert.deepEqual([v.missing, v.different, v.extraOnTarget, v.differences.length], [0, 0, 0, 0]);
      await cmd(target.endpoint, "HSET", "h:small", "f2", "changed");
      await cmd(target.endpoint, "PERSIST", "s:ttl"); // only the TTL's presence changes
      await cmd(target.endpoint, "DEL", "z:big");
      await cmd(target.endpoint, "SET", "not-in-backup", "x");
      v = await verifyAgainstServer(chunks(b.rdb, 8192), target.endpoint, { batch: 7 });
      assert.equal(v.missing, 1);
      assert.equal(v.different, 2);
      assert.equal(v.extraOnTarget, 1);
      assert.deepEqual(v.differences.map((d) => d.key).sort(), ["h:small", "s:ttl", "z:big"]);
      assert.equal(v.differences.find((d) => d.key === "z:big")!.actual, "0".repeat(40));
    } finally {
      target.kill();
    }
  });
});

describe("huge values take the bounded-memory paths", () => {
  let rdb: Buffer;
  let digest: string;
  let target: RedisProcess;
  before(async () => {
    const src = await startRedis(["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]);
    try {
      const c = await RespConnection.connect(src.endpoint);
      await c.command("SET", "bigstring", Buffer.alloc(3 << 20, "0123456789abcdef"));
      await c.command("PEXPIRE", "bigstring", LONG_TTL);
      for (let b = 0; b < 10; b++) await c.command("RPUSH", "biglist", ...Array.from({ length: 5000 }, (_, i) => `${b}:${i}:${"p".repeat(i % 40)}`));
      await c.command("PEXPIRE", "biglist", LONG_TTL);
      await c.command("HSET", "bighash", ...Array.from({ length: 3000 }, (_, i) => [`f${i}`, `v${i}`]).flat());
      c.close();
      digest = await debugDigest(src.endpoint);
      rdb = await captureToBuffer(src.endpoint);
    } finally {
      src.kill();
    }
    target = await startRedis(["--enable-debug-command", "yes"]);
  });
  after(() => target?.kill());

  for (const mode of ["auto", "commands"] as const) {
    test(`a 3 MB string as SET + APPEND pieces, collections past maxPayloadBytes spilled to batches (${mode})`, async () => {
      await cmd(target.endpoint, "FLUSHALL");
      const s = await restoreByCommands(chunks(rdb, 32768), { target: target.endpoint, mode, maxPayloadBytes: 64 * 1024, maxInFlightBytes: 1 << 20 });
      assertClean(s, mode);
      assert.equal(s.keys, 3);
      // only the ~40 KB hash fits one 64 KB payload; the 3 MB string and the ~500 KB list do not
      assert.equal(s.byRestore, mode === "auto" ? 1 : 0);
      assert.equal(await debugDigest(target.endpoint), digest);
      for (const k of ["bigstring", "biglist"]) {
        const ttl = Number(await cmd(target.endpoint, "PTTL", k));
        assert.ok(ttl > LONG_TTL - 600_000, `${k}: PTTL ${ttl}`);
      }
      assert.equal(Number(await cmd(target.endpoint, "PTTL", "bighash")), -1);
    });
  }

  test("keep mode holds a huge key's commands behind its EXISTS gate", async () => {
    await cmd(target.endpoint, "FLUSHALL");
    await cmd(target.endpoint, "SET", "bigstring", "mine");
    await cmd(target.endpoint, "RPUSH", "biglist", "mine");
    const s = await restoreByCommands(chunks(rdb, 32768), { target: target.endpoint, replace: false, maxPayloadBytes: 64 * 1024 });
    assertClean(s, "keep");
    assert.equal(s.skipped, 2);
    assert.equal(s.keys, 1);
    assert.equal(str(await cmd(target.endpoint, "GET", "bigstring")), "mine");
    assert.deepEqual(((await cmd(target.endpoint, "LRANGE", "biglist", 0, -1)) as Buffer[]).map(str), ["mine"]);
    assert.equal(Number(await cmd(target.endpoint, "PTTL", "bigstring")), -1, "the kept key's TTL is untouched");
    assert.equal(Number(await cmd(target.endpoint, "HLEN", "bighash")), 3000);
  });
});

describe("a target that refuses replication", () => {
  test("restores by commands; RESTORE denied too falls back to plain commands", { skip: missing(version("7.4")) }, async () => {
    const b = backups.get("7.4")!;
    const target = await startRedis(["--enable-debug-command", "yes"]);
    try {
      await cmd(target.endpoint, "ACL", "SETUSER", "norepl", "on", ">pw", "~*", "&*", "+@all", "-sync", "-psync", "-replicaof", "-slaveof");
      await cmd(target.endpoint, "ACL", "SETUSER", "norestore", "on", ">pw", "~*", "&*", "+@all", "-sync", "-psync", "-replicaof", "-slaveof", "-restore");
      const c = await RespConnection.connect({ ...target.endpoint, username: "norepl", password: "pw" });
      await assert.rejects(c.command("SYNC"), /NOPERM/);
      c.close();
      const expected = digestRdb(b.rdb, { scoreFormat: "%.17g", ignoreFieldTtls: true });
      for (const user of ["norepl", "norestore"]) {
        await cmd(target.endpoint, "FLUSHALL");
        const opts: CommandRestoreOptions = { target: { ...target.endpoint, username: user, password: "pw" }, dropFieldTtls: true };
        const s = await restoreByCommands(chunks(b.rdb, 8192), opts);
        assert.equal(s.target.restore, user === "norepl", `${user}: RESTORE allowed?`);
        assert.equal(s.byRestore > 0, user === "norepl", user);
        assert.equal(await debugDigest(target.endpoint), expected.digest, user);
      }
    } finally {
      target.kill();
    }
  });
});

describe("a target that dies mid-restore", () => {
  let rdb: Buffer;
  before(async () => {
    const src = await startRedis(["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]);
    try {
      await cmd(src.endpoint, "DEBUG", "POPULATE", 200_000, "key", 64);
      rdb = await captureToBuffer(src.endpoint);
    } finally {
      src.kill();
    }
  });

  const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms (hang)`)), ms))]);

  test("killed: the restore fails with a message naming the target, no hang", async () => {
    const target = await startRedis();
    let killed = false;
    const p = restoreByCommands(chunks(rdb, 16384), {
      target: target.endpoint,
      maxInFlightBytes: 256 * 1024,
      onProgress: (s) => {
        if (!killed && s.bytesRead > rdb.length / 4) {
          killed = true;
          target.kill();
        }
      },
    });
    const err = await within(p.then(() => assert.fail("restore succeeded"), (e: unknown) => e), 15_000, "killed target");
    assert.ok(err instanceof CommandRestoreError, String(err));
    assert.match(err.message, new RegExp(`restore into 127\\.0\\.0\\.1:${target.port} failed after \\d+ keys written`));
    assert.match(err.message, /closed the connection|ECONNRESET|EPIPE/);
    assert.ok(killed);
  });

  test("aborted by the caller while waiting for replies: rejects at once with 'aborted'", async () => {
    const target = await startRedis();
    const ac = new AbortController();
    try {
      const p = restoreByCommands(chunks(rdb, 16384), {
        target: target.endpoint,
        signal: ac.signal,
        onProgress: (s) => {
          if (s.bytesRead > rdb.length / 4 && !ac.signal.aborted) {
            target.proc.kill("SIGSTOP"); // no reply will come: only the abort can end the wait
            setTimeout(() => ac.abort(), 50);
          }
        },
      });
      const err = await within(p.then(() => assert.fail("restore succeeded"), (e: unknown) => e), 10_000, "aborted restore");
      assert.ok(err instanceof CommandRestoreError, String(err));
      assert.match(err.message, /aborted after \d+ keys written/);
    } finally {
      target.proc.kill("SIGCONT");
      target.kill();
    }
  });

  test("frozen (SIGSTOP): the restore fails after timeoutMs without replies", async () => {
    const target = await startRedis();
    let stopped = false;
    try {
      const p = restoreByCommands(chunks(rdb, 16384), {
        target: target.endpoint,
        timeoutMs: 1000,
        maxInFlightBytes: 256 * 1024,
        onProgress: (s) => {
          if (!stopped && s.bytesRead > rdb.length / 4) {
            stopped = true;
            target.proc.kill("SIGSTOP");
          }
        },
      });
      const err = await within(p.then(() => assert.fail("restore succeeded"), (e: unknown) => e), 15_000, "frozen target");
      assert.ok(err instanceof CommandRestoreError, String(err));
      assert.match(err.message, /no reply from 127\.0\.0\.1:\d+ for 1000 ms/);
    } finally {
      target.proc.kill("SIGCONT");
      target.kill();
    }
  });
});
