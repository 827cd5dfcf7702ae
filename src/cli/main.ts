#!/usr/bin/env node
// The crs-backup command (commander). Every command takes the shared settings (flags, CRS_* environment
// variables or a --config file; see settings.ts) and builds what it needs through createServices, so a command
// works the same on the embedded SQLite catalogue and local files as on PostgreSQL and S3.
//
// Exit codes: 0 success; 1 the operation failed (a refused backup, an unreachable Redis, a failed check);
// 2 the command line or configuration is wrong (unknown option, bad value, bad config file).
import { Command, CommanderError, Option } from "commander";
import fs from "node:fs";
import path from "node:path";
import { catalogUrl, Config } from "../config";
import { sqlitePath } from "../catalog/open";
import { createServices, Services } from "../services";
import { createLogger, silentLogger } from "../log";
import { StorageConfigError } from "../storage/url";
import { registerBackupCommands } from "./backups";
import { registerAdminCommands } from "./admin";
import { registerRdbCommands } from "./rdb";
import { serveCommand } from "./serve";
import { attributeOf, resolveConfig, SETTINGS, UsageError } from "./settings";

const VERSION = (JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "..", "package.json"), "utf8")) as { version: string }).version;

export { UsageError };

/** Adds the shared settings (or every setting, for serve) to a command. */
export function withSettings(cmd: Command, scope: "serve" | "all"): Command {
  cmd.option("--config <file>", "settings from a JSON or YAML file (flags > CRS_* environment > file > defaults)");
  for (const s of SETTINGS) {
    if (scope === "all" && s.scope === "serve") continue;
    const opt = new Option(s.flag, `${s.help} [${s.env}]`);
    if (s.kind === "ratelimit") opt.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    cmd.addOption(opt);
  }
  return cmd;
}

/** The Config of a command from its options (flags), the environment and the config file. */
export function configOf(cmd: Command, scope: "serve" | "all"): Config {
  const opts = cmd.optsWithGlobals() as Record<string, unknown>;
  const flags: Record<string, unknown> = { config: opts.config };
  for (const s of SETTINGS) {
    const v = opts[attributeOf(s)];
    if (v !== undefined) flags[attributeOf(s)] = v;
  }
  return resolveConfig(flags, process.env, scope);
}

/** Runs `fn` with the services of a one-off command (quiet logs unless --log-level says otherwise). */
export async function withServices<T>(cmd: Command, fn: (s: Services) => Promise<T>): Promise<T> {
  const config = configOf(cmd, "all");
  const explicit = (cmd.optsWithGlobals() as Record<string, unknown>).logLevel ?? process.env.CRS_LOG_LEVEL;
  config.logger = explicit ? createLogger({ level: config.logLevel, destination: process.stderr }) : silentLogger;
  const file = sqlitePath(catalogUrl(config));
  const existed = file === undefined || file === ":memory:" || fs.existsSync(file);
  const services = await createServices(config, { role: "cli" });
  if (!existed) process.stderr.write(`crs-backup: created a new, empty catalogue at ${path.resolve(file!)} (data directory ${path.resolve(config.dataDir)})\n`);
  try {
    return await fn(services);
  } finally {
    await services.close();
  }
}

export function buildProgram(): Command {
  const program = new Command("crs-backup")
    .description("A Tencent Cloud Redis (CRS 2018-04-12) compatible backup service")
    .version(VERSION, "-V, --version", "print the version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.addHelpText("after", `
Environment: CRS_SECRET_ID / CRS_SECRET_KEY set the default account's key; CRS_REDIS_PASSWORD supplies the
password for "instance add" instead of the URL; every setting also has a CRS_* variable (see each command's --help).
Exit codes: 0 success, 1 the operation failed, 2 bad command line or configuration.`);
  serveCommand(program);
  registerAdminCommands(program);
  registerBackupCommands(program);
  registerRdbCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return 2;
    }
    await program.parseAsync(argv, { from: "user" });
    // A command that ran but found a problem (storage check) sets process.exitCode itself.
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with code 0.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UsageError || err instanceof StorageConfigError) {
      process.stderr.write(`crs-backup: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`crs-backup: ${(err as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    if (code >= 0) process.exitCode = code;
  });
}
