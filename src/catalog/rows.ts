// Rows as both catalogue backends store them (the same tables and columns) and the records they map to, plus the
// column maps of partial updates. Shared so that SQLite and PostgreSQL read and write records identically.
import type { BackupSource, SnapshotSource } from "../records";
import type { Backup, BackupStatus, Credential, Instance, InstanceFields, Policy, StoredFile, Task, TaskFields, TaskStatus } from "./types";

export type Row = Record<string, unknown>;

export const BACKUP_COLUMNS = "backup_id, instance_id, start_time, end_time, backup_type, status, remark, locked, backup_size, full_backup, instance_type, file_type, expire_time, encrypted, files, deleted_at, fixture, source, kms_key_id, wrapped_key";

export function toBackup(r: Row): Backup {
  const b: Backup = {
    backupId: r.backup_id as string,
    instanceId: r.instance_id as string,
    startTime: r.start_time as number,
    backupType: r.backup_type as string,
    status: r.status as BackupStatus,
    remark: r.remark as string,
    locked: r.locked as number,
    backupSize: r.backup_size as number,
    fullBackup: r.full_backup as number,
    instanceType: r.instance_type as number,
    fileType: r.file_type as string,
    encrypted: r.encrypted === 1,
    fixture: r.fixture === 1,
    files: JSON.parse(r.files as string) as StoredFile[],
  };
  if (r.end_time !== null) b.endTime = r.end_time as number;
  if (r.expire_time !== null) b.expireTime = r.expire_time as number;
  if (r.deleted_at !== null) b.deletedAt = r.deleted_at as number;
  if (typeof r.source === "string") b.source = JSON.parse(r.source) as SnapshotSource[];
  if (typeof r.kms_key_id === "string") b.kmsKeyId = r.kms_key_id;
  if (typeof r.wrapped_key === "string") b.wrappedKey = r.wrapped_key;
  return b;
}

export function copyPolicy(p: Policy): Policy {
  const c: Policy = { ...p };
  if (p.Actions) c.Actions = [...p.Actions];
  if (p.Instances) c.Instances = [...p.Instances];
  return c;
}

export function toInstance(r: Row): Instance {
  const i: Instance = {
    instanceId: r.instance_id as string,
    accountId: r.account_id as string,
    region: r.region as string,
    name: r.name as string,
    instanceType: r.instance_type as number,
    shardNum: r.shard_num as number,
    memSizeMb: r.mem_size_mb as number,
    createdAt: r.created_at as number,
    autoBackupWeekDays: (r.auto_backup_weekdays as string).split(",").filter(Boolean),
    autoBackupPeriod: r.auto_backup_period as string,
    backupStorageDays: r.backup_storage_days as number,
    lastAutoWindow: r.last_auto_window as number,
  };
  if (r.redis_url !== null) i.redisUrl = r.redis_url as string;
  if (r.redis_version !== null) i.redisVersion = r.redis_version as string;
  if (typeof r.backup_source === "string" && r.backup_source !== "master") i.backupSource = r.backup_source as BackupSource;
  if (r.deleted_at !== null) i.deletedAt = r.deleted_at as number;
  if (r.encrypt_backups === 1 || r.encrypt_backups === 0) i.encryptBackups = r.encrypt_backups === 1;
  return i;
}

export function toTask(r: Row): Task {
  const t: Task = {
    taskId: r.task_id as number,
    instanceId: r.instance_id as string,
    accountId: r.account_id as string,
    taskType: r.task_type as string,
    status: r.status as TaskStatus,
    progress: r.progress as number,
    startTime: r.start_time as number,
    message: r.message as string,
  };
  if (r.end_time !== null) t.endTime = r.end_time as number;
  if (r.backup_id !== null) t.backupId = r.backup_id as string;
  if (r.owner !== null && r.owner !== undefined) t.owner = r.owner as string;
  if (r.lease_until !== null && r.lease_until !== undefined) t.leaseUntil = r.lease_until as number;
  if (typeof r.params === "string") t.params = JSON.parse(r.params) as Record<string, unknown>;
  if (typeof r.state === "string") t.state = JSON.parse(r.state) as Record<string, unknown>;
  return t;
}

export function toCredential(r: Row): Credential {
  const c: Credential = { secretId: r.secret_id as string, secretKey: r.secret_key as string, accountId: r.account_id as string };
  if (r.token) c.token = r.token as string;
  if (r.policy) c.policy = JSON.parse(r.policy as string) as Policy;
  return c;
}

export function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export const BACKUP_FIELD_COLUMNS: Record<string, string> = {
  startTime: "start_time", endTime: "end_time", backupType: "backup_type", status: "status", remark: "remark", locked: "locked",
  backupSize: "backup_size", instanceType: "instance_type", fileType: "file_type", expireTime: "expire_time", files: "files", deletedAt: "deleted_at", source: "source",
  encrypted: "encrypted", kmsKeyId: "kms_key_id", wrappedKey: "wrapped_key",
};

export function backupColumns(fields: Partial<Omit<Backup, "backupId" | "instanceId">>): Record<string, unknown> {
  const cols: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    const col = BACKUP_FIELD_COLUMNS[k];
    if (!col) continue;
    cols[col] = k === "files" || (k === "source" && v !== undefined) ? JSON.stringify(v) : k === "encrypted" ? (v ? 1 : 0) : v ?? null;
  }
  return cols;
}

export const TASK_FIELD_COLUMNS: Record<string, string> = {
  status: "status", progress: "progress", endTime: "end_time", message: "message", backupId: "backup_id", state: "state", owner: "owner", leaseUntil: "lease_until",
};

export function taskColumns(fields: TaskFields): Record<string, unknown> {
  const cols: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    const col = TASK_FIELD_COLUMNS[k];
    if (!col) continue;
    cols[col] = k === "state" ? (v === undefined ? null : JSON.stringify(v)) : v ?? null;
  }
  return cols;
}

/** The values of BACKUP_COLUMNS, in order, for an INSERT. */
export function backupValues(b: Backup): unknown[] {
  return [b.backupId, b.instanceId, b.startTime, b.endTime ?? null, b.backupType, b.status, b.remark, b.locked, b.backupSize, b.fullBackup, b.instanceType,
    b.fileType, b.expireTime ?? null, b.encrypted ? 1 : 0, JSON.stringify(b.files), b.deletedAt ?? null, b.fixture ? 1 : 0, b.source ? JSON.stringify(b.source) : null,
    b.kmsKeyId ?? null, b.wrappedKey ?? null];
}

export const TASK_INSERT_COLUMNS = "instance_id, account_id, task_type, status, progress, start_time, end_time, message, backup_id, owner, lease_until, params, state";

/** The values of TASK_INSERT_COLUMNS, in order. */
export function taskValues(t: Omit<Task, "taskId">): unknown[] {
  return [t.instanceId, t.accountId, t.taskType, t.status, t.progress, t.startTime, t.endTime ?? null, t.message, t.backupId ?? null, t.owner ?? null, t.leaseUntil ?? null,
    t.params ? JSON.stringify(t.params) : null, t.state ? JSON.stringify(t.state) : null];
}

export const INSTANCE_INSERT_COLUMNS = "instance_id, account_id, region, name, redis_url, instance_type, shard_num, redis_version, mem_size_mb, created_at, auto_backup_weekdays, auto_backup_period, backup_storage_days, last_auto_window, backup_source, encrypt_backups";

/** The values of INSTANCE_INSERT_COLUMNS, in order. */
export function instanceValues(i: Instance): unknown[] {
  return [i.instanceId, i.accountId, i.region, i.name, i.redisUrl ?? null, i.instanceType, i.shardNum, i.redisVersion ?? null, i.memSizeMb, i.createdAt,
    i.autoBackupWeekDays.join(","), i.autoBackupPeriod, i.backupStorageDays, i.lastAutoWindow, i.backupSource ?? "master", i.encryptBackups === undefined ? null : i.encryptBackups ? 1 : 0];
}

export const INSTANCE_FIELD_COLUMNS: Record<string, string> = {
  name: "name", instanceType: "instance_type", shardNum: "shard_num", redisVersion: "redis_version", memSizeMb: "mem_size_mb", deletedAt: "deleted_at",
  autoBackupWeekDays: "auto_backup_weekdays", autoBackupPeriod: "auto_backup_period", backupStorageDays: "backup_storage_days", lastAutoWindow: "last_auto_window", redisUrl: "redis_url",
  backupSource: "backup_source",
  encryptBackups: "encrypt_backups",
};

/** Columns of an instance update; fields given as undefined are left alone. */
export function instanceColumns(fields: InstanceFields): Record<string, unknown> {
  const cols: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    const col = INSTANCE_FIELD_COLUMNS[k];
    if (!col || v === undefined) continue;
    cols[col] = k === "autoBackupWeekDays" ? (v as string[]).join(",") : k === "encryptBackups" ? (v === null ? null : v ? 1 : 0) : v;
  }
  return cols;
}
