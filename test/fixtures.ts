// The fixture most API tests share: two accounts, several regions, policies, a token, and 45 backups with
// every status, equal start times and a known order.
import { KEY } from "./support/server";

export const OTHER = { secretId: "AKIDtestother0000000000000000002", secretKey: "othersecret", account: "1300000002" };
export const LIMITED = { secretId: "AKIDtestlimited00000000000000003", secretKey: "limitedsecret" };
export const NO_ACTION = { secretId: "AKIDtestnoaction0000000000000004", secretKey: "noactionsecret" };
export const TEMP = { secretId: "AKIDtesttemp00000000000000000005", secretKey: "tempsecret", token: "session-token-5" };

export const MAIN = "crs-aaaaaaaa";
export const SECOND = "crs-aaaabbbb";
export const SHANGHAI = "crs-bbbbbbbb";
export const FINANCE = "crs-fsi00001";
export const FOREIGN = "crs-cccccccc";

export interface FixtureBackup {
  InstanceId: string;
  BackupId: string;
  StartTime: string;
  EndTime: string;
  Status: number;
  BackupType: string;
  Remark: string;
  BackupSize: number;
}

const STATUSES = [2, 2, 1, 4, -1, -2, 3, 2];

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

export function makeBackups(): FixtureBackup[] {
  const out: FixtureBackup[] = [];
  for (let i = 0; i < 45; i++) {
    // Backups 10, 11 and 12 share a start time, to pin the tie order (BackupId ascending).
    const hour = i >= 10 && i <= 12 ? 10 : i;
    const day = 1 + Math.floor(hour / 24);
    const start = `2024-03-${pad(day)} ${pad(hour % 24)}:15:00`;
    const end = `2024-03-${pad(day)} ${pad(hour % 24)}:16:30`;
    const id = `0000${pad(i)}00-0000-4000-8000-${String(1000 - i * 7).padStart(12, "0")}`;
    out.push({ InstanceId: MAIN, BackupId: id, StartTime: start, EndTime: end, Status: STATUSES[i % STATUSES.length]!, BackupType: i % 3 === 0 ? "1" : "0", Remark: `backup ${i}`, BackupSize: 1000 + i });
  }
  return out;
}

/** The order the API promises: newest start first, equal starts by BackupId ascending. */
export function expectedOrder(backups: FixtureBackup[]): FixtureBackup[] {
  return [...backups].sort((a, b) => (a.StartTime === b.StartTime ? (a.BackupId < b.BackupId ? -1 : 1) : a.StartTime < b.StartTime ? 1 : -1));
}

export const BACKUPS = makeBackups();

export const SEED = {
  Credentials: [
    { SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account },
    { SecretId: OTHER.secretId, SecretKey: OTHER.secretKey, Account: OTHER.account },
    { SecretId: LIMITED.secretId, SecretKey: LIMITED.secretKey, Account: KEY.account, Policy: { Actions: ["DescribeInstanceBackups"], Instances: [MAIN] } },
    { SecretId: NO_ACTION.secretId, SecretKey: NO_ACTION.secretKey, Account: KEY.account, Policy: { Actions: ["DescribeInstances"] } },
    { SecretId: TEMP.secretId, SecretKey: TEMP.secretKey, Account: KEY.account, Token: TEMP.token },
  ],
  Instances: [
    { InstanceId: MAIN, InstanceName: "Orders-Main", Region: "ap-guangzhou", Account: KEY.account },
    { InstanceId: SECOND, InstanceName: "second", Region: "ap-guangzhou", Account: KEY.account },
    { InstanceId: SHANGHAI, InstanceName: "sh", Region: "ap-shanghai", Account: KEY.account },
    { InstanceId: FINANCE, InstanceName: "fin", Region: "ap-shanghai-fsi", Account: KEY.account },
    { InstanceId: FOREIGN, InstanceName: "theirs", Region: "ap-guangzhou", Account: OTHER.account },
  ],
  Backups: [
    ...BACKUPS,
    { InstanceId: SHANGHAI, BackupId: "5a000000-0000-4000-8000-000000000001", StartTime: "2024-03-01 01:00:00" },
    { InstanceId: FINANCE, BackupId: "f1000000-0000-4000-8000-000000000001", StartTime: "2024-03-01 02:00:00" },
    { InstanceId: FOREIGN, BackupId: "c0000000-0000-4000-8000-000000000001", StartTime: "2024-03-01 03:00:00" },
  ],
};
