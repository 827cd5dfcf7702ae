// `crs-backup serve`: the API server on its settings, until SIGTERM or SIGINT. With --workers N it starts N
// server processes (node:cluster) sharing the port; each is a node of its own, as it would be on another machine
// — which is why that needs a catalogue every process can share (PostgreSQL), not the embedded one.
import cluster from "node:cluster";
import type { Command } from "commander";
import fs from "node:fs";
import path from "node:path";
import { startServer } from "../app";
import { catalogUrl, Config } from "../config";
import { sqlitePath } from "../catalog/open";
import { createLogger, Logger } from "../log";
import { configOf, withSettings } from "./context";
import { UsageError } from "./settings";

/** A listen failure in words an operator acts on (the raw one reads `listen EADDRINUSE: address already in use`). */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  if (err?.syscall !== "listen") return err;
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  if (err.code === "EADDRINUSE") return new Error(`cannot listen on ${where}: the port is already in use (another server?); stop it, or choose another port with --port N (CRS_PORT)`);
  if (err.code === "EACCES") return new Error(`cannot listen on ${where}: permission denied (ports below 1024 need privileges); choose another port with --port N (CRS_PORT)`);
  if (err.code === "EADDRNOTAVAIL") return new Error(`cannot listen on ${where}: no interface has that address; choose another with --host (CRS_HOST)`);
  return err;
}

export function serveCommand(program: Command): void {
  const cmd = program.command("serve").description("run the API server (and this node's share of backups, restores and exports)");
  withSettings(cmd, "serve").action(async (_opts: unknown, self: Command) => {
    const config = configOf(self, "serve");
    const logger = createLogger({ level: config.logLevel });
    if (config.workers > 1 && cluster.isPrimary) return superviseWorkers(config, logger);
    config.logger = cluster.isWorker ? logger.child({ worker: cluster.worker?.id }) : logger;
    await runServer(config, config.logger);
  });
}

async function runServer(config: Config, logger: Logger): Promise<void> {
  const file = sqlitePath(catalogUrl(config));
  const existed = file === undefined || file === ":memory:" || fs.existsSync(file);
  // The generated key (first start) goes to stdout as plain lines, where an operator reads it.
  const running = await startServer(config, process.env, { announce: (line) => process.stdout.write(`${line}\n`) }).catch((err: NodeJS.ErrnoException) => {
    throw listenError(err, config.host, config.port);
  });
  if (!existed) logger.warn({ catalogue: path.resolve(file!), dataDir: path.resolve(config.dataDir) }, "created a new, empty catalogue");
  const stop = (signal: string) => {
    logger.info({ signal }, "shutting down");
    running.close().then(() => process.exit(0), () => process.exit(1));
  };
  // Before the "listening" line: whoever waits for it may signal at once, and a signal with no listener yet
  // would kill the process without the clean shutdown.
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  const s = running.services;
  logger.info({ url: running.url, node: s.nodeId, catalogue: s.catalog.describe(), storage: s.store.describe(), tz: config.tz, rateLimit: config.rateLimit || "off" },
    `crs-backup listening on ${running.url}`);
}

/** The primary of --workers N: forks the workers, restarts one that dies, and stops them all on a signal. */
function superviseWorkers(config: Config, logger: Logger): void {
  if (sqlitePath(catalogUrl(config)) !== undefined) {
    throw new UsageError("--workers needs a catalogue every worker can share: --catalog postgres://… (the embedded SQLite catalogue serves one process)");
  }
  let stopping = false;
  const fork = () => cluster.fork();
  for (let i = 0; i < config.workers; i++) fork();
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    // A worker that dies is replaced; the tasks it held are recovered by the others when their leases lapse.
    logger.error({ worker: worker.id, code, signal }, "a worker stopped; starting another");
    setTimeout(fork, 1000).unref();
  });
  const stop = (signal: NodeJS.Signals) => {
    stopping = true;
    logger.info({ signal, workers: config.workers }, "shutting down the workers");
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}
