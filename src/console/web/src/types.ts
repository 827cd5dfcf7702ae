// The shapes of the API answers the console reads.

export interface OverviewInstance {
  InstanceId: string;
  InstanceName: string;
  Region: string;
  Type: number;
  RedisVersion: string;
  ShardNum: number;
  Size: number;
  Createtime: string;
  Registered: boolean;
  WanIp: string;
  Port: number;
  /** Which node of each shard backups are taken from. */
  BackupSource: BackupSourceMode;
  AutoBackup: { WeekDays: string[]; TimePeriod: string; BackupStorageDays: number } | null;
  NextWindow: { StartTime: string; EndTime: string; InSeconds: number } | null;
  BackupCount: number | null;
  LastBackup: { BackupId: string; StartTime: string; EndTime: string; Status: number; BackupType: string; BackupSize: number; AgeSeconds: number } | null;
  Trend: Array<{ BackupId: string; StartTime: string; BackupSize: number; DurationSeconds: number | null }> | null;
}

export type BackupSourceMode = "master" | "replica" | "prefer-replica";
export const BACKUP_SOURCE_MODES: readonly BackupSourceMode[] = ["master", "replica", "prefer-replica"];

/** DescribeBackupSources: the node each shard of a backup was taken from. */
export interface BackupSources {
  BackupId: string;
  Sources: Array<{ Shard: number; Role: "master" | "replica"; Node: string; Offset: number | null }>;
}

export interface Overview {
  TotalCount: number;
  ServerTime: string;
  TimeZone: string;
  InstanceSet: OverviewInstance[];
}

/** RedisBackupSet: all sixteen fields. */
export interface BackupSet {
  StartTime: string;
  BackupId: string;
  BackupType: string;
  Status: number;
  Remark: string;
  Locked: number;
  BackupSize: number;
  FullBackup: number;
  InstanceType: number;
  InstanceId: string;
  InstanceName: string;
  Region: string;
  EndTime: string;
  FileType: string;
  ExpireTime: string;
  Encrypted: boolean;
}

export interface BackupPage {
  TotalCount: number;
  BackupSet: BackupSet[];
}

export interface TaskRow {
  TaskId: number;
  StartTime: string;
  TaskType: string;
  InstanceName: string;
  InstanceId: string;
  ProjectId: number;
  Progress: number;
  EndTime: string;
  Result: number;
}

export interface TaskPage {
  TotalCount: number;
  Tasks: TaskRow[];
}
