// The long-lived parts of a running server that actions reach through their context.
import type { Catalog } from "./catalog/sqlite";
import type { LocalTime } from "./protocol/time";
import type { BackupService } from "./backup/service";
import type { BlobStore } from "./backup/storage";
import type { RestoreService } from "./backup/restores";
import type { Scheduler } from "./backup/scheduler";

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
