// Backups from the command line: take one now (run in this process, with a progress bar), list, delete, restore,
// download (export and write the RDB files here).
import type { Command } from "commander";
import fs from "node:fs";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { downloadFileName } from "../downloads/links";
import { backupKeyOf, exportKey } from "../jobs/backups";
import { TASK } from "../jobs/tasks";
import { verifiedRead } from "../storage/integrity";
import type { Services } from "../services";
import { BACKUP_STATUSES } from "../catalog/types";
import { InstanceBusyError } from "../jobs/errors";
import { withServices, withSettings } from "./context";
import { formatBytes, printRows, progressBar, formatOf } from "./output";
import { UsageError } from "./settings";
import type { Backup } from "../catalog/types";
import type { ValueKind } from "../redis/rdb/constants";
import { describeVerification } from "../redis/restore/verify";
import type { RestoreReport } from "../jobs/restores";
import { RESTORE_MODES, RestoreMode, RestoreRequest, RestoreRequestError, VALUE_KINDS } from "../redis/restore/request";
import { PointInTimeError, restoreAt } from "../jobs/point-in-time";

export function registerBackupCommands(program: Command): void {
  const backup = program.command("backup").description("take, list and delete backups");

  withSettings(backup.command("take <instance>", { isDefault: true }).description("back up an instance now, in this process (the default: `crs-backup backup ID`); prints the BackupId")
    .option("--remark <text>", "the backup's remark")
    .option("--storage-days <n>", "retention in days (0 = the instance's)", "0"), "all")
    .action(async (instanceId: string, o: { remark?: string; storageDays: string }, cmd: Command) => withServices(cmd, async (s) => {
      const days = Number(o.storageDays);
      if (!Number.isInteger(days) || days < 0 || days > 1825) throw new UsageError("--storage-days must be 0..1825");
      const inst = await s.catalog.instance(instanceId);
      if (!inst || inst.deletedAt !== undefined) throw new Error(`no instance ${instanceId}`);
      if (!inst.redisUrl) throw new Error(`${instanceId} has no Redis server registered (a catalogue-only instance), so it cannot be backed up`);
      let queued;
      try {
        queued = await s.backups.enqueue(inst, { remark: o.remark, storageDays: days });
      } catch (err) {
        if (err instanceof InstanceBusyError) throw new Error(`${err.message} (a server or another command is taking it)`);
        throw err;
      }
      const bar = progressBar();
      let last = { done: 0, label: "" };
      const outcome = await s.runner.runHere(queued!.taskId, {
        onProgress: (done, total, label) => {
          last = { done, label };
          bar.update(done, total, label);
        },
      });
      bar.stop(outcome.ok ? last : undefined);
      if (!outcome.ok) throw new Error(`backup failed: ${outcome.message}`);
      // A one-off command has nothing else to do: it waits for the digest computed from the stored file.
      await s.digests?.settled(queued!.backupId);
      const b = (outcome.result as Backup | undefined) ?? (await s.catalog.backup(queued!.backupId));
      if (b) process.stderr.write(`backup ${b.backupId} of ${instanceId}: ${formatBytes(b.backupSize)} in ${b.files.length} shard(s)\n`);
      console.log(queued!.backupId);
    }));

  withSettings(backup.command("delete <backupId>").description("delete a backup: its files are removed, the record stays as Status -2"), "all")
    .action(async (backupId: string, _o: unknown, cmd: Command) => withServices(cmd, async (s) => {
      const b = await s.catalog.backup(backupId);
      if (!b) throw new Error(`no backup ${backupId}`);
      if (b.status === -2) throw new Error(`backup ${b.backupId} is already deleted`);
      const owner = await s.catalog.instance(b.instanceId);
      await s.backups.retire(b, -2, owner?.accountId ?? "");
      console.log(`deleted ${b.backupId} (its files are removed; the record stays as Status -2)`);
    }));

  withSettings(backup.command("list <instance>").description("an instance's backups, newest first")
    .option("--status <list>", "only these statuses (comma-separated: 1,2,3,4,-1,-2)")
    .option("--limit <n>", "at most this many", "20")
    .option("--output <format>", "table or json", "table"), "all")
    .action(async (instanceId: string, o: { status?: string; limit: string; output: string }, cmd: Command) => withServices(cmd, async (s) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit must be 1..1000, got ${o.limit}`);
      const statuses = o.status?.split(",").map((x) => Number(x.trim()));
      if (statuses?.some((x) => !(BACKUP_STATUSES as readonly number[]).includes(x))) throw new UsageError(`--status takes 1, 2, 3, 4, -1, -2, got ${o.status}`);
      const inst = await s.catalog.instance(instanceId);
      if (!inst) throw new Error(`no instance ${instanceId}`);
      const { total, rows } = await s.catalog.listBackups({ instanceId, limit, offset: 0, statuses });
      const format = formatOf(o.output);
      printRows(rows.map((b) => ({
        backupId: b.backupId, start: s.time.format(b.startTime), end: b.endTime !== undefined ? s.time.format(b.endTime) : "", type: b.backupType === "1" ? "auto" : "manual",
        status: b.status, locked: b.locked, size: format === "json" ? b.backupSize : formatBytes(b.backupSize), shards: b.files.length, fileType: b.fileType,
        expire: b.expireTime !== undefined ? s.time.format(b.expireTime) : "", remark: b.remark,
      })), format, ["backupId", "start", "end", "type", "status", "locked", "size", "shards", "fileType", "expire", "remark"]);
      if (format === "table" && total > rows.length) console.log(`(${rows.length} of ${total}; --limit for more)`);
    }));

  withSettings(backup.command("download <backupId>").description("export a backup (if it is not yet) and write its RDB files, one per shard, checked against their SHA-256")
    .requiredOption("--out <dir>", "directory to write the files into (created if missing)"), "all")
    .action(async (backupId: string, o: { out: string }, cmd: Command) => withServices(cmd, async (s) => {
      const b = await s.catalog.backup(backupId);
      if (!b) throw new Error(`no backup ${backupId}`);
      const exported = await exportHere(s, backupId);
      fs.mkdirSync(o.out, { recursive: true });
      const files = [...exported.files].sort((x, y) => x.shard - y.shard);
      const total = files.reduce((n, f) => n + f.bytes, 0);
      const bar = progressBar();
      let done = 0;
      for (const f of files) {
        const file = path.join(o.out, downloadFileName(exported, f.shard));
        const partial = `${file}.partial`;
        const counter = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            done += chunk.length;
            bar.update(done, total, `shard ${f.shard + 1}/${files.length}`);
            cb(null, chunk);
          },
        });
        try {
          // Size and SHA-256 are checked on the way: the file gets its name only when both match the record.
          await pipeline(await verifiedRead(s.store, { key: exportKey(exported.backupId, f.shard), bytes: f.bytes, sha256: f.sha256, encryption: backupKeyOf(exported) }), counter, fs.createWriteStream(partial, { mode: 0o600 }));
          fs.renameSync(partial, file);
        } catch (err) {
          fs.rmSync(partial, { force: true });
          bar.stop();
          throw err;
        }
        console.log(file);
      }
      bar.stop({ done, label: `${files.length} file(s), sha256 verified` });
    }));

  withSettings(program.command("restore [backupId]").description("load a backup into a registered instance: by replication when the target loads the file as it is (its data set is replaced), else by commands (keys merged into it); prints a summary. With --at instead of a backup: the instance's state at that second, from its second-level backup (base + stream)")
    .requiredOption("--instance <id>", "the instance to restore into")
    .option("--at <time>", "restore to the end of this second (\"YYYY-MM-DD HH:mm:ss\" in --tz) from the second-level backup of --from, or of --instance itself")
    .option("--from <id>", "with --at: the instance whose stream to read (default: --instance)")
    .option("--mode <mode>", "auto (replication when possible, else commands), replication, or commands", "auto")
    .option("--db <n>", "only keys of this database (repeatable, or a comma list)", collect, [])
    .option("--match <pattern>", "only keys matching this glob (Redis MATCH syntax)")
    .option("--type <type>", `only keys of this type (repeatable, or a comma list: ${VALUE_KINDS.join(", ")})`, collect, [])
    .option("--replace", "replace existing keys (the default)")
    .option("--no-replace", "keep existing keys and count them as skipped (commands)")
    .option("--drop-field-ttls", "restore hashes whose field TTLs (Redis 7.4+ HEXPIRE/HSETEX) the target cannot hold without those TTLs, and report how many were dropped (default: such keys are refused)")
    .option("--drop-stream-idmp", "restore Redis 8.6 streams whose XADD IDMP state the target cannot hold without it, and report how many (default: such streams are refused)"), "all")
    .action(async (backupId: string | undefined, o: RestoreFlags, cmd: Command) => withServices(cmd, async (s) => {
      if (o.at !== undefined) {
        if (backupId !== undefined) throw new UsageError("give either a backup id or --at, not both");
        return restoreAtHere(s, o);
      }
      if (backupId === undefined) throw new UsageError("missing the backup id (or --at \"YYYY-MM-DD HH:mm:ss\")");
      const request = restoreRequestFromFlags(o);
      const b = await s.catalog.backup(backupId);
      if (!b) throw new Error(`no backup ${backupId}`);
      const target = await s.catalog.instance(o.instance);
      if (!target || target.deletedAt !== undefined) throw new Error(`no instance ${o.instance}`);
      let taskId: number;
      try {
        ({ taskId } = await s.restores.enqueue(b, target, request));
      } catch (err) {
        if (err instanceof RestoreRequestError) throw new UsageError(err.message);
        throw err;
      }
      const bar = progressBar();
      const total = b.files.reduce((n, f) => n + f.bytes, 0);
      const outcome = await s.runner.runHere(taskId, { onProgress: (done, t, label) => bar.update(done, t, label) });
      bar.stop(outcome.ok ? { done: total, label: `into ${target.instanceId}` } : undefined);
      if (!outcome.ok) throw new Error(`restore failed: ${outcome.message}`);
      const r = outcome.result as RestoreReport | undefined;
      if (!r) {
        console.log(`restored ${b.backupId} into ${target.instanceId}: ${outcome.task.message}`);
        return;
      }
      const what = r.path === "replication" ? `${r.keys} keys loaded` : `${r.keys} keys written, ${r.skipped} skipped, ${r.failed} failed`;
      console.log(`restored ${b.backupId} into ${target.instanceId}: ${what} (${r.path})`);
      const rows: Array<[string, string]> = [
        ["path", `${r.path} (${r.reason})`],
        ["written", String(r.keys)],
        ["skipped", String(r.skipped)],
        ["failed", String(r.failed)],
      ];
      if (r.filtered) rows.push(["not selected", String(r.filtered)]);
      if (r.expired) rows.push(["expired", String(r.expired)]);
      if (r.dropped) rows.push(["dropped", r.dropped]);
      rows.push(["bytes", formatBytes(r.bytes)], ["time", `${(r.ms / 1000).toFixed(2)} s`], ["verification", describeVerification(r.verification)]);
      for (const [k, v] of rows) console.log(`  ${k.padEnd(13)}${v}`);
    }));
}

/**
 * The backup exported (Status 4), exporting it now if needed. A command's runner takes no queued task, so the
 * export task is run here — unless a server sharing the catalogue claims it first, which is waited for.
 */
async function exportHere(s: Services, backupId: string): Promise<Backup> {
  let settled = false;
  const exported = s.exports.ensureExported(backupId).finally(() => (settled = true));
  const instanceId = (await s.catalog.backup(backupId))?.instanceId ?? "";
  const run = (async () => {
    while (!settled) {
      const task = (await s.catalog.activeTasks(instanceId, [TASK.exportBackup])).find((t) => t.backupId === backupId);
      if (task) {
        if (task.status === "preparing") await s.runner.runHere(task.taskId);
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const b = await exported;
  await run;
  return b;
}

/** `restore --at`: the base through the restore task (run here), then the stream's units up to the cut. */
async function restoreAtHere(s: Services, o: RestoreFlags): Promise<void> {
  const atMs = s.time.parse(o.at!);
  if (atMs === undefined) throw new UsageError(`--at takes "YYYY-MM-DD HH:mm:ss" (time zone ${s.config.tz}), got ${JSON.stringify(o.at)}`);
  const target = await s.catalog.instance(o.instance);
  if (!target || target.deletedAt !== undefined) throw new Error(`no instance ${o.instance}`);
  const source = o.from === undefined ? target : await s.catalog.instance(o.from);
  if (!source || source.deletedAt !== undefined) throw new Error(`no instance ${o.from}`);
  let result;
  try {
    result = await restoreAt(s.catalog, s.store, source, target, Math.floor(atMs / 1000), s.clock.now(), {
      loadBase: async (backup, into, opts) => {
        const { taskId } = await s.restores.enqueue(backup, into, { mode: opts?.merge ? "commands" : "auto", replace: true });
        const outcome = await s.runner.runHere(taskId);
        if (!outcome.ok) throw new Error(`loading the base ${backup.backupId} failed: ${outcome.message}`);
      },
    });
  } catch (err) {
    if (err instanceof PointInTimeError) throw new Error(`cannot restore to ${o.at}: ${err.message}`);
    throw err;
  }
  if (result.shards) {
    console.log(`restored ${target.instanceId} to ${o.at} (${s.config.tz}) from ${result.shards.length} shards: ${result.units} unit(s), ${result.commands} command(s) of the streams`);
    for (const x of result.shards) console.log(`  shard ${x.shard}: base ${x.backupId} + ${x.units} unit(s) up to offset ${x.offset}`);
  } else {
    console.log(`restored ${target.instanceId} to ${o.at} (${s.config.tz}): base ${result.backupId} + ${result.units} unit(s), ${result.commands} command(s) of the stream up to offset ${result.offset}`);
  }
  if (result.errors) console.log(`  ${result.errors} command(s) answered with an error; the first: ${result.firstError}`);
}

interface RestoreFlags {
  at?: string;
  from?: string;
  instance: string;
  mode: string;
  db: string[];
  match?: string;
  type: string[];
  replace: boolean;
  dropFieldTtls?: boolean;
  dropStreamIdmp?: boolean;
}

/** Repeatable options that also take comma lists: --db 0 --db 2, or --db 0,2. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(",").map((x) => x.trim()).filter(Boolean)];
}

function restoreRequestFromFlags(o: RestoreFlags): RestoreRequest {
  if (!(RESTORE_MODES as readonly string[]).includes(o.mode)) throw new UsageError(`--mode must be one of ${RESTORE_MODES.join(", ")}, got ${JSON.stringify(o.mode)}`);
  const dbs = o.db.map((d) => {
    const n = Number(d);
    if (!/^\d+$/.test(d) || n > 65535) throw new UsageError(`--db takes database numbers (0..65535), got ${JSON.stringify(d)}`);
    return n;
  });
  const types = o.type.map((t) => t.toLowerCase());
  const bad = types.find((t) => !(VALUE_KINDS as readonly string[]).includes(t));
  if (bad !== undefined) throw new UsageError(`--type takes ${VALUE_KINDS.join(", ")}, got ${JSON.stringify(bad)}`);
  if (o.match !== undefined && o.match.length === 0) throw new UsageError("--match needs a pattern");
  return {
    mode: o.mode as RestoreMode,
    dbs: dbs.length ? dbs : undefined,
    match: o.match,
    types: types.length ? (types as ValueKind[]) : undefined,
    replace: o.replace !== false,
    ...(o.dropFieldTtls ? { dropFieldTtls: true } : {}),
    ...(o.dropStreamIdmp ? { dropStreamIdmp: true } : {}),
  };
}
