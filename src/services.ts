// One place builds everything a crs-backup process uses — `serve` and every CLI command alike — from its Config:
// the logger, the catalogue, the blob store, the task runner with its job kinds, the scheduler, the link signer.
// Nothing else constructs a catalogue or a store, so each engine (SQLite or PostgreSQL, a directory or S3) is
// chosen here once.
import fs from "node:fs";
import path from "node:path";
import { Clock, Config, catalogUrl, dataDirUsed, filesDir, spoolDir, systemClock } from "./config";
import type { Catalog } from "./catalog/catalog";
import { openCatalog, sqlitePath } from "./catalog/open";
import { DiskReserve } from "./catalog/reserve";
import { LinkSigner } from "./downloads/links";
import { BackupJobs, RetireJobs } from "./jobs/backups";
import { BackupDigests } from "./jobs/digests";
import { ExportJobs } from "./jobs/exports";
import { RestoreJobs } from "./jobs/restores";
import { makeNodeId, TaskRunner } from "./queue";
import { Scheduler } from "./jobs/scheduler";
import { StreamJobs } from "./jobs/streams";
import { CloneJobs } from "./jobs/clones";
import { LocalProcessProvider } from "./instances/local";
import { Provisioning, provisioningOwner } from "./instances/supervisor";
import { SpaceGuard, SpaceTarget } from "./jobs/disk-space";
import { createLogger, Logger } from "./log";
import { LocalTime } from "./protocol/time";
import { RegionRules } from "./protocol/regions";
import { openBlobStore, parseStorageUrl } from "./storage/url";
import { LocalBlobStore } from "./storage/local";
import { EncryptedBlobStore } from "./storage/encrypted";
import { LocalKeyring } from "./storage/keys/keyring";
import { SpoolDir } from "./storage/spool";
import type { KeyProvider } from "./storage/keys/provider";

export type { Clock } from "./config";
export { systemClock } from "./config";

export interface Services {
  config: Config;
  logger: Logger;
  clock: Clock;
  time: LocalTime;
  regions: RegionRules;
  catalog: Catalog;
  /** Every file goes through the encryption layer (plain files pass through it untouched). */
  store: EncryptedBlobStore;
  /** The master keys of encrypted backups (absent: no keyring configured). */
  keys?: KeyProvider;
  /** Who this process is in task leases. */
  nodeId: string;
  runner: TaskRunner;
  backups: BackupJobs;
  /** Digests of backups computed after their transfer; absent with `--capture-digest off`. */
  digests?: BackupDigests;
  exports: ExportJobs;
  restores: RestoreJobs;
  scheduler: Scheduler;
  /** Second-level backup: the replication streams this node holds (started by `serve`). */
  streams: StreamJobs;
  links: LinkSigner;
  /** The instances this node provisions (CloneInstances) and their supervision (started by `serve`). */
  provisioning: Provisioning;
  clones: CloneJobs;
  /** The disk reserve of the SQLite catalogue (absent with PostgreSQL). */
  reserve?: DiskReserve;
  /** Stops the runner and the scheduler (their jobs record their end), then closes the catalogue. */
  close(): Promise<void>;
}

export interface ServicesOptions {
  /** `serve` takes queued tasks and recovers others'; a CLI command runs only the task it asks for. */
  role: "serve" | "cli";
}

/** Makes the data directory owner-only when the embedded catalogue or files live in it. */
function prepareDataDir(config: Config): void {
  if (!dataDirUsed(config)) return;
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(config.dataDir, 0o700);
}

export async function createServices(config: Config, o: ServicesOptions): Promise<Services> {
  const logger = config.logger ?? createLogger({ level: config.logLevel });
  const clock = config.clock ?? systemClock;
  const time = new LocalTime(config.tz);
  const regions = new RegionRules(config.regions, config.domain);
  prepareDataDir(config);
  // A keyring that is not owner-only or does not read stops the start before anything is opened.
  const keys = config.encryptionKeys !== undefined ? new LocalKeyring(config.encryptionKeys) : undefined;
  const catalog = await openCatalog(catalogUrl(config), { server: o.role === "serve" });
  try {
    const storage = parseStorageUrl(config.storage, {
      defaultDir: filesDir(config.dataDir), s3Endpoint: config.s3?.endpoint, s3Region: config.s3?.region, s3PathStyle: config.s3?.pathStyle, s3KeyFile: config.s3?.keyFile,
    });
    const backend = openBlobStore(storage, {
      // Housekeeping the object store cannot do: said once, then skipped (also in /metrics and `storage check`).
      onUnsupported: (c) => logger.warn({ storage: backend.describe(), operation: c.operation }, `the object store does not implement ${c.operation}: ${c.without}`),
    });
    const store = new EncryptedBlobStore(backend, keys);
    // A missing bucket, a refused key or an unreachable endpoint is said now, not at the first backup.
    await store.probe();
    const nodeId = makeNodeId(o.role, o.role === "serve" ? config.nodeId : undefined);
    // The disks a backup writes to and this process can measure: a local store's, the SQLite catalogue's.
    const catalogFile = sqlitePath(catalogUrl(config));
    const catalogDir = catalogFile && catalogFile !== ":memory:" ? path.dirname(path.resolve(catalogFile)) : undefined;
    const targets: SpaceTarget[] = [];
    if (backend instanceof LocalBlobStore) targets.push({ what: `the backup storage ${backend.describe()}`, dir: backend.root });
    if (catalogDir) targets.push({ what: `the catalogue's disk ${catalog.describe()}`, dir: catalogDir });
    const space = new SpaceGuard(targets, config.minFreeBytes);
    // Made and kept by the server; any process whose catalogue write is refused for a full disk may release it.
    const reserve = catalogDir ? new DiskReserve(catalogDir, config.diskReserveBytes, config.minFreeBytes, logger) : undefined;
    if (o.role === "serve") reserve?.ensure();
    const runner = new TaskRunner({
      catalog, clock, logger: logger.child({ node: nodeId }), nodeId, leaseMs: config.leaseMs, pollMs: config.pollMs,
      concurrency: { redis: config.concurrency, files: Math.max(2, config.concurrency) }, takeQueued: o.role === "serve",
      onCatalogFull: reserve ? () => reserve.release() : undefined,
      housekeeping: reserve && o.role === "serve" ? () => void reserve.ensure() : undefined,
    });
    const digests = config.captureDigest ? new BackupDigests({ catalog, store, logger }) : undefined;
    const backups = new BackupJobs({ catalog, store, clock, logger, queue: runner, clusterHosts: config.clusterHosts, digests, space,
      keys, encryptByDefault: config.encryptBackups, ...(config.captureMode === "spool" ? { spool: new SpoolDir(spoolDir(config.dataDir)) } : {}) });
    const exports = new ExportJobs({ catalog, store, clock, logger, queue: runner });
    const restores = new RestoreJobs({ catalog, store, clock, logger, queue: runner, advertiseHost: config.advertiseHost, clusterHosts: config.clusterHosts, digests });
    const provisioning = new Provisioning({
      catalog, clock, logger: logger.child({ component: "instances" }), provider: new LocalProcessProvider({ redisServer: config.cloneRedisServer }),
      owner: provisioningOwner(config.nodeId), root: path.join(config.dataDir, "instances"), host: config.advertiseHost, ports: config.clonePorts, pollMs: config.pollMs,
    });
    const clones = new CloneJobs({ catalog, store, clock, logger, queue: runner, provisioning });
    for (const kind of [backups, exports, restores, clones, new RetireJobs(store)]) runner.register(kind);
    const scheduler = new Scheduler({ catalog, backups, clock, time, auditDays: config.auditDays, autoBackups: config.autoBackups, logger: logger.child({ component: "scheduler" }), store });
    const streams = new StreamJobs({
      catalog, store, clock, logger: logger.child({ node: nodeId }), nodeId, leaseMs: config.leaseMs, pollMs: config.pollMs, digests,
      flushMs: store.describe().startsWith("s3://") ? config.streamCommitS3Ms : 1000, clusterHosts: config.clusterHosts,
      bases: { ...(config.pitrBaseEveryMs !== undefined ? { everyMs: config.pitrBaseEveryMs } : {}), ...(config.pitrRebaseAfterMs !== undefined ? { afterKeyMovesMs: config.pitrRebaseAfterMs } : {}), time },
      proofRedisServer: config.cloneRedisServer, scratchDir: path.join(config.dataDir, "scratch"),
    });
    const links = await LinkSigner.open(catalog);
    let closing: Promise<void> | undefined;
    return {
      config, logger, clock, time, regions, catalog, store, keys, nodeId, runner, backups, digests, exports, restores, scheduler, streams, links, reserve, provisioning, clones,
      close() {
        closing ??= (async () => {
          await provisioning.stop();
          await scheduler.stop();
          await streams.stop();
          await runner.stop();
          await digests?.close();
          await catalog.close();
          store.destroy(); // an S3 client's idle sockets
        })();
        return closing;
      },
    };
  } catch (err) {
    await catalog.close().catch(() => undefined);
    throw err;
  }
}
