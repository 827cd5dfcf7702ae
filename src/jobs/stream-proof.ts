// The proof of a second-level backup stream (issue 17 item 5): each time a new base is taken, the previous base
// is loaded into a scratch redis-server (its own temp directory under the data dir, a free port on 127.0.0.1, no
// persistence) and the stored stream from the previous base's offset up to exactly the new base's offset is
// replayed into it, the same way a restore replays it (redis/stream/replay.ts). Its `DEBUG DIGEST` must then be
// the new base's data-set digest (computed from the stored file like every backup's, jobs/digests.ts): "the
// stream is complete". Anything else names the first differing key (redis/rdb/key-diff.ts: the new base's keys
// compared with the scratch server's). The outcome is kept with the new base (stream_bases.proof) and shown by
// /metrics and `crs-backup pitr status`.
//
// A proof that cannot run (no digest for a base, no redis-server, the stream not stored up to the offset within
// the deadline) is recorded as not run (`ran: false`), never as a pass.
import { spawn, ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Catalog } from "../catalog/catalog";
import type { StreamBase, StreamProof, StreamSegment } from "../catalog/types";
import type { Clock } from "../config";
import type { Logger } from "../log";
import { RedisEndpoint, RespConnection } from "../redis/client/resp";
import { verifyAgainstServer } from "../redis/rdb/key-diff";
import { replayUnits } from "../redis/stream/replay";
import type { StoredUnit } from "../redis/stream/segments";
import type { BlobStore } from "../storage/blob-store";
import { verifiedRead } from "../storage/integrity";
import { redisMajorVersion } from "../instances/local";
import { testFlag } from "../test-hooks";
import { backupFiles } from "./backups";
import { baseSegment, readStoredSegment } from "./point-in-time";

export interface ProofOptions {
  catalog: Catalog;
  store: BlobStore;
  logger: Logger;
  clock: Clock;
  redisServer: string;
  /** Parent of the scratch directories; absent: the OS temp dir. */
  scratchDir?: string;
  /** How long to wait for the stream to be stored past the new base's offset. Default 60 s. */
  waitMs?: number;
}

/** The stored units after `from.offset` through `to.offset`, in stream order; undefined if the stream breaks first. */
export async function unitsBetween(catalog: Catalog, store: BlobStore, from: StreamBase, to: StreamBase): Promise<StoredUnit[] | undefined> {
  const all = await catalog.streamSegments(from.instanceId, from.shard);
  const first = baseSegment(all, from);
  if (first < 0) return undefined;
  const chain: StreamSegment[] = [all[first]!];
  for (let i = first + 1; i < all.length && chain.at(-1)!.endOffset < to.offset; i++) {
    if (all[i]!.startOffset !== chain.at(-1)!.endOffset) return undefined; // another lineage: the stream broke
    chain.push(all[i]!);
  }
  if (chain.at(-1)!.endOffset < to.offset) return undefined;
  const out: StoredUnit[] = [];
  for (const seg of chain) {
    for (const u of await readStoredSegment(store, seg)) if (u.end > from.offset && u.end <= to.offset) out.push(u);
  }
  return out;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A scratch redis-server that loads `rdbFile` at start; resolves once it answers PING (loading done). */
async function startScratch(bin: string, dir: string): Promise<{ proc: ChildProcess; ep: RedisEndpoint }> {
  const major = await redisMajorVersion(bin);
  if (!major) throw new Error(`${bin} --version gave no Redis version (is redis-server on PATH?)`);
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"];
  if (major >= 7) args.push("--enable-debug-command", "local");
  const proc = spawn(bin, args, { stdio: "ignore" });
  const ep: RedisEndpoint = { host: "127.0.0.1", port };
  let exited: string | undefined;
  proc.on("exit", (code, signal) => (exited = `exited (${signal ?? code})`));
  proc.on("error", (e) => (exited = e.message));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited) throw new Error(`the scratch redis-server ${exited}`);
    try {
      const c = await RespConnection.connect(ep, 2_000);
      try {
        const pong = await c.command("PING");
        if (String(pong) === "PONG") return { proc, ep };
      } finally {
        c.close();
      }
    } catch {
      // not listening yet, or -LOADING
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error("the scratch redis-server did not come up within 120 s");
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function debugDigest(ep: RedisEndpoint): Promise<string> {
  const c = await RespConnection.connect(ep, 10_000);
  try {
    const v = await c.command("DEBUG", "DIGEST");
    return Buffer.isBuffer(v) ? v.toString() : String(v);
  } finally {
    c.close();
  }
}

/**
 * Replays `previous` + the stream up to `next.offset` in a scratch redis-server and compares its DEBUG DIGEST with
 * `expected` (the new base's digest). `durable()` gives the stream's durable offset on this node (the proof waits
 * until it has passed the new base's offset).
 */
export async function proveBase(o: ProofOptions, instanceId: string, previous: StreamBase, next: StreamBase, expected: string | undefined, durable: () => number): Promise<StreamProof> {
  const at = o.clock.now();
  const result = (ok: boolean, units: number, detail: string, ran = true): StreamProof => ({ ok, at: o.clock.now(), previous: previous.backupId, units, detail, ...(ran ? {} : { ran: false }) });
  if (!expected) return result(false, 0, `the new base ${next.backupId} has no data-set digest to compare with`, false);
  const prevBackup = await o.catalog.backup(previous.backupId);
  if (!prevBackup || (prevBackup.status !== 2 && prevBackup.status !== 4) || !prevBackup.files.length) return result(false, 0, `the previous base ${previous.backupId} is no longer stored`, false);
  const deadline = at + (o.waitMs ?? 60_000);
  while (durable() < next.offset && o.clock.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  let units = await unitsBetween(o.catalog, o.store, previous, next);
  if (!units) return result(false, 0, `the stored stream does not run without a break from ${previous.backupId} (offset ${previous.offset}) to offset ${next.offset}`, false);
  if (testFlag("stream-proof-drop-unit") && units.length) units = units.filter((_, i) => i !== Math.floor(units!.length / 2)); // a deliberately broken replay (tests)
  const parent = o.scratchDir ?? os.tmpdir();
  await fs.promises.mkdir(parent, { recursive: true, mode: 0o700 });
  const dir = await fs.promises.mkdtemp(path.join(parent, "proof-"));
  let proc: ChildProcess | undefined;
  try {
    const file = backupFiles(prevBackup)[0]!;
    await pipeline(await verifiedRead(o.store, file, { decompress: true }), fs.createWriteStream(path.join(dir, "dump.rdb"), { mode: 0o600 }));
    let ep: RedisEndpoint;
    try {
      ({ proc, ep } = await startScratch(o.redisServer, dir));
    } catch (err) {
      return result(false, units.length, `the proof could not run: ${(err as Error).message}`, false);
    }
    const replay = await replayUnits(ep, units);
    const got = await debugDigest(ep);
    if (got === expected) {
      return result(true, units.length, `the stream is complete: ${previous.backupId} + ${units.length} unit(s) (offset ${previous.offset} to ${next.offset}) give the digest of ${next.backupId} (${expected})`);
    }
    let first = "";
    const nextBackup = await o.catalog.backup(next.backupId);
    if (nextBackup?.files.length) {
      const diff = await verifyAgainstServer(await verifiedRead(o.store, backupFiles(nextBackup)[0]!, { decompress: true }), ep, { maxDifferences: 1 }).catch(() => undefined);
      const d = diff?.differences[0];
      if (d) first = `; first difference: db ${d.db} key ${JSON.stringify(d.key)} (${d.actual === "0".repeat(40) ? "missing from the replay" : "a different value"})`;
      else if (diff?.extraOnTarget) first = `; the replay has ${diff.extraOnTarget} key(s) the base does not`;
    }
    return result(false, units.length, `the replay of ${previous.backupId} + ${units.length} unit(s) gives digest ${got}, the base ${next.backupId} has ${expected}${replay.errors ? ` (${replay.errors} error repl(ies): ${replay.firstError ?? ""})` : ""}${first}`);
  } finally {
    if (proc && proc.exitCode === null) {
      const gone = new Promise((r) => proc!.once("exit", r));
      proc.kill("SIGKILL");
      await gone;
    }
    await fs.promises.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
