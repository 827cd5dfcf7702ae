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

/** The parameter that names one of the caller's instances (every action on an instance takes it). */
export const INSTANCE_OF = {
  InstanceId: { type: "string", required: true, maxLength: ID_MAX_LENGTH },
} as const satisfies Schema;

/** The two parameters that name one backup of one instance (every action on a backup takes them). */
export const BACKUP_OF_INSTANCE = {
  ...INSTANCE_OF,
  BackupId: { type: "string", required: true, maxLength: ID_MAX_LENGTH },
} as const satisfies Schema;

/** A listing's Limit (1 to `max` rows) and Offset; a value out of range is InvalidParameter, as the cloud answers. */
export function pageParams(max: number) {
  const rangeCode = "InvalidParameter.InvalidParameter";
  return {
    Limit: { type: "integer", min: 1, max, rangeCode },
    Offset: { type: "integer", min: 0, rangeCode },
  } as const satisfies Schema;
}

type OnInstance<S extends Schema> = typeof INSTANCE_OF & S;

type Answer = Promise<Record<string, unknown>> | Record<string, unknown>;

/**
 * An action on one of the caller's instances: it takes InstanceId (which the key's policy must allow) before its
 * other `params`, and its handler is given the instance (InstanceNotExists when the caller has no such instance).
 */
export function defineInstanceAction<S extends Schema>(
  a: Omit<Action<OnInstance<S>>, "schema" | "instanceParam" | "handle"> & {
    /** The parameters besides InstanceId. */
    params: S;
    handle(instance: Instance, ctx: ActionContext, params: Params<OnInstance<S>>): Answer;
  },
): Action<OnInstance<S>> {
  const { params, handle, ...rest } = a;
  return defineAction({
    ...rest,
    instanceParam: "InstanceId",
    schema: { ...INSTANCE_OF, ...params },
    async handle(p, ctx) {
      return handle(await ctx.scope.instance(p.InstanceId!), ctx, p);
    },
  });
}

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
  a: Omit<Action<typeof BACKUP_OF_INSTANCE>, "schema" | "instanceParam" | "handle"> & {
    handle(found: FoundBackup, ctx: ActionContext, params: Params<typeof BACKUP_OF_INSTANCE>): Answer;
  },
): Action<typeof BACKUP_OF_INSTANCE> {
  const { handle, ...rest } = a;
  return defineInstanceAction({
    ...rest,
    params: { BackupId: BACKUP_OF_INSTANCE.BackupId },
    async handle(instance, ctx, p) {
      const { backup } = await ctx.scope.backup(p.BackupId!, instance);
      return handle({ instance, backup }, ctx, p);
    },
  });
}
