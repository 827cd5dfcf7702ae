#!/usr/bin/env node
// The crs-backup command.
import { parseArgs } from "node:util";
import { DEFAULTS, openCatalog, ServeConfig, startServer } from "../app";
import { loadSeedFile } from "../catalog/seed";
import { RegionRules } from "../gateway/regions";
import { LocalTime } from "../protocol/time";

const USAGE = `crs-backup — a Tencent Cloud Redis (CRS 2018-04-12) compatible backup service

Usage:
  crs-backup serve [--host 127.0.0.1] [--port 9000] [--data ./data] [--seed FILE] [--tz Asia/Shanghai]
                   [--rate-limit N | --rate-limit Action=N ...] [--regions r1,r2,...] [--domain tencentcloudapi.com]
  crs-backup seed FILE [--data ./data] [--tz Asia/Shanghai] [--regions ...]

Environment: CRS_SECRET_ID / CRS_SECRET_KEY set the default account's key.`;

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
    options: { ...commonOptions, host: { type: "string" }, port: { type: "string" }, seed: { type: "string" }, "rate-limit": { type: "string", multiple: true } },
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
  };
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
