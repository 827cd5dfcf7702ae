#!/usr/bin/env node
// The crs-backup command (commander). Every command takes the shared settings (flags, CRS_* environment
// variables or a --config file; see settings.ts) and builds what it needs through createServices, so a command
// works the same on the embedded SQLite catalogue and local files as on PostgreSQL and S3.
//
// Exit codes: 0 success; 1 the operation failed (a refused backup, an unreachable Redis, a failed check);
// 2 the command line or configuration is wrong (unknown option, bad value, bad config file).
import { Command, CommanderError } from "commander";
import fs from "node:fs";
import path from "node:path";
import { StorageConfigError } from "../storage/url";
import { KeyringError } from "../storage/keys/keyring";
import { registerBackupCommands } from "./backups";
import { registerAdminCommands } from "./admin";
import { registerRdbCommands } from "./rdb";
import { registerPitrCommands } from "./pitr";
import { registerEncryptionCommands } from "./encryption";
import { serveCommand } from "./serve";
import { UsageError } from "./settings";

const VERSION = (JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "..", "package.json"), "utf8")) as { version: string }).version;

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
  registerPitrCommands(program);
  registerEncryptionCommands(program);
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
    // A keyring that is not owner-only, or does not read, is a configuration error too.
    if (err instanceof UsageError || err instanceof StorageConfigError || err instanceof KeyringError) {
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
