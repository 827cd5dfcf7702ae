// Assembles a running server from its configuration: data directory, catalogue, credentials, fixtures,
// services, the request pipeline and the HTTP listener.
import fs from "node:fs";
import type http from "node:http";
import path from "node:path";
import { randomString } from "./jobs/instances";
import { RestoreService } from "./jobs/restores";
import { Scheduler } from "./jobs/scheduler";
import { exportsOf, recoverExports } from "./jobs/exports";
import { BackupService } from "./jobs/backups";
import { LocalBlobStore } from "./storage/local";
import { Catalog } from "./catalog/sqlite/sqlite";
import { DEFAULT_ACCOUNT, loadSeedFile } from "./catalog/seed";
import { Pipeline } from "./gateway/pipeline";
import { MemoryBucketStore, RateLimiter } from "./gateway/ratelimit";
import { DEFAULT_REGIONS, RegionRules } from "./gateway/regions";
import { createDownloadHandler, DOWNLOAD_PREFIX } from "./downloads/downloads";
import { createApiServer } from "./gateway/server";
import { CONSOLE_PREFIX, createConsoleHandler } from "./console/handler";
import { LocalTime } from "./protocol/time";
import { Services, systemClock, Clock } from "./services";

export interface ServeConfig {
  host: string;
  port: number;
  dataDir: string;
  seed?: string;
  tz: string;
  /** Requests per second per account and action; 0 = off. */
  rateLimit: number;
  rateLimits?: ReadonlyMap<string, number>;
  regions: string[];
  domain: string;
  log?: (line: string) => void;
  clock?: Clock;
  /** Address target Redis servers use to reach our replication endpoint during a restore. */
  advertiseHost?: string;
  /** Days a deleted or expired backup's record is kept for the audit trail. */
  auditDays?: number;
  /** How often the scheduler runs (automatic backups, retention); 0 = only when tick() is called. */
  schedulerIntervalMs?: number;
}

export const DEFAULTS = {
  host: "127.0.0.1",
  port: 9000,
  dataDir: "./data",
  tz: "Asia/Shanghai",
  rateLimit: 20,
  domain: "tencentcloudapi.com",
  regions: DEFAULT_REGIONS,
  advertiseHost: "127.0.0.1",
  auditDays: 90,
  schedulerIntervalMs: 30_000,
};

export function catalogFile(dataDir: string): string {
  return path.join(dataDir, "catalog.db");
}

export function filesDir(dataDir: string): string {
  return path.join(dataDir, "files");
}

/** Creates the data directory owner-only and opens its catalogue. */
export function openCatalog(dataDir: string): Catalog {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dataDir, 0o700);
  return new Catalog(catalogFile(dataDir));
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * CRS_SECRET_ID / CRS_SECRET_KEY define the default account's key. With no credential configured at all, one is
 * generated, stored in the catalogue and returned so the caller can print it once.
 */
export function ensureCredentials(catalog: Catalog, env: NodeJS.ProcessEnv): { secretId: string; secretKey: string } | undefined {
  const id = env.CRS_SECRET_ID;
  const key = env.CRS_SECRET_KEY;
  if (id && key) {
    catalog.putCredential({ secretId: id, secretKey: key, accountId: DEFAULT_ACCOUNT });
    return undefined;
  }
  if (id || key) throw new Error("set both CRS_SECRET_ID and CRS_SECRET_KEY, or neither");
  if (catalog.credentialCount() > 0) return undefined;
  const generated = { secretId: `AKID${randomString(32, ALNUM)}`, secretKey: randomString(32, ALNUM) };
  catalog.putCredential({ ...generated, accountId: DEFAULT_ACCOUNT });
  return generated;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * One server per data directory: start-up recovery fails every task it finds running, which would break a
 * live server's jobs. A lock file left by a dead process is taken over. Returns the release function.
 */
export function lockDataDir(dataDir: string): () => void {
  const file = path.join(dataDir, "server.pid");
  for (;;) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: "wx", mode: 0o600 });
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number(fs.readFileSync(file, "utf8"));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new Error(`another crs-backup server (pid ${pid}) is using ${dataDir}`);
      }
      fs.rmSync(file, { force: true });
    }
  }
}

export interface RunningServer {
  server: http.Server;
  url: string;
  port: number;
  services: Services;
  close(): Promise<void>;
}

export async function startServer(cfg: ServeConfig, env: NodeJS.ProcessEnv = process.env): Promise<RunningServer> {
  const log = cfg.log ?? ((line: string) => process.stdout.write(line + "\n"));
  const time = new LocalTime(cfg.tz);
  const regions = new RegionRules(cfg.regions, cfg.domain);
  const catalog = openCatalog(cfg.dataDir);
  let unlock: () => void;
  try {
    unlock = lockDataDir(cfg.dataDir);
  } catch (err) {
    catalog.close();
    throw err;
  }
  try {
    if (cfg.seed) loadSeedFile(catalog, cfg.seed, time, (r) => regions.has(r));
    const generated = ensureCredentials(catalog, env);
    if (generated) {
      log(`crs-backup: no credentials were configured, so these were generated for account ${DEFAULT_ACCOUNT} and stored in ${catalogFile(cfg.dataDir)}; they are shown only this once:`);
      log(`  SecretId:  ${generated.secretId}`);
      log(`  SecretKey: ${generated.secretKey}`);
    }
  } catch (err) {
    unlock();
    catalog.close();
    throw err;
  }
  const clock = cfg.clock ?? systemClock;
  const store = new LocalBlobStore(filesDir(cfg.dataDir));
  const backups = new BackupService({ catalog, store, clock, log });
  const recovered = await backups.recover();
  if (recovered.tasks || recovered.backups || recovered.tempFiles) {
    log(`crs-backup: recovered from an interrupted run: ${recovered.tasks} task(s) marked failed, ${recovered.backups} unfinished backup(s) and ${recovered.tempFiles} partial file(s) removed`);
  }
  const resetExports = await recoverExports({ catalog, store });
  if (resetExports) log(`crs-backup: ${resetExports} interrupted export(s) reset to Status 2 and their partial files removed`);
  const restores = new RestoreService({ catalog, store, clock, advertiseHost: cfg.advertiseHost ?? DEFAULTS.advertiseHost, log });
  const scheduler = new Scheduler({ catalog, backups, clock, time, auditDays: cfg.auditDays ?? DEFAULTS.auditDays, log });
  const services: Services = { catalog, time, clock, store, backups, restores, scheduler };
  const limiter = new RateLimiter(new MemoryBucketStore(), cfg.rateLimit, cfg.rateLimits);
  const pipeline = new Pipeline({ services, regions, limiter });
  const exportJobs = exportsOf(services, log);
  const server = createApiServer({ pipeline, log, routes: [{ prefix: DOWNLOAD_PREFIX, handler: createDownloadHandler(services, { log }) }, { prefix: CONSOLE_PREFIX, handler: createConsoleHandler({ services, pipeline, regions, log }) }] });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(cfg.port, cfg.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    unlock();
    catalog.close();
    throw err;
  }
  const port = (server.address() as { port: number }).port;
  // After listening, so a window missed while the server was down is caught up at once if still open.
  scheduler.start(cfg.schedulerIntervalMs ?? DEFAULTS.schedulerIntervalMs);
  let closing: Promise<void> | undefined;
  return {
    server,
    port,
    url: `http://${cfg.host.includes(":") ? `[${cfg.host}]` : cfg.host}:${port}`,
    services,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await scheduler.stop();
        await exportJobs.shutdown();
        await Promise.all([backups.shutdown(), restores.shutdown()]);
        // A long download must not hold the shutdown open.
        server.closeAllConnections();
        await stopped;
        catalog.close();
        unlock();
      })();
      return closing;
    },
  };
}
