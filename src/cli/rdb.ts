// What is inside a backup, and whether it is sound, without a Redis: `verify` (stored bytes against their record,
// a full parse with the CRC-64, the digest against the one recorded at capture), `inspect` (keys per db and type,
// expiring keys, memory estimates, the biggest keys, AUX fields) and `export` (the RDB as is, JSON lines per key,
// or a RESP stream `redis-cli --pipe` loads). inspect and export also take an RDB file (plain or gzip).
import type { Command } from "commander";
import fs from "node:fs";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import type { Backup, StoredFile } from "../catalog/types";
import { exportJsonLines, exportResp, formatInspectReport, inspectRdbStream, InspectReport, RdbDigest } from "../redis/rdb/index";
import { describeDrops } from "../redis/rdb/command-summary";
import type { Services } from "../services";
import { verifiedRead } from "../storage/integrity";
import { backupFiles } from "../jobs/backups";
import { withServices, withSettings } from "./context";
import { formatBytes } from "./output";
import { UsageError } from "./settings";

/** The plain RDB of one stored shard, its size and SHA-256 checked as it streams. */
function shardStream(s: Services, f: StoredFile): Promise<Readable> {
  return verifiedRead(s.store, f, { decompress: true });
}

async function backupOf(s: Services, id: string): Promise<Backup> {
  const b = await s.catalog.backup(id);
  if (!b) throw new Error(`no backup ${id}`);
  if (!b.files.length) throw new Error(`backup ${id} has no stored files (${b.status === -1 || b.status === -2 ? `Status ${b.status}: its files were removed` : "a catalogue-only record"})`);
  return { ...b, files: backupFiles(b) }; // an encrypted backup's files with its data key
}

/** A local RDB file as a stream of its plain bytes (gzip detected by its magic bytes). */
function fileStream(file: string): Readable {
  const head = Buffer.alloc(2);
  const fd = fs.openSync(file, "r");
  try {
    fs.readSync(fd, head, 0, 2, 0);
  } finally {
    fs.closeSync(fd);
  }
  const raw = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  if (head[0] !== 0x1f || head[1] !== 0x8b) return raw;
  const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
  raw.on("error", (err) => gunzip.destroy(err));
  return raw.pipe(gunzip);
}

/** Every shard of a backup, or the one file, as plain RDB streams with a label each. */
async function sources(s: Services | undefined, target: string): Promise<Array<{ label: string; open(): Promise<Readable> }>> {
  if (fs.existsSync(target) && fs.statSync(target).isFile()) return [{ label: path.basename(target), open: async () => fileStream(target) }];
  if (!s) throw new Error(`no file ${target}`);
  const b = await backupOf(s, target);
  return [...b.files].sort((x, y) => x.shard - y.shard).map((f) => ({ label: `shard ${f.shard}`, open: () => shardStream(s, f) }));
}

export function registerRdbCommands(program: Command): void {
  withSettings(program.command("verify <backupId>").description("check a stored backup end to end without a Redis: size and SHA-256, a full parse with its CRC-64, the recorded digest"), "all")
    .action(async (id: string, _o: unknown, cmd: Command) => withServices(cmd, async (s) => {
      const b = await backupOf(s, id);
      let failed = 0;
      for (const f of [...b.files].sort((x, y) => x.shard - y.shard)) {
        const started = Date.now();
        try {
          const digest = new RdbDigest();
          for await (const chunk of await shardStream(s, f)) digest.update(chunk as Buffer);
          const r = digest.digest();
          const parts = [`shard ${f.shard}: ${formatBytes(f.bytes)}, sha256 ok, RDB ${r.rdb.rdbVersion} parsed (${r.keys} keys, checksum ${r.rdb.checksum})`];
          if (f.digest === undefined) parts.push(`digest ${r.digest} (none was recorded at capture to compare with)`);
          else if (r.moduleKeys > 0) parts.push(`${r.moduleKeys} module key(s): the digest cannot be checked here`);
          else if (r.digest === f.digest) parts.push(`digest ${r.digest} equal to the capture's`);
          else {
            failed++;
            parts.push(`DIGEST MISMATCH: ${r.digest}, recorded ${f.digest}`);
          }
          console.log(`${parts.join("; ")} (${Date.now() - started} ms)`);
        } catch (err) {
          failed++;
          console.log(`shard ${f.shard}: FAILED: ${(err as Error).message}`);
        }
      }
      if (failed) {
        process.exitCode = 1;
        console.log(`backup ${b.backupId}: ${failed} of ${b.files.length} shard(s) failed verification`);
      } else console.log(`backup ${b.backupId}: verified (${b.files.length} shard(s))`);
    }));

  withSettings(program.command("inspect <backupOrFile>").description("what a backup (or an RDB file, plain or gzip) holds: keys per db and type, expiring keys, memory estimates, the biggest keys, AUX fields")
    .option("--top <n>", "how many of the biggest keys", "10")
    .option("--format <format>", "table or json", "table"), "all")
    .action(async (target: string, o: { top: string; format: string }, cmd: Command) => {
      const top = Number(o.top);
      if (!Number.isInteger(top) || top < 0 || top > 10_000) throw new UsageError(`--top must be 0..10000, got ${o.top}`);
      if (o.format !== "table" && o.format !== "json") throw new UsageError(`--format must be table or json, got ${o.format}`);
      const run = async (s: Services | undefined) => {
        const reports: Array<{ label: string; report: InspectReport }> = [];
        for (const src of await sources(s, target)) reports.push({ label: src.label, report: await inspectRdbStream(await src.open(), { top }) });
        if (o.format === "json") process.stdout.write(`${JSON.stringify(reports.length === 1 ? reports[0]!.report : reports, jsonSafe, 2)}\n`);
        else for (const r of reports) process.stdout.write(`${reports.length > 1 ? `== ${r.label} ==\n` : ""}${formatInspectReport(r.report)}\n`);
      };
      if (fs.existsSync(target) && fs.statSync(target).isFile()) return run(undefined);
      return withServices(cmd, run);
    });

  withSettings(program.command("export <backupOrFile>").description("a backup's data as the RDB itself, JSON lines (one key per line) or a RESP command stream for redis-cli --pipe")
    .option("--format <format>", "rdb, json or resp", "rdb")
    .option("--out <path>", "where to write (a file; for rdb of a multi-shard backup a directory); default standard output")
    .option("--target-version <version>", "resp: the Redis version the commands are for (default 7.2)")
    .option("--drop-field-ttls", "resp: hash field TTLs the target version cannot hold are dropped (counted on standard error) instead of refusing those keys")
    .option("--drop-stream-idmp", "resp: Redis 8.6 XADD IDMP state the target version cannot hold is dropped (counted) instead of refusing those streams"), "all")
    .action(async (target: string, o: { format: string; out?: string; targetVersion?: string; dropFieldTtls?: boolean; dropStreamIdmp?: boolean }, cmd: Command) => {
      if (!["rdb", "json", "resp"].includes(o.format)) throw new UsageError(`--format must be rdb, json or resp, got ${o.format}`);
      const run = async (s: Services | undefined) => {
        const srcs = await sources(s, target);
        if (o.format === "rdb" && srcs.length > 1) {
          if (!o.out) throw new UsageError("a backup of several shards exports one RDB per shard: give --out DIR");
          fs.mkdirSync(o.out, { recursive: true });
          for (const [i, src] of srcs.entries()) {
            const file = path.join(o.out, `shard-${i}.rdb`);
            await pipeline(await src.open(), fs.createWriteStream(file, { mode: 0o600 }));
            process.stderr.write(`wrote ${file}\n`);
          }
          return;
        }
        const out: Writable = o.out ? fs.createWriteStream(o.out, { mode: 0o600 }) : process.stdout;
        for (const src of srcs) {
          const input = await src.open();
          if (o.format === "rdb") await pipeline(input, out, { end: false });
          else if (o.format === "json") await exportJsonLines(input, out);
          else {
            const summary = await exportResp(input, out, { targetVersion: o.targetVersion, dropFieldTtls: o.dropFieldTtls, dropStreamIdmp: o.dropStreamIdmp });
            const dropped = describeDrops(summary);
            if (dropped) process.stderr.write(`${src.label}: ${dropped}\n`);
            if (summary.failed) process.stderr.write(`${src.label}: ${summary.failed} key(s) cannot be written as commands for that version: ${summary.failures.slice(0, 3).map((f) => `${f.key}: ${f.error}`).join("; ")}\n`);
          }
        }
        if (out !== process.stdout) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      };
      if (fs.existsSync(target) && fs.statSync(target).isFile()) return run(undefined);
      return withServices(cmd, run);
    });
}

/** JSON.stringify replacer for the report's bigints and buffers. */
function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value && typeof value === "object" && (value as { type?: string }).type === "Buffer" && Array.isArray((value as { data?: unknown }).data)) {
    return Buffer.from((value as { data: number[] }).data).toString("utf8");
  }
  return value;
}
