// Assembles a running server from its configuration: services, credentials, fixtures, recovery, the request
// pipeline and the HTTP listener.
import fs from "node:fs";
import path from "node:path";
import { createSecureContext as tlsContext } from "node:tls";
import { CatalogFullError, type Catalog } from "./catalog/catalog";
import { DEFAULT_ACCOUNT, loadSeedFile } from "./catalog/seed";
import { sqlitePath } from "./catalog/open";
import { Config, catalogUrl } from "./config";
import { createDownloadHandler } from "./downloads/handler";
import { DOWNLOAD_PREFIX } from "./downloads/links";
import { Pipeline } from "./gateway/pipeline";
import { BucketStore, MemoryBucketStore, RateLimiter } from "./gateway/ratelimit";
import { RedisBucketStore } from "./gateway/ratelimit-redis";
import { ApiServer, createApiServer } from "./gateway/server";
import { freeBytes } from "./jobs/disk-space";
import { randomString } from "./jobs/instances";
import { reconcileStorage, sweepOrphanStates } from "./jobs/reconcile";
import { CONSOLE_PREFIX, createConsoleHandler } from "./console/handler";
import { createServices, Services } from "./services";
import { ServerMetrics } from "./metrics/metrics";
import { operatorRoutes } from "./metrics/handler";

export { DEFAULTS, catalogFile, filesDir } from "./config";
export type { Config as ServeConfig } from "./config";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** Settings that remember a generated key until it has been shown, and which key was generated. */
const GENERATED = "credentials.generated";
const UNSHOWN = "credentials.generated.unshown";

export interface GeneratedKey {
  secretId: string;
  secretKey: string;
}

/**
 * CRS_SECRET_ID / CRS_SECRET_KEY define the default account's key. With no credential configured at all, one is
 * generated and stored; it is returned (to be printed) on every start until a start has shown it, so a first
 * start that fails to listen does not lose it. Returns notes for the operator as well.
 */
export async function ensureCredentials(catalog: Catalog, env: NodeJS.ProcessEnv): Promise<{ generated?: GeneratedKey; notes: string[] }> {
  const id = env.CRS_SECRET_ID;
  const key = env.CRS_SECRET_KEY;
  const notes: string[] = [];
  if (id || key) {
    if (!id || !key) throw new Error("set both CRS_SECRET_ID and CRS_SECRET_KEY, or neither");
    await catalog.putCredential({ secretId: id, secretKey: key, accountId: DEFAULT_ACCOUNT });
    const generated = await catalog.setting(GENERATED);
    if (generated && generated !== id && (await catalog.credential(generated))) {
      notes.push(`CRS_SECRET_ID is set, so ${id} is a key of account ${DEFAULT_ACCOUNT}; the key generated earlier (${generated}) still works too — revoke it with: crs-backup key revoke ${generated}`);
    }
    return { notes };
  }
  const unshown = await catalog.setting(UNSHOWN);
  if (unshown) {
    const c = await catalog.credential(unshown);
    if (c) return { generated: { secretId: c.secretId, secretKey: c.secretKey }, notes };
  }
  if ((await catalog.credentialCount()) > 0) return { notes };
  const generated = { secretId: `AKID${randomString(32, ALNUM)}`, secretKey: randomString(32, ALNUM) };
  await catalog.transaction(async (tx) => {
    await tx.putCredential({ ...generated, accountId: DEFAULT_ACCOUNT });
    await tx.putSetting(GENERATED, generated.secretId);
    await tx.putSetting(UNSHOWN, generated.secretId);
  });
  return { generated, notes };
}

/** The start time of a process (field 22 of /proc/PID/stat), to tell a live owner from a reused PID. */
function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/**
 * Whether a live process may be a crs-backup server, by its command line: lock files of older versions hold a
 * bare PID, and a PID reused by an unrelated process must not block start-up for good. Unknown (no /proc):
 * assume it is.
 */
function maybeServer(pid: number): boolean {
  let argv: string[];
  try {
    argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return true;
  }
  return argv.includes("serve") || argv.some((a) => a.includes("crs-backup"));
}

function alive(pid: number, start: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (start === undefined) return maybeServer(pid);
  // Same PID, different start time: the PID was reused by an unrelated process after ours died.
  const now = processStart(pid);
  return now === undefined || now === start;
}

/** The PID of a live server holding the data directory's lock, if any (nothing is written). */
export function dataDirHolder(dataDir: string): number | undefined {
  try {
    const text = fs.readFileSync(path.join(dataDir, "server.pid"), "utf8");
    const held = (text.startsWith("{") ? JSON.parse(text) : { pid: Number(text) }) as { pid?: number; start?: string };
    return held.pid !== undefined && Number.isInteger(held.pid) && held.pid > 0 && alive(held.pid, held.start) ? held.pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One server per embedded data directory: its SQLite catalogue and files serve one node, and start-up recovery
 * treats every task a server left running as dead. The lock file holds the PID and that process's start time,
 * so a lock left by a dead process is taken over even when its PID now belongs to something else. Returns the
 * release function.
 */
export function lockDataDir(dataDir: string): () => void {
  const file = path.join(dataDir, "server.pid");
  const mine = JSON.stringify({ pid: process.pid, start: processStart(process.pid) });
  for (;;) {
    try {
      fs.writeFileSync(file, mine, { flag: "wx", mode: 0o600 });
      return () => {
        try {
          if (fs.readFileSync(file, "utf8") === mine) fs.rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let held: { pid?: number; start?: string } = {};
      try {
        const text = fs.readFileSync(file, "utf8");
        held = text.startsWith("{") ? (JSON.parse(text) as typeof held) : { pid: Number(text) };
      } catch {
        // unreadable or half-written: treat as stale
      }
      const pid = held.pid;
      if (pid !== undefined && Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid, held.start)) {
        throw new Error(`another crs-backup server (pid ${pid}) is using ${dataDir}`);
      }
      fs.rmSync(file, { force: true });
    }
  }
}

export interface RunningServer {
  server: ApiServer;
  url: string;
  port: number;
  services: Services;
  close(): Promise<void>;
}

/** Explains a start-up failure caused by a full disk instead of letting a raw ENOSPC / SQLITE_FULL through. */
function startupError(err: unknown, config: Config): Error {
  const e = err as NodeJS.ErrnoException;
  // SQLite reports some writes refused for space (its shared-memory index, a journal) as a plain I/O error.
  const ioOnFullDisk = /^(SQLITE_IOERR|SQLITE_CANTOPEN|EIO$)/.test(String(e?.code ?? "")) && (freeBytes(config.dataDir) ?? Infinity) < 1 << 20;
  if (err instanceof CatalogFullError || e?.code === "ENOSPC" || e?.code === "SQLITE_FULL" || ioOnFullDisk) {
    return new Error(`no space left for the data directory ${path.resolve(config.dataDir)} (${e.message}); free some space and start again`);
  }
  return err as Error;
}

export interface StartOptions {
  /** Where the generated key is shown (default: the logger, as a warning). */
  announce?: (line: string) => void;
}

/** The certificate and key of --tls-cert / --tls-key, read now so a bad file stops the start with its name. */
function loadTls(config: Config): { cert: Buffer; key: Buffer } | undefined {
  if (!config.tlsCert && !config.tlsKey) return undefined;
  if (!config.tlsCert || !config.tlsKey) throw new Error("--tls-cert and --tls-key go together");
  const read = (file: string, what: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read the TLS ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const pair = { cert: read(config.tlsCert, "certificate"), key: read(config.tlsKey, "key") };
  try {
    // Parses both and checks that the key belongs to the certificate, before anything else starts.
    tlsContext(pair);
  } catch (err) {
    throw new Error(`the TLS certificate ${config.tlsCert} and key ${config.tlsKey} cannot be used: ${(err as Error).message}`);
  }
  return pair;
}

export async function startServer(config: Config, env: NodeJS.ProcessEnv = process.env, opts: StartOptions = {}): Promise<RunningServer> {
  const tls = loadTls(config);
  // Per server, not prom-client's global registry: several servers in one process keep their own counts.
  const metrics = config.metrics === false ? undefined : new ServerMetrics();
  let services: Services;
  try {
    services = await createServices(config, { role: "serve" });
  } catch (err) {
    throw startupError(err, config);
  }
  const { catalog, logger } = services;
  // Before recovery, so tasks recovered at start are counted.
  if (metrics) services.runner.observe(metrics.runnerObserver);
  const embedded = sqlitePath(catalogUrl(config)) !== undefined;
  let unlock = (): void => undefined;
  let generated: GeneratedKey | undefined;
  try {
    if (embedded) unlock = lockDataDir(config.dataDir);
    if (config.seed) await loadSeedFile(catalog, config.seed, services.time, (r) => services.regions.has(r));
    const creds = await ensureCredentials(catalog, env);
    generated = creds.generated;
    for (const note of creds.notes) logger.warn(note);
    // With the embedded catalogue this server is the only node (it holds the lock): every task a server left
    // running is dead, so it is recovered now rather than when its lease lapses.
    const recovered = await services.runner.recoverLapsed((owner) => embedded && (owner === undefined || owner.startsWith("serve:")));
    if (recovered) logger.warn({ recovered }, "recovered tasks interrupted by a previous run");
    const swept = await sweepOrphanStates({ catalog, store: services.store });
    if (swept.exports || swept.locks || swept.unfinished) logger.warn(swept, "repaired backup states no task accounted for");
    // Temp files of dead writers. A task still running now belongs to a live `crs-backup` command (the `cli:`
    // owners recovery leaves alone) whose temp file is in there too, so then they wait for a later start.
    // Which of the store's optional operations exist (said once if one is missing; /metrics shows them).
    await services.store.checkCapabilities?.();
    const busy = (await catalog.tasksInStatus(["running"])).length > 0;
    const stale = busy ? 0 : ((await services.store.removeStale?.()) ?? 0);
    if (stale) logger.warn({ files: stale }, "removed partial files left by interrupted writers");
  } catch (err) {
    await services.close().catch(() => undefined);
    unlock();
    throw startupError(err, config);
  }
  // After the fixtures: it reads the instances (schedules, newest backups).
  metrics?.attach(services);
  // With a shared store the limit holds across every node; without one each node keeps its own.
  const buckets: BucketStore = config.rateLimitStore ? new RedisBucketStore(config.rateLimitStore, logger.child({ component: "ratelimit" })) : new MemoryBucketStore();
  const limiter = new RateLimiter(buckets, config.rateLimit, config.rateLimits);
  const pipeline = new Pipeline({ services, regions: services.regions, limiter });
  const server = createApiServer({
    pipeline, logger: logger.child({ component: "http" }), keepAliveTimeoutMs: config.keepAliveTimeoutMs, tls, observer: metrics?.requestObserver,
    routes: [
      ...operatorRoutes({ services, logger: logger.child({ component: "health" }), metrics, metricsAllow: config.metricsAllow }),
      { prefix: DOWNLOAD_PREFIX, handler: createDownloadHandler(services) },
      { prefix: CONSOLE_PREFIX, handler: createConsoleHandler({ services, pipeline, regions: services.regions }) },
    ],
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.port, config.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    await services.close().catch(() => undefined);
    unlock();
    throw err;
  }
  const port = (server.address() as { port: number }).port;
  if (generated) {
    const out = opts.announce ?? ((line: string) => logger.warn(line));
    out(`crs-backup: no credentials were configured, so these were generated for account ${DEFAULT_ACCOUNT} and stored in the catalogue (${catalog.describe()}); they are shown until a server has started with them once:`);
    out(`  SecretId:  ${generated.secretId}`);
    out(`  SecretKey: ${generated.secretKey}`);
    await catalog.putSetting(UNSHOWN, "").catch(() => undefined);
  }
  services.runner.start();
  // After listening, so a window missed while the server was down is caught up at once if still open.
  services.scheduler.start(config.schedulerIntervalMs);
  services.streams.start();
  // Storage against the catalogue: orphans of crashes removed (in the background: a large bucket takes a while).
  const reconciled = reconcileStorage({ catalog, store: services.store }).then((r) => {
    if (r.orphans.length) logger.warn({ orphans: r.orphans.length, removed: r.removed, examples: r.orphans.slice(0, 5) }, "removed files no backup accounts for");
  }, (err: unknown) => logger.error({ err }, "reconciling storage with the catalogue failed"));
  let closing: Promise<void> | undefined;
  return {
    server,
    port,
    url: `${tls ? "https" : "http"}://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`,
    services,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await reconciled;
        await services.scheduler.stop();
        await services.runner.stop();
        // A long download must not hold the shutdown open.
        server.closeAllConnections();
        await stopped;
        await buckets.close?.();
        await services.close();
        unlock();
      })();
      return closing;
    },
  };
}
