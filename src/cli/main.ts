#!/usr/bin/env node
// The crs-backup command.
import { parseArgs } from "node:util";
import { DEFAULTS, filesDir, openCatalog, ServeConfig, startServer } from "../app";
import { maskRedisUrl, registerInstance } from "../jobs/instances";
import { RestoreService } from "../jobs/restores";
import { BackupService } from "../jobs/backups";
import { LocalBlobStore } from "../storage/local";
import { DEFAULT_ACCOUNT, loadSeedFile } from "../catalog/seed";
import { systemClock } from "../services";
import { RegionRules } from "../gateway/regions";
import { LocalTime } from "../protocol/time";

const USAGE = `crs-backup — a Tencent Cloud Redis (CRS 2018-04-12) compatible backup service

Usage:
  crs-backup serve [--host 127.0.0.1] [--port 9000] [--data ./data] [--seed FILE] [--tz Asia/Shanghai]
                   [--rate-limit N | --rate-limit Action=N ...] [--regions r1,r2,...] [--domain tencentcloudapi.com]
                   [--advertise-host 127.0.0.1] [--audit-days 90]
  crs-backup seed FILE [--data ./data] [--tz Asia/Shanghai] [--regions ...]
  crs-backup instance add --redis redis://[user:password@]host:port [--id crs-xxxxxxxx] [--name NAME]
                          [--region ap-guangzhou] [--account 1300000000] [--no-check] [--data ./data]
  crs-backup instance list [--data ./data]
  crs-backup instance remove ID [--data ./data]
  crs-backup backup ID [--remark TEXT] [--storage-days N] [--data ./data]
  crs-backup backup delete BACKUP_ID [--data ./data]
  crs-backup restore BACKUP_ID --instance ID [--advertise-host 127.0.0.1] [--data ./data]

Environment: CRS_SECRET_ID / CRS_SECRET_KEY set the default account's key; CRS_REDIS_PASSWORD supplies the
password for "instance add" instead of the URL (keeps it out of the process list).`;

export class UsageError extends Error {}

export function parseRateLimits(values: string[] | undefined): { rateLimit: number; rateLimits: Map<string, number> } {
  let rateLimit = DEFAULTS.rateLimit;
  const rateLimits = new Map<string, number>();
  for (const v of values ?? []) {
    const m = /^(?:([A-Za-z]+)=)?(\d+)$/.exec(v);
    if (!m) throw new UsageError(`--rate-limit takes N or Action=N (requests per second; 0 turns it off), got ${JSON.stringify(v)}`);
    if (m[1]) rateLimits.set(m[1], Number(m[2]));
    else rateLimit = Number(m[2]);
  }
  return { rateLimit, rateLimits };
}

const commonOptions = {
  data: { type: "string" },
  tz: { type: "string" },
  regions: { type: "string" },
  domain: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function regionsOf(v: string | undefined): string[] {
  if (v === undefined) return DEFAULTS.regions;
  const list = v.split(",").map((s) => s.trim()).filter(Boolean);
  if (!list.length) throw new UsageError("--regions needs at least one region");
  return list;
}

function timeOf(tz: string | undefined): LocalTime {
  try {
    return new LocalTime(tz ?? DEFAULTS.tz);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...commonOptions, host: { type: "string" }, port: { type: "string" }, seed: { type: "string" }, "rate-limit": { type: "string", multiple: true },
      "advertise-host": { type: "string" }, "audit-days": { type: "string" },
    },
  });
  if (values.help) return void console.log(USAGE);
  const port = values.port === undefined ? DEFAULTS.port : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, got ${values.port}`);
  const tz = timeOf(values.tz).timeZone;
  const cfg: ServeConfig = {
    host: values.host ?? DEFAULTS.host,
    port,
    dataDir: values.data ?? DEFAULTS.dataDir,
    seed: values.seed,
    tz,
    ...parseRateLimits(values["rate-limit"]),
    regions: regionsOf(values.regions),
    domain: values.domain ?? DEFAULTS.domain,
    advertiseHost: values["advertise-host"] ?? DEFAULTS.advertiseHost,
    auditDays: values["audit-days"] === undefined ? DEFAULTS.auditDays : Number(values["audit-days"]),
  };
  if (!Number.isInteger(cfg.auditDays) || cfg.auditDays! < 0) throw new UsageError(`--audit-days must be a whole number of days, got ${values["audit-days"]}`);
  const running = await startServer(cfg);
  console.log(`crs-backup listening on ${running.url} (data ${cfg.dataDir}, time zone ${cfg.tz}, rate limit ${cfg.rateLimit || "off"}/s)`);
  const stop = (signal: string) => {
    console.log(`crs-backup: ${signal} received, shutting down`);
    running.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}

function seed(argv: string[]): void {
  const { values, positionals } = parseArgs({ args: argv, options: commonOptions, allowPositionals: true });
  if (values.help) return void console.log(USAGE);
  if (positionals.length !== 1) throw new UsageError("crs-backup seed takes one FILE");
  const time = timeOf(values.tz);
  const regions = new RegionRules(regionsOf(values.regions), values.domain ?? DEFAULTS.domain);
  const catalog = openCatalog(values.data ?? DEFAULTS.dataDir);
  try {
    const data = loadSeedFile(catalog, positionals[0]!, time, (r) => regions.has(r));
    console.log(`loaded ${data.credentials.length} credential(s), ${data.instances.length} instance(s), ${data.backups.length} backup(s)`);
  } finally {
    catalog.close();
  }
}

function withPassword(url: string, password: string | undefined): string {
  if (!password) return url;
  const u = new URL(url);
  u.password = encodeURIComponent(password);
  return u.toString().replace(/\/$/, "");
}

async function instance(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true,
    options: { ...commonOptions, redis: { type: "string" }, id: { type: "string" }, name: { type: "string" }, region: { type: "string" }, account: { type: "string" }, "no-check": { type: "boolean" } },
  });
  if (values.help) return void console.log(USAGE);
  const regions = new RegionRules(regionsOf(values.regions), values.domain ?? DEFAULTS.domain);
  const dataDir = values.data ?? DEFAULTS.dataDir;
  const catalog = openCatalog(dataDir);
  try {
    switch (sub) {
      case "add": {
        if (!values.redis) throw new UsageError("instance add needs --redis redis://[user:password@]host:port");
        const region = values.region ?? "ap-guangzhou";
        if (!regions.has(region)) throw new UsageError(`--region ${region} is not a region of this server`);
        const added = await registerInstance(catalog, {
          instanceId: values.id, name: values.name, region, accountId: values.account ?? DEFAULT_ACCOUNT,
          redisUrl: withPassword(values.redis, process.env.CRS_REDIS_PASSWORD), noCheck: values["no-check"], now: Date.now(),
        });
        console.log(`registered ${added.instanceId} (${added.name}, ${added.region}, account ${added.accountId}) -> ${maskRedisUrl(added.redisUrl!)}` +
          (added.redisVersion ? `, Redis ${added.redisVersion}, ${added.shardNum} shard(s)` : ""));
        return;
      }
      case "list": {
        const rows = catalog.instances().filter((i) => i.deletedAt === undefined);
        console.log(["INSTANCE", "NAME", "REGION", "ACCOUNT", "TYPE", "SHARDS", "REDIS"].join("\t"));
        for (const i of rows) console.log([i.instanceId, i.name, i.region, i.accountId, i.instanceType, i.shardNum, i.redisUrl ? maskRedisUrl(i.redisUrl) : "-"].join("\t"));
        return;
      }
      case "remove": {
        if (positionals.length !== 1) throw new UsageError("instance remove takes one instance id");
        const found = catalog.instance(positionals[0]!);
        if (!found || found.deletedAt !== undefined) throw new Error(`no instance ${positionals[0]}`);
        const service = new BackupService({ catalog, store: new LocalBlobStore(filesDir(dataDir)), clock: systemClock });
        const removed = await service.removeInstance(found);
        console.log(`removed ${found.instanceId}; ${removed} backup(s) deleted (kept as Status -2 records)`);
        return;
      }
      default:
        throw new UsageError("instance takes add, list or remove");
    }
  } finally {
    catalog.close();
  }
}

function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function progressLine(started: number): (done: number, total: number | undefined, label: string, final?: boolean) => void {
  const tty = process.stderr.isTTY;
  let last = 0;
  return (done, total, label, final = false) => {
    const now = Date.now();
    if (!final && now - last < 200) return;
    last = now;
    const secs = (now - started) / 1000;
    const width = 24;
    let bar: string;
    if (total) bar = "=".repeat(Math.round((Math.min(done, total) / total) * width)).padEnd(width, " ");
    else if (final) bar = "=".repeat(width);
    else {
      const pos = Math.floor(secs * 4) % width;
      bar = (" ".repeat(pos) + "<=>").slice(0, width).padEnd(width, " ");
    }
    const line = `[${bar}] ${formatBytes(done)}${total ? ` of ${formatBytes(total)}` : ""}  ${formatBytes(done / Math.max(secs, 0.001))}/s  ${secs.toFixed(1)}s  ${label}`;
    process.stderr.write(tty ? `\r${line}\x1b[K${final ? "\n" : ""}` : `${line}\n`);
  };
}

async function backupDelete(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: commonOptions });
  if (positionals.length !== 1) throw new UsageError("backup delete takes one backup id");
  const dataDir = values.data ?? DEFAULTS.dataDir;
  const catalog = openCatalog(dataDir);
  try {
    const b = catalog.backup(positionals[0]!);
    if (!b) throw new Error(`no backup ${positionals[0]}`);
    if (b.status === -2) throw new Error(`backup ${b.backupId} is already deleted`);
    const owner = catalog.instance(b.instanceId);
    const service = new BackupService({ catalog, store: new LocalBlobStore(filesDir(dataDir)), clock: systemClock });
    await service.retire(b, -2, owner?.accountId ?? DEFAULT_ACCOUNT);
    console.log(`deleted ${b.backupId} (its files are removed; the record stays as Status -2)`);
    return 0;
  } finally {
    catalog.close();
  }
}

async function restore(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...commonOptions, instance: { type: "string" }, "advertise-host": { type: "string" } } });
  if (positionals.length !== 1 || !values.instance) throw new UsageError("restore takes one backup id and --instance ID");
  const dataDir = values.data ?? DEFAULTS.dataDir;
  const catalog = openCatalog(dataDir);
  try {
    const b = catalog.backup(positionals[0]!);
    if (!b) throw new Error(`no backup ${positionals[0]}`);
    const target = catalog.instance(values.instance);
    if (!target || target.deletedAt !== undefined) throw new Error(`no instance ${values.instance}`);
    const service = new RestoreService({ catalog, store: new LocalBlobStore(filesDir(dataDir)), clock: systemClock, advertiseHost: values["advertise-host"] ?? DEFAULTS.advertiseHost });
    const draw = progressLine(Date.now());
    const job = service.start(b, target, (sent, total) => draw(sent, total, `into ${target.instanceId}`));
    const outcome = await job.done;
    if (!outcome.ok) throw new Error(`restore failed: ${outcome.message}`);
    draw(b.backupSize, b.backupSize, `into ${target.instanceId}`, true);
    console.log(`restored ${b.backupId} into ${target.instanceId}: ${outcome.keys} keys`);
    return 0;
  } finally {
    catalog.close();
  }
}

async function backup(argv: string[]): Promise<number> {
  if (argv[0] === "delete") return backupDelete(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { ...commonOptions, remark: { type: "string" }, "storage-days": { type: "string" } },
  });
  if (values.help) return void console.log(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError("backup takes one instance id");
  const days = values["storage-days"] === undefined ? 0 : Number(values["storage-days"]);
  if (!Number.isInteger(days) || days < 0 || days > 1825) throw new UsageError("--storage-days must be 0..1825");
  const dataDir = values.data ?? DEFAULTS.dataDir;
  const catalog = openCatalog(dataDir);
  try {
    const inst = catalog.instance(positionals[0]!);
    if (!inst || inst.deletedAt !== undefined) throw new Error(`no instance ${positionals[0]}`);
    const service = new BackupService({ catalog, store: new LocalBlobStore(filesDir(dataDir)), clock: systemClock });
    const draw = progressLine(Date.now());
    let shards = 1;
    const job = service.start(inst, { remark: values.remark, storageDays: days, onProgress: (p) => { shards = p.shards; draw(p.bytes, undefined, `shard ${p.shard + 1}/${p.shards}`); } });
    const outcome = await job.done;
    if (!outcome.ok) {
      if (process.stderr.isTTY) process.stderr.write("\n");
      throw new Error(`backup failed: ${outcome.message}`);
    }
    draw(outcome.backup.backupSize, undefined, `shard ${shards}/${shards}`, true);
    console.log(outcome.backup.backupId);
    return 0;
  } finally {
    catalog.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "serve":
        await serve(rest);
        return -1; // keeps running
      case "seed":
        seed(rest);
        return 0;
      case "instance":
        await instance(rest);
        return 0;
      case "backup":
        return await backup(rest);
      case "restore":
        return await restore(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e instanceof UsageError || e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" || e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      console.error(`crs-backup: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    console.error(`crs-backup: ${e.message}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    if (code >= 0) process.exitCode = code;
  });
}
