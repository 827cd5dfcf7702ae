// Lists an instance's backups through the official Tencent Cloud SDK, pointed at crs-backup.
// Start a server with the quick-start fixture first:  npx crs-backup serve --seed examples/quickstart.json
// CRS_ENDPOINT, CRS_SECRET_ID and CRS_SECRET_KEY override the fixture's endpoint and key.
import * as tencentcloud from "tencentcloud-sdk-nodejs";

const client = new tencentcloud.redis.v20180412.Client({
  credential: {
    secretId: process.env.CRS_SECRET_ID ?? "AKIDquickstart00000000000000000001",
    secretKey: process.env.CRS_SECRET_KEY ?? "quickstartSecretKey0000000000001",
  },
  region: "ap-guangzhou",
  profile: { httpProfile: { endpoint: process.env.CRS_ENDPOINT ?? "127.0.0.1:9000", protocol: "http://" } },
});

async function main() {
  const { InstanceSet } = await client.DescribeInstances({});
  for (const i of InstanceSet) console.log(`instance ${i.InstanceId} (${i.InstanceName})`);

  const page = await client.DescribeInstanceBackups({ InstanceId: "crs-5a4py64p", Limit: 20, Status: [2] });
  console.log(`${page.TotalCount} kept backup(s):`);
  for (const b of page.BackupSet) console.log(`  ${b.BackupId}  ${b.StartTime}  ${b.BackupSize} bytes  ${b.Remark}`);
}

main().catch((err) => {
  console.error(`${err.code ?? err.name}: ${err.message}`);
  process.exitCode = 1;
});
