// Rendering catalogue records as the API's structures.
import type { Backup, Instance } from "../catalog/types";
import type { LocalTime } from "../protocol/time";
import { RawJson } from "../protocol/raw-json";

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

/** What a RedisBackupSet's JSON was made from (the fields it shows, no more: the memo stays small), and the JSON. */
interface Rendered {
  startTime: number;
  endTime: number | undefined;
  expireTime: number | undefined;
  status: number;
  backupType: string;
  remark: string;
  locked: number;
  backupSize: number;
  fullBackup: number;
  instanceType: number;
  instanceId: string;
  fileType: string;
  encrypted: boolean;
  name: string;
  region: string;
  time: LocalTime;
  json: string;
}

/**
 * The JSON of recently rendered RedisBackupSets by backup id, reused only when every value it was made from is
 * the same now (the record's fields, the instance's name and region, the time zone): a pure function's memo, so
 * a record changed by any writer (another node, another process) is rendered afresh on its next listing, whatever
 * the catalogue's caches say. Bounded: a full memo is started afresh (the rows listed are mostly the newest few
 * of each instance).
 */
const RENDERED_MAX = 20_000;
let rendered = new Map<string, Rendered>();

function sameSource(r: Rendered, b: Backup, instance: Instance, time: LocalTime): boolean {
  return r.startTime === b.startTime && r.endTime === b.endTime && r.expireTime === b.expireTime && r.status === b.status
    && r.backupType === b.backupType && r.remark === b.remark && r.locked === b.locked && r.backupSize === b.backupSize
    && r.fullBackup === b.fullBackup && r.instanceType === b.instanceType && r.instanceId === b.instanceId && r.fileType === b.fileType
    && r.encrypted === b.encrypted && r.name === instance.name && r.region === instance.region && r.time === time;
}

/**
 * A frozen record (the catalogue's cached listing pages are) cannot change: its JSON is kept with the record
 * itself, checked only against the instance's name and region and the zone.
 */
const renderedFrozen = new WeakMap<Backup, { name: string; region: string; time: LocalTime; json: string }>();

/** `JSON.stringify(redisBackupSet(b, instance, time))`, memoised (see `rendered`). */
export function redisBackupSetJson(b: Backup, instance: Instance, time: LocalTime): string {
  if (Object.isFrozen(b)) {
    const f = renderedFrozen.get(b);
    if (f && f.name === instance.name && f.region === instance.region && f.time === time) return f.json;
    const json = JSON.stringify(redisBackupSet(b, instance, time));
    renderedFrozen.set(b, { name: instance.name, region: instance.region, time, json });
    return json;
  }
  const r = rendered.get(b.backupId);
  if (r && sameSource(r, b, instance, time)) return r.json;
  const json = JSON.stringify(redisBackupSet(b, instance, time));
  if (!r && rendered.size >= RENDERED_MAX) rendered = new Map();
  rendered.set(b.backupId, {
    startTime: b.startTime, endTime: b.endTime, expireTime: b.expireTime, status: b.status, backupType: b.backupType, remark: b.remark,
    locked: b.locked, backupSize: b.backupSize, fullBackup: b.fullBackup, instanceType: b.instanceType, instanceId: b.instanceId,
    fileType: b.fileType, encrypted: b.encrypted, name: instance.name, region: instance.region, time, json,
  });
  return json;
}

/** A BackupSet array, serialised once from the memoised rows (the pipeline splices it into the response). */
export function backupSetJson(rows: readonly Backup[], instance: Instance, time: LocalTime): RawJson {
  let out = "[";
  for (let i = 0; i < rows.length; i++) out += (i ? "," : "") + redisBackupSetJson(rows[i]!, instance, time);
  return new RawJson(out + "]");
}
