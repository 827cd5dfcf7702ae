// Every server version end to end through the service: a backup of Redis 4.0, 5.0, 6.2, 7.0, 7.2, 7.4 and
// Valkey 8.0 taken with ManualBackupInstance (official SDK) is validated (header, AUX, CRC-64), listed with the
// right FileType and InstanceType, and carries the digest its server's DEBUG DIGEST reports for that data set,
// computed while it was captured. A version whose binary is missing is skipped with a message.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { send } from "./support/dataset";
import { RedisProcess, waitFor } from "./support/redis";
import { KEY, SdkClient, startTestServer, TestServer, waitForTask } from "./support/server";
import { missing, startVersion, VERSIONS } from "./support/versions";

const EXPECTED: Record<string, { fileType: string; instanceType: number }> = {
  "4.0": { fileType: "RDB-Redis 4.0", instanceType: 6 },
  "5.0": { fileType: "RDB-Redis 5.0", instanceType: 8 },
  "6.2": { fileType: "RDB-Redis 6.2", instanceType: 15 },
  "7.0": { fileType: "RDB-Redis 7.0", instanceType: 17 },
  "7.2": { fileType: "RDB-Redis 7.2", instanceType: 17 },
  "7.4": { fileType: "RDB-Redis 7.4", instanceType: 17 },
  "8.6": { fileType: "RDB-Redis 8.6", instanceType: 17 },
  "valkey-8.0": { fileType: "RDB-Valkey 8.0", instanceType: 19 },
  "valkey-8.1": { fileType: "RDB-Valkey 8.1", instanceType: 19 },
  "valkey-9.1": { fileType: "RDB-Valkey 9.1", instanceType: 21 },
};

const available = VERSIONS.filter((v) => !missing(v));
const servers = new Map<string, RedisProcess>();
let srv: TestServer;
let c: SdkClient;

const idOf = (i: number) => `crs-ver0000${i}`;

before(async () => {
  for (const v of available) {
    const r = await startVersion(v);
    servers.set(v.name, r);
    const cmds: Array<Array<string | number>> = [["SET", "s", "v"], ["RPUSH", "l", "a", "b", "c"], ["SADD", "set", "1", "2", "x"], ["ZADD", "z", "1.5", "m", "2.25", "n"],
      ["HSET", "h", "f", "v"], ["SET", "ttl", "t"], ["PEXPIRE", "ttl", 3_600_000], ["SELECT", 2], ["SET", "db2", "x"]];
    if (v.streams) cmds.push(["XADD", "st", "*", "f", "v"]);
    await send(r.endpoint, cmds);
    await send(r.endpoint, [["DEBUG", "POPULATE", 2000, `p${v.name}`, 16]]);
  }
  srv = await startTestServer({
    Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
    Instances: available.map((v, i) => ({ InstanceId: idOf(i), InstanceName: v.name, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${servers.get(v.name)!.port}` })),
  }, { rateLimit: 0 });
  c = srv.client({ language: "en-US" });
});

after(async () => {
  await srv?.close();
  for (const r of servers.values()) r.kill();
});

describe("backups of every version", () => {
  for (const v of VERSIONS) {
    test(`${v.name}: captured, validated, listed as ${EXPECTED[v.name]!.fileType}, with its server's digest`, { skip: missing(v) }, async () => {
      const i = available.indexOf(v);
      const [expected] = await send(servers.get(v.name)!.endpoint, [["DEBUG", "DIGEST"]]);
      const { TaskId } = await c.ManualBackupInstance({ InstanceId: idOf(i) });
      const t = await waitForTask(c, TaskId!, 60_000);
      assert.equal(t.Status, "succeed", t.TaskMessage);
      const listed = (await c.DescribeInstanceBackups({ InstanceId: idOf(i) })).BackupSet![0]!;
      assert.equal(listed.FileType, EXPECTED[v.name]!.fileType);
      assert.equal(listed.InstanceType, EXPECTED[v.name]!.instanceType);
      // The digest is computed from the stored file after the transfer (src/jobs/digests.ts) and attached then.
      const file = await waitFor("the backup's digest", async () => (await srv.services.catalog.backup(listed.BackupId!))!.files.find((f) => f.digest), 60_000, 50);
      assert.equal(file.digest, String(expected), "the digest computed from the stored file is the server's DEBUG DIGEST");
      assert.ok(file.keys! >= 2000);
    });
  }
});
