// DescribeInstances: the caller's instances in the region. Every field of the API's InstanceSet model is present
// (the API marks all but IPv6, BackupMode and DeleteProtectionSwitch as always returned, and clients iterate
// NodeSet or dereference ZoneId, Type, Status, Createtime, WanIp, RedisShardSize, ... without nil checks), in the
// model's order, with the empty value ("", 0, []) where a cloud notion means nothing for a self-hosted Redis.
import net from "node:net";
import { dataPassword, parseRedisUrl, shownAddress } from "../redis/client/url";
import type { Instance } from "../catalog/types";
import { isClusterType } from "../protocol/instance-types";
import type { LocalTime } from "../protocol/time";
import { defineAction, ID_MAX_LENGTH, pageParams } from "./action";

const range = "InvalidParameter.InvalidParameter" as const;
/** The cloud's "no such time" (an instance that is not prepaid, not isolated). */
const NO_TIME = "0000-00-00 00:00:00";

/** Status 1 (in a flow) while a clone loads, else 2 (running). */
function instanceSet(i: Instance, time: LocalTime, secondLevel: boolean, loading = false): Record<string, unknown> {
  let host = "";
  let port = 0;
  let noAuth = true;
  if (i.redisUrl) {
    const url = parseRedisUrl(i.redisUrl);
    ({ host, port } = shownAddress(url));
    noAuth = !dataPassword(url);
  }
  const ipv6 = net.isIPv6(host) ? host : "";
  const cluster = isClusterType(i.instanceType);
  const shards = Math.max(1, i.shardNum);
  return {
    InstanceName: i.name, InstanceId: i.instanceId, Appid: Number(i.accountId) || 0, ProjectId: 0, RegionId: 0, ZoneId: 0, VpcId: 0, SubnetId: 0,
    Status: loading ? 1 : 2, WanIp: host, Port: port, Createtime: time.format(i.createdAt), Size: i.memSizeMb * shards, SizeUsed: 0,
    Type: i.instanceType, AutoRenewFlag: 0, DeadlineTime: NO_TIME, Engine: "Redis", ProductType: cluster ? "cluster" : "standalone",
    UniqVpcId: "", UniqSubnetId: "", BillingMode: 0, InstanceTitle: loading ? "流程中" : "运行中", OfflineTime: NO_TIME, SubStatus: 0, Tags: [],
    InstanceNode: [], RedisShardSize: i.memSizeMb, RedisShardNum: i.shardNum, RedisReplicasNum: 0, PriceId: 0, CloseTime: NO_TIME,
    SlaveReadWeight: 0, InstanceTags: [], ProjectName: "", NoAuth: noAuth, ClientLimit: 0, DtsStatus: 0, NetLimit: 0, PasswordFree: 0,
    Vip6: ipv6, IPv6: ipv6, ReadOnly: 0, RemainBandwidthDuration: "", DiskSize: 0, MonitorVersion: "", ClientLimitMin: 0, ClientLimitMax: 0,
    // The nodes we know of: one master per shard (replicas are not tracked), in no availability zone.
    NodeSet: Array.from({ length: shards }, (_, n) => ({ NodeType: 0, NodeId: n, ZoneId: 0, ZoneName: "" })),
    Region: i.region, WanAddress: "", PolarisServer: "", RedisClusterId: "", DedicatedClusterId: "", ProductVersion: "local",
    CurrentProxyVersion: "", CurrentRedisVersion: i.redisVersion ?? "", UpgradeProxyVersion: "", UpgradeRedisVersion: "",
    BackupMode: secondLevel ? "SecondLevelBackup" : "NormalLevelBackup", DeleteProtectionSwitch: 0,
  };
}

export default defineAction({
  name: "DescribeInstances",
  instanceParam: "InstanceId",
  schema: {
    ...pageParams(1000),
    InstanceId: { type: "string", maxLength: ID_MAX_LENGTH },
    InstanceIds: { type: "array", items: { type: "string", maxLength: ID_MAX_LENGTH }, maxItems: 100 },
    SearchKey: { type: "string", maxLength: 128 },
    InstanceName: { type: "string", maxLength: 128 },
    ProjectIds: { type: "array", items: { type: "integer" }, maxItems: 100 },
    OrderBy: { type: "string", maxLength: 32 },
    OrderType: { type: "integer", min: 0, max: 1, rangeCode: range },
  },
  async handle(p, ctx) {
    const key = p.SearchKey?.toLowerCase();
    let list = (await ctx.scope.instances()).filter((i) =>
      (p.InstanceId === undefined || i.instanceId === p.InstanceId)
      && (p.InstanceIds === undefined || p.InstanceIds.length === 0 || p.InstanceIds.includes(i.instanceId))
      && (p.InstanceName === undefined || i.name.toLowerCase().includes(p.InstanceName.toLowerCase()))
      && (key === undefined || i.instanceId.includes(key) || i.name.toLowerCase().includes(key)));
    if (p.OrderBy === "createtime") list = list.sort((a, b) => a.createdAt - b.createdAt);
    if (p.OrderType === 1) list = list.reverse();
    const offset = p.Offset ?? 0;
    const streaming = new Set((await ctx.catalog.streamConfigs("SecondLevelBackup")).map((c) => c.instanceId));
    const loading = new Set((await ctx.catalog.provisionedInstances()).filter((r) => r.state === "loading").map((r) => r.instanceId));
    return { TotalCount: list.length, InstanceSet: list.slice(offset, offset + (p.Limit ?? 20)).map((i) => instanceSet(i, ctx.time, streaming.has(i.instanceId), loading.has(i.instanceId))) };
  },
});
