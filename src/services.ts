// The long-lived parts of a running server that actions reach through their context.
import type { Catalog } from "./catalog/sqlite/sqlite";
import type { LocalTime } from "./protocol/time";
import type { BackupService } from "./jobs/backups";
import type { BlobStore } from "./storage/blob-store";
import type { RestoreService } from "./jobs/restores";
import type { Scheduler } from "./jobs/scheduler";

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface Services {
  catalog: Catalog;
  time: LocalTime;
  clock: Clock;
  store: BlobStore;
  backups: BackupService;
  restores: RestoreService;
  scheduler: Scheduler;
}
