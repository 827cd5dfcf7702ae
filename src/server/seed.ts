// Fixture files (like LocalStack's init data): credentials, instances and backups in the API's own field
// names, validated whole and loaded in one transaction, so a bad file changes nothing.
import crypto from "node:crypto";
import fs from "node:fs";
import { parseRedisUrl } from "../redis/client/url";
import { BACKUP_SOURCES, BackupSource } from "../records";
import { INSTANCE_ID_PATTERN, SECRET_ID_PATTERN } from "../protocol/ids";
import { DEFAULT_FILE_TYPE, DEFAULT_INSTANCE_TYPE } from "../protocol/instance-types";
import { ALL_WEEKDAYS, parsePeriod } from "../protocol/schedule";
import { LocalTime } from "../protocol/time";
import type { Catalog } from "../catalog/catalog";
import { BACKUP_STATUSES, Backup, BackupStatus, Credential, Instance } from "../catalog/types";

export const DEFAULT_ACCOUNT = "1300000000";
const DAY = 86_400_000;

/** Fields whose values never appear in an error message. */
const SECRET_FIELDS = new Set(["SecretKey", "Token", "Redis"]);

export class SeedError extends Error {
  override name = "SeedError";
}

type Json = Record<string, unknown>;

class Reader {
  constructor(private readonly where: string, private readonly obj: Json, allowed: string[]) {
    for (const k of Object.keys(obj)) if (!allowed.includes(k)) this.fail(k, `is not a known field (known: ${allowed.join(", ")})`);
  }
  fail(field: string, why: string): never {
    throw new SeedError(`${this.where}.${field}: ${why}`);
  }
  str(field: string, required: true): string;
  str(field: string, required?: false): string | undefined;
  str(field: string, required = false): string | undefined {
    const v = this.obj[field];
    if (v === undefined || v === null) {
      if (required) this.fail(field, "is required");
      return undefined;
    }
    if (typeof v !== "string") this.fail(field, SECRET_FIELDS.has(field) ? "must be a string" : `must be a string, got ${JSON.stringify(v)}`);
    if (required && v === "") this.fail(field, "must not be empty");
    return v;
  }
  int(field: string, min: number, max: number): number | undefined {
    const v = this.obj[field];
    if (v === undefined || v === null) return undefined;
    const n = typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < min || n > max) this.fail(field, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
    return n;
  }
  time(field: string, time: LocalTime): number | undefined {
    const s = this.str(field);
    if (s === undefined) return undefined;
    const t = time.parse(s);
    if (t === undefined) this.fail(field, `must be a time like 2018-09-04 12:51:21, got ${JSON.stringify(s)}`);
    return t;
  }
  strings(field: string): string[] | undefined {
    const v = this.obj[field];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) this.fail(field, "must be an array of strings");
    return v as string[];
  }
}

function list(doc: Json, key: string): Json[] {
  const v = doc[key];
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new SeedError(`${key}: must be an array`);
  return v.map((item, i) => {
    if (!item || typeof item !== "object" || Array.isArray(item)) throw new SeedError(`${key}[${i}]: must be an object`);
    return item as Json;
  });
}

export interface SeedData {
  credentials: Credential[];
  instances: Instance[];
  backups: Backup[];
  /** Instances whose fixture sets AutoBackup: their schedule is set even when they already exist. */
  schedules?: string[];
}

/** The automatic-backup schedule a fixture gives when it says nothing: every day, 00:00-01:00. */
export const DEFAULT_SCHEDULE = { weekDays: ALL_WEEKDAYS, period: "00:00-01:00" } as const;

/**
 * An instance's `AutoBackup`: `false` (no automatic backups: stored as no weekdays, which no window matches),
 * `true` (the default schedule) or `{ WeekDays, TimePeriod, BackupStorageDays }` as ModifyAutoBackupConfig takes them.
 */
function readAutoBackup(r: Reader, where: string, v: unknown): { weekDays: string[]; period: string; storageDays?: number } {
  if (v === false) return { weekDays: [], period: DEFAULT_SCHEDULE.period };
  if (v === true) return { weekDays: [...DEFAULT_SCHEDULE.weekDays], period: DEFAULT_SCHEDULE.period };
  if (!v || typeof v !== "object" || Array.isArray(v)) {
    r.fail("AutoBackup", `must be false (no automatic backups), true (every day 00:00-01:00) or an object with WeekDays, TimePeriod and BackupStorageDays, got ${JSON.stringify(v)}`);
  }
  const a: Reader = new Reader(`${where}.AutoBackup`, v as Json, ["WeekDays", "TimePeriod", "BackupStorageDays"]);
  const given = a.strings("WeekDays");
  if (given !== undefined && given.length === 0) a.fail("WeekDays", "must name at least one day; for no automatic backups write \"AutoBackup\": false");
  const days = new Set<string>();
  for (const d of given ?? DEFAULT_SCHEDULE.weekDays) {
    const day = ALL_WEEKDAYS.find((w) => w.toLowerCase() === d.toLowerCase());
    if (!day) a.fail("WeekDays", `${JSON.stringify(d)} is not one of ${ALL_WEEKDAYS.join(", ")}`);
    days.add(day);
  }
  const period = a.str("TimePeriod") ?? DEFAULT_SCHEDULE.period;
  if (!parsePeriod(period)) a.fail("TimePeriod", `must be whole hours HH:00-HH:00 with different hours (e.g. 01:00-02:00), got ${JSON.stringify(period)}`);
  return { weekDays: ALL_WEEKDAYS.filter((d) => days.has(d)), period, storageDays: a.int("BackupStorageDays", 1, 1825) };
}

/** Parses and validates a fixture document; throws SeedError naming the entry and field at fault. */
export function parseSeed(text: string, opts: { time: LocalTime; regions: (r: string) => boolean; existingInstance: (id: string) => Instance | undefined; now: number }): SeedData {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new SeedError(`the file is not valid JSON: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new SeedError("the file must hold a JSON object");
  const root = doc as Json;
  for (const k of Object.keys(root)) if (!["Credentials", "Instances", "Backups"].includes(k)) throw new SeedError(`${k}: is not a known section (Credentials, Instances, Backups)`);

  const credentials = list(root, "Credentials").map((c, i) => {
    const r: Reader = new Reader(`Credentials[${i}]`, c, ["SecretId", "SecretKey", "Account", "Token", "Policy"]);
    const cred: Credential = { secretId: r.str("SecretId", true), secretKey: r.str("SecretKey", true), accountId: r.str("Account") ?? DEFAULT_ACCOUNT };
    // The API refuses any other SecretId before looking it up, so a fixture must not hold one.
    if (!SECRET_ID_PATTERN.test(cred.secretId)) r.fail("SecretId", `must be 1 to 128 ASCII letters, digits, '_' or '-' (like AKID followed by 32 letters and digits), got ${JSON.stringify(cred.secretId.slice(0, 40))}`);
    const token = r.str("Token");
    if (token) cred.token = token;
    const policy = c.Policy;
    if (policy !== undefined) {
      if (!policy || typeof policy !== "object" || Array.isArray(policy)) r.fail("Policy", "must be an object with Actions and/or Instances");
      const pr: Reader = new Reader(`Credentials[${i}].Policy`, policy as Json, ["Actions", "Instances"]);
      cred.policy = {};
      const actions = pr.strings("Actions");
      const instances = pr.strings("Instances");
      if (actions) cred.policy.Actions = actions;
      if (instances) cred.policy.Instances = instances;
    }
    return cred;
  });

  const seen = new Map<string, Instance>();
  const schedules: string[] = [];
  const instances = list(root, "Instances").map((o, i) => {
    const r: Reader = new Reader(`Instances[${i}]`, o, ["InstanceId", "InstanceName", "Region", "Account", "Redis", "InstanceType", "BackupStorageDays", "AutoBackup", "BackupSource", "EncryptBackups"]);
    const id = r.str("InstanceId", true);
    if (!INSTANCE_ID_PATTERN.test(id)) r.fail("InstanceId", `must be crs- followed by 8 lower-case letters or digits, got ${JSON.stringify(id)}`);
    if (seen.has(id)) r.fail("InstanceId", `${id} appears twice`);
    const region = r.str("Region", true);
    if (!opts.regions(region)) r.fail("Region", `${JSON.stringify(region)} is not a region of this server`);
    const redis = r.str("Redis");
    if (redis !== undefined) {
      try {
        parseRedisUrl(redis);
      } catch (err) {
        r.fail("Redis", (err as Error).message);
      }
    }
    const source = r.str("BackupSource");
    if (source !== undefined && !BACKUP_SOURCES.includes(source as BackupSource)) r.fail("BackupSource", `must be one of ${BACKUP_SOURCES.join(", ")}, got ${JSON.stringify(source)}`);
    if (source !== undefined && redis === undefined) r.fail("BackupSource", "needs Redis (an instance without a server is never backed up)");
    const auto = o.AutoBackup === undefined ? undefined : readAutoBackup(r, `Instances[${i}]`, o.AutoBackup);
    const days = r.int("BackupStorageDays", 1, 1825);
    if (days !== undefined && auto?.storageDays !== undefined && days !== auto.storageDays) {
      r.fail("BackupStorageDays", `is ${days} but AutoBackup.BackupStorageDays is ${auto.storageDays}; give one of them`);
    }
    const inst: Instance = {
      instanceId: id, accountId: r.str("Account") ?? DEFAULT_ACCOUNT, region, name: r.str("InstanceName") ?? id,
      instanceType: r.int("InstanceType", 1, 1000) ?? DEFAULT_INSTANCE_TYPE, shardNum: 1, memSizeMb: 0, createdAt: opts.now,
      autoBackupWeekDays: auto?.weekDays ?? [...DEFAULT_SCHEDULE.weekDays], autoBackupPeriod: auto?.period ?? DEFAULT_SCHEDULE.period,
      backupStorageDays: days ?? auto?.storageDays ?? 7, lastAutoWindow: 0,
    };
    if (auto) schedules.push(id);
    if (redis !== undefined) inst.redisUrl = redis;
    if (source !== undefined && source !== "master") inst.backupSource = source as BackupSource;
    // Whether its real backups are encrypted at rest (absent: as the server's --encrypt-backups says).
    const encrypt = o.EncryptBackups;
    if (encrypt !== undefined && typeof encrypt !== "boolean") r.fail("EncryptBackups", "must be true or false");
    if (encrypt !== undefined) inst.encryptBackups = encrypt as boolean;
    seen.set(id, inst);
    return inst;
  });

  const backupIds = new Set<string>();
  const backups = list(root, "Backups").map((o, i) => {
    const r: Reader = new Reader(`Backups[${i}]`, o, [
      "InstanceId", "BackupId", "StartTime", "EndTime", "BackupType", "Status", "Remark", "Locked", "BackupSize", "FullBackup",
      "FileType", "ExpireTime", "InstanceType", "Encrypted",
    ]);
    const instanceId = r.str("InstanceId", true);
    const inst = seen.get(instanceId) ?? opts.existingInstance(instanceId);
    if (!inst) r.fail("InstanceId", `${instanceId} is neither in Instances nor already registered`);
    const backupId = r.str("BackupId") ?? crypto.randomUUID();
    if (backupIds.has(backupId)) r.fail("BackupId", `${backupId} appears twice`);
    backupIds.add(backupId);
    const status = r.int("Status", -1000, 1000) ?? 2;
    if (!(BACKUP_STATUSES as readonly number[]).includes(status)) r.fail("Status", `must be one of 1, 2, 3, 4, -1, -2, got ${status}`);
    const backupType = r.str("BackupType") ?? "0";
    if (!["0", "1", "2"].includes(backupType)) r.fail("BackupType", `must be "0" (manual), "1" (automatic) or "2", got ${JSON.stringify(backupType)}`);
    const start = r.time("StartTime", opts.time) ?? opts.now;
    const end = r.time("EndTime", opts.time) ?? start;
    if (end < start) r.fail("EndTime", "is before StartTime");
    const encrypted = o.Encrypted;
    if (encrypted !== undefined && typeof encrypted !== "boolean") r.fail("Encrypted", "must be true or false");
    const b: Backup = {
      backupId, instanceId, startTime: start, endTime: end, backupType, status: status as BackupStatus, remark: r.str("Remark") ?? "",
      locked: r.int("Locked", 0, 1) ?? 0, backupSize: r.int("BackupSize", 0, Number.MAX_SAFE_INTEGER) ?? 0, fullBackup: r.int("FullBackup", 0, 1) ?? 0,
      instanceType: r.int("InstanceType", 1, 1000) ?? inst.instanceType, fileType: r.str("FileType") ?? DEFAULT_FILE_TYPE,
      expireTime: r.time("ExpireTime", opts.time) ?? start + inst.backupStorageDays * DAY, encrypted: encrypted === true, files: [], fixture: true,
    };
    return b;
  });
  return { credentials, instances, backups, schedules };
}

/** Loads a fixture file into the catalogue, all or nothing. */
export async function loadSeedFile(catalog: Catalog, file: string, time: LocalTime, regions: (r: string) => boolean, now = Date.now()): Promise<SeedData> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new SeedError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const known = new Map((await catalog.instances()).map((i) => [i.instanceId, i]));
  const data = parseSeed(text, { time, regions, existingInstance: (id) => known.get(id), now });
  await catalog.transaction(async (tx) => {
    for (const c of data.credentials) await tx.putCredential(c);
    for (const i of data.instances) {
      await tx.upsertInstance(i);
      // Loading a fixture again (every start with --seed) keeps a schedule changed through the API, unless the
      // fixture sets one itself: then the fixture's is in force.
      if (data.schedules?.includes(i.instanceId)) await tx.updateInstance(i.instanceId, { autoBackupWeekDays: i.autoBackupWeekDays, autoBackupPeriod: i.autoBackupPeriod });
    }
    for (const b of data.backups) await tx.upsertBackup(b);
  });
  return data;
}
