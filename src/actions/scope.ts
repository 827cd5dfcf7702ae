// What one caller may see: the instances, backups and tasks of its account in the request's region, narrowed by
// its key's CAM policy. Built once per request by the pipeline (like moto's backends[account][region]), so no
// action filters by account, region or policy on its own. Anything outside the scope does not exist for the
// caller — the same answer as for an id that exists nowhere — except where the policy, not the account, is what
// stands in the way: then it is UnauthorizedOperation.NoCAMAuthed, as the cloud answers.
import type { Catalog } from "../catalog/catalog";
import type { Backup, Credential, Instance, Task, TaskQuery } from "../catalog/types";
import { ApiError } from "../protocol/errors";
import { ID_MAX_LENGTH, INSTANCE_ID_PATTERN } from "../protocol/ids";

/** Whether a credential's CAM policy allows an action (and, when given, an instance). */
export function policyAllows(c: Credential, action: string, instanceId?: string): boolean {
  const p = c.policy;
  if (!p) return true;
  if (p.Actions && !p.Actions.includes(action) && !p.Actions.includes("*")) return false;
  if (instanceId !== undefined && p.Instances && !p.Instances.includes(instanceId) && !p.Instances.includes("*")) return false;
  return true;
}

export class AccountScope {
  constructor(private readonly catalog: Catalog, readonly credential: Credential, readonly region: string) {}

  get accountId(): string {
    return this.credential.accountId;
  }

  /** Whether the key's policy reaches this instance. */
  allows(instanceId: string): boolean {
    const ids = this.instanceIds;
    return ids === undefined || ids.includes(instanceId);
  }

  /** The instance ids the key's policy limits it to; undefined when it reaches all of the account's. */
  get instanceIds(): string[] | undefined {
    const allowed = this.credential.policy?.Instances;
    return allowed && !allowed.includes("*") ? allowed : undefined;
  }

  /** The caller's instance; anything else (malformed, removed, another account's or region's) does not exist. */
  async instance(instanceId: string): Promise<Instance> {
    // Checked before any lookup: no caller-chosen string that cannot be an id reaches the catalogue's caches.
    if (!INSTANCE_ID_PATTERN.test(instanceId)) throw new ApiError("ResourceNotFound.InstanceNotExists", { instanceId: instanceId.slice(0, ID_MAX_LENGTH) });
    const i = await this.catalog.instance(instanceId);
    if (!i || !this.owns(i)) throw new ApiError("ResourceNotFound.InstanceNotExists", { instanceId });
    return i;
  }

  private owns(i: Instance): boolean {
    return i.deletedAt === undefined && i.accountId === this.accountId && i.region === this.region;
  }

  /** A backup of one of the caller's instances (the one given, else any of them) with that instance. */
  async backup(backupId: string, of?: Instance): Promise<{ backup: Backup; instance: Instance }> {
    const backup = await this.catalog.backup(backupId);
    const missing = () => new ApiError("InvalidParameterValue.BackupNotExists", { backupId: backupId.slice(0, ID_MAX_LENGTH) });
    if (!backup || (of && backup.instanceId !== of.instanceId)) throw missing();
    const instance = of ?? (await this.catalog.instance(backup.instanceId));
    if (!instance || !this.owns(instance)) throw missing();
    if (!this.allows(instance.instanceId)) {
      throw new ApiError("UnauthorizedOperation.NoCAMAuthed", { reason: `the credential's policy does not allow access to the instance \`${instance.instanceId}\` the backup belongs to` });
    }
    return { backup, instance };
  }

  /** A task on one of the caller's instances; another account's, region's or (by policy) instance's is absent. */
  async task(taskId: number): Promise<Task> {
    const task = await this.catalog.task(taskId);
    const instance = task && (await this.catalog.instance(task.instanceId));
    if (!task || task.accountId !== this.accountId || (instance && instance.region !== this.region) || !this.allows(task.instanceId)) {
      throw new ApiError("ResourceNotFound.TaskNotExists", { taskId });
    }
    return task;
  }

  /** The caller's instances in the region that its key reaches, by id. */
  async instances(): Promise<Instance[]> {
    return (await this.catalog.instances(this.accountId)).filter((i) => this.owns(i) && this.allows(i.instanceId));
  }

  /** The caller's tasks in the region (of the instances its key reaches). */
  listTasks(q: Omit<TaskQuery, "accountId" | "region" | "instanceIds">): ReturnType<Catalog["listTasks"]> {
    return this.catalog.listTasks({ ...q, accountId: this.accountId, region: this.region, instanceIds: this.instanceIds });
  }
}
