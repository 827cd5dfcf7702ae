// Rendering catalogue records as the API's structures.
import type { Backup, Instance } from "../catalog/types";
import type { LocalTime } from "../protocol/time";

/** A RedisBackupSet: all sixteen fields, times in the server's zone. */
export function redisBackupSet(b: Backup, instance: Instance, time: LocalTime): Record<string, unknown> {
  return {
    StartTime: time.format(b.startTime),
    BackupId: b.backupId,
    BackupType: b.backupType,
    Status: b.status,
    Remark: b.remark,
    Locked: b.locked,
    BackupSize: b.backupSize,
    FullBackup: b.fullBackup,
    InstanceType: b.instanceType,
    InstanceId: b.instanceId,
    InstanceName: instance.name,
    Region: instance.region,
    EndTime: b.endTime !== undefined ? time.format(b.endTime) : "",
    FileType: b.fileType,
    ExpireTime: b.expireTime !== undefined ? time.format(b.expireTime) : "",
    Encrypted: b.encrypted,
  };
}
