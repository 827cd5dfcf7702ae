// Assembles a running server from its configuration: services, credentials, fixtures, recovery, the request
// pipeline and the HTTP listener. The pieces it assembles live in their own modules (src/server/: the first key,
// the data directory's lock, the disk-full diagnosis, TLS loading).
import { loadSeedFile } from "./server/seed";
import { sqlitePath } from "./catalog/open";
import { Config, catalogUrl } from "./config";
import { createDownloadHandler } from "./downloads/handler";
import { DOWNLOAD_PREFIX } from "./downloads/links";
import { Pipeline } from "./gateway/pipeline";
import { BucketStore, MemoryBucketStore, RateLimiter } from "./gateway/ratelimit";
import { RedisBucketStore } from "./gateway/ratelimit-redis";
import { ApiServer, createApiServer } from "./gateway/server";
import { reconcileStorage, sweepOrphanStates } from "./jobs/reconcile";
import { CONSOLE_PREFIX, createConsoleHandler } from "./console/handler";
import { createServices, Services } from "./services";
import { ServerMetrics } from "./metrics/metrics";
import { operatorRoutes } from "./metrics/handler";
import { announceGeneratedKey, ensureCredentials, GeneratedKey } from "./server/credentials";
import { lockDataDir } from "./server/data-dir-lock";
import { startupError } from "./server/startup-error";
import { loadTls } from "./server/tls";

export { DEFAULTS, catalogFile, filesDir } from "./config";
export type { Config as ServeConfig } from "./config";

export interface RunningServer {
  server: ApiServer;
  url: string;
  port: number;
  services: Services;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Where the generated key is shown (default: the logger, as a warning). */
  announce?: (line: string) => void;
}

export async function startServer(config: Config, env: NodeJS.ProcessEnv = process.env, opts: StartOptions = {}): Promise<RunningServer> {
  const tls = loadTls(config.tlsCert, config.tlsKey);
  // Per server, not prom-client's global registry: several servers in one process keep their own counts.
  const metrics = config.metrics === false ? undefined : new ServerMetrics();
  let services: Services;
  try {
    services = await createServices(config, { role: "serve" });
  } catch (err) {
    throw startupError(err, config.dataDir);
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
    // Spool files of captures a crash interrupted (their tasks were failed by the recovery above, which removes
    // its own backup's; this catches any other, e.g. of a task another node recovered).
    const spooled = busy ? 0 : services.backups.removeStaleSpool();
    if (spooled) logger.warn({ files: spooled }, "removed spool files left by interrupted captures");
  } catch (err) {
    await services.close().catch(() => undefined);
    unlock();
    throw startupError(err, config.dataDir);
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
    await announceGeneratedKey(catalog, generated, opts.announce ?? ((line: string) => logger.warn(line)));
  }
  services.runner.start();
  // After listening, so a window missed while the server was down is caught up at once if still open.
  services.scheduler.start(config.schedulerIntervalMs);
  services.streams.start();
  // This node's clones: started again if they are not running (they outlive a stop of the service).
  services.provisioning.start();
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
