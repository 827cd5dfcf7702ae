// What an action is: a name, a parameter schema and a thin handler over the services in its context.
import type { Catalog } from "../catalog/catalog";
import { ID_MAX_LENGTH } from "../protocol/ids";
import type { Backup, Credential, Instance } from "../catalog/types";
import type { Language } from "../protocol/errors";
import type { Params, Schema } from "../protocol/schema";
import type { LocalTime } from "../protocol/time";
import type { Services } from "../services";
import type { AccountScope } from "./scope";

export interface ActionContext {
  /** What this caller may see: its account's instances, backups and tasks in the region, under its policy. */
  scope: AccountScope;
  catalog: Catalog;
  time: LocalTime;
  services: Services;
  credential: Credential;
  accountId: string;
  region: string;
  language: Language;
  requestId: string;
  /** The caller's address, for download restrictions. */
  clientIp: string;
  /** Scheme://host[:port] the caller reached us on, for URLs we hand out. */
  origin: string;
}

export interface Action<S extends Schema = Schema> {
  name: string;
  schema: S;
  /** The parameter that names the instance the request acts on, for policy checks. */
  instanceParam?: keyof S & string;
  /** The action changes state (starts a job, writes the catalogue): replay and tampering tests cover it. */
  mutates?: boolean;
  /** The action a CAM policy must allow for this one, when it is a view over another (console actions). */
  policyAction?: string;
  handle(params: Params<S>, ctx: ActionContext): Promise<Record<string, unknown>> | Record<string, unknown>;
}

export function defineAction<S extends Schema>(a: Action<S>): Action<S> {
  return a;
}

export { ID_MAX_LENGTH };

/** The two parameters that name one backup of one instance (every action on a backup takes them). */
export const BACKUP_OF_INSTANCE = {
  InstanceId: { type: "string", required: true, maxLength: ID_MAX_LENGTH },
  BackupId: { type: "string", required: true, maxLength: ID_MAX_LENGTH },
} as const satisfies Schema;

type BackupOfInstance = typeof BACKUP_OF_INSTANCE;

/** The backup an action on BACKUP_OF_INSTANCE names, with its instance, both found in the caller's scope. */
export interface FoundBackup {
  instance: Instance;
  backup: Backup;
}

/**
 * An action on one backup of one instance: it takes BACKUP_OF_INSTANCE, and its handler is given the instance
 * (InstanceNotExists first) and the backup (BackupNotExists unless it is that instance's).
 */
export function defineBackupAction(
  a: Omit<Action<BackupOfInstance>, "schema" | "instanceParam" | "handle"> & {
    handle(found: FoundBackup, ctx: ActionContext, params: Params<BackupOfInstance>): Promise<Record<string, unknown>> | Record<string, unknown>;
  },
): Action<BackupOfInstance> {
  return defineAction({
    ...a,
    instanceParam: "InstanceId",
    schema: BACKUP_OF_INSTANCE,
    async handle(p, ctx) {
      const instance = await ctx.scope.instance(p.InstanceId!);
      const { backup } = await ctx.scope.backup(p.BackupId!, instance);
      return a.handle({ instance, backup }, ctx, p);
    },
  });
}
