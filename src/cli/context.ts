// What every command shares: its settings (flags, CRS_* environment, a --config file) and the services it runs
// on. Commands import this, and main.ts imports the commands: nothing imports main.
import { Command, Option } from "commander";
import fs from "node:fs";
import path from "node:path";
import { catalogUrl, Config } from "../config";
import { sqlitePath } from "../catalog/open";
import { createServices, Services } from "../services";
import { createLogger, silentLogger } from "../log";
import { attributeOf, resolveConfig, SETTINGS } from "./settings";

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

