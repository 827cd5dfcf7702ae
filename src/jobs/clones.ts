// CloneInstances as jobs (task 026, FLOW_CLONEBACKUP): a new instance whose redis-server this node provisions
// (src/instances/), loaded from a backup, or from a base and the second-level backup stream up to a second.
//
// enqueue (the action, in one transaction per clone): the instance registered with a new crs- id in the caller's
// account and region (its address: --advertise-host and a port of --clone-ports; its password), its
// provisioned_instances row (state loading, owner this node) and its task. DescribeInstances shows it with Status
// 1 until the task succeeds, 2 after.
//
// run: the plan (the backup as it is, or planPointInTime's base and units for CloneTime), the base's RDB written
// into the instance's directory, the server started on it (it loads the RDB as its own data), the units replayed
// as one raw stream of the master's bytes (redis/stream/replay-raw.ts; whole units: a MULTI/EXEC or a script's
// effects never cut), then the append-only file
// switched on and written into its redis.conf, so restarts keep the data. The row moves to ready with the success.
//
// A cluster's clone is a cluster of the same shape: one cluster-enabled redis-server per shard (ports from
// --clone-ports, directories shard-<n>), each loading its shard's RDB, made into one cluster serving the
// source's slot ranges (instances/cluster.ts), then each shard's units replayed into its own node. It is
// registered with the cluster's InstanceType and RedisShardNum, and its address is the first node's (any node
// leads a cluster client to the others).
//
// A failure, or the death of the node while it runs (recovery), undoes it all: the process killed (found by its
// pid files or the marker in its environment), the directory deleted, the row deleted (the port is free again),
// the instance's registration removed (it is not listed). No redis-server of a failed clone survives.
import fs from "node:fs";
import { pipeline } from "node:stream/promises";
import type { Catalog, CatalogTx } from "../catalog/catalog";
import type { Backup, Instance, StoredFile, Task } from "../catalog/types";
import type { Clock } from "../config";
import type { Logger } from "../log";
import type { JobContext, JobKind, JobQueue, JobSuccess, Undone } from "../queue";
import { parseInfo, RedisEndpoint, RespConnection } from "../redis/client/resp";
import { replayRaw } from "../redis/stream/replay-raw";
import type { StoredUnit } from "../redis/stream/segments";
import type { BlobStore } from "../storage/blob-store";
import { verifiedRead } from "../storage/integrity";
import type { Provisioning } from "../instances/supervisor";
import { ALL_WEEKDAYS } from "../protocol/schedule";
import { isClusterType, standaloneTypeOf } from "../protocol/instance-types";
import { backupFiles } from "./backups";
import { generateInstanceId, probeRedis } from "./instances";
import { planInstancePointInTime, PointInTimeError, unitsOfPlan } from "./point-in-time";
import { formCluster } from "../instances/cluster";
import { BackupUnavailableError } from "./errors";
import { TASK } from "./tasks";
import { testHook } from "../test-hooks";

export interface CloneJobsOptions {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  logger: Logger;
  queue: JobQueue;
  provisioning: Provisioning;
}

export interface CloneRequest {
  source: Instance;
  /** The backup to clone; with atSec, the base is the planner's (this one only has to be the source's). */
  backup: Backup;
  /** CloneTime as Unix seconds: the state at the end of that second of the source's stream. */
  atSec?: number;
  count: number;
  password?: string;
  name?: string;
}

/** How long a clone's server may take to load its RDB. */
const LOAD_TIMEOUT_MS = 30 * 60_000;

export class CloneJobs implements JobKind {
  readonly taskTypes = [TASK.clone];
  readonly pool = "redis" as const;

  constructor(private readonly o: CloneJobsOptions) {}

  /** Registers `count` new instances with their rows and tasks; their ids and task ids. */
  async enqueue(r: CloneRequest): Promise<Array<{ instanceId: string; taskId: number }>> {
    const p = this.o.provisioning;
    const out: Array<{ instanceId: string; taskId: number }> = [];
    // A cluster's clone is a cluster of as many masters as the clone loads shards: the backup's, or for a
    // second of the stream the source's masters now (bases of another shape are never planned).
    const cluster = r.atSec !== undefined
      ? isClusterType(r.source.instanceType) || r.source.shardNum > 1
      : isClusterType(r.backup.instanceType) || r.backup.files.length > 1;
    const nodes = !cluster ? 1 : r.atSec !== undefined ? Math.max(1, r.source.shardNum) : Math.max(1, r.backup.files.length);
    for (let n = 0; n < r.count; n++) {
      let made: { instanceId: string; taskId: number } | undefined;
      // Another clone (on this node or another) may take a port between the look and the insert: take the next.
      for (let attempt = 0; attempt < 20 && !made; attempt++) {
        const ports = await p.freePorts(nodes, { bus: cluster });
        const port = ports[0];
        if (port === undefined || ports.length < nodes) throw new BackupUnavailableError("status", `${nodes > 1 ? `${nodes} free ports are` : "no free port is"} ${nodes > 1 ? "not " : ""}left in --clone-ports ${p.o.ports.from}-${p.o.ports.to} on ${p.o.host}${nodes > 1 ? ` for a cluster of ${nodes} masters` : ""}`, r.backup.backupId);
        const instanceId = generateInstanceId();
        const now = this.o.clock.now();
        const auth = r.password !== undefined ? `:${encodeURIComponent(r.password)}@` : "";
        const host = p.o.host.includes(":") ? `[${p.o.host}]` : p.o.host;
        const instance: Instance = {
          instanceId, accountId: r.source.accountId, region: r.source.region, name: r.name ?? instanceId, redisUrl: `redis://${auth}${host}:${port}`,
          instanceType: cluster ? r.source.instanceType : standaloneTypeOf(r.source.instanceType), shardNum: nodes, memSizeMb: r.source.memSizeMb, createdAt: now,
          autoBackupWeekDays: ALL_WEEKDAYS, autoBackupPeriod: r.source.autoBackupPeriod, backupStorageDays: r.source.backupStorageDays, lastAutoWindow: 0,
        };
        if (r.source.redisVersion) instance.redisVersion = r.source.redisVersion;
        made = await this.o.catalog.transaction(async (tx) => {
          await tx.upsertInstance(instance);
          const taskId = await tx.insertTask({
            instanceId, accountId: r.source.accountId, taskType: TASK.clone, status: "preparing", progress: 0, startTime: now, message: "", backupId: r.backup.backupId,
            params: { sourceInstanceId: r.source.instanceId, ...(r.atSec !== undefined ? { cloneTime: r.atSec } : {}) },
          });
          const ok = await tx.insertProvisioned({
            instanceId, owner: p.o.owner, provider: p.provider.name, port, ...(cluster ? { clusterPorts: ports } : {}), dataDir: p.dataDirOf(instanceId), state: "loading", taskId, createdAt: now,
          });
          if (!ok) throw new PortTaken();
          return { instanceId, taskId };
        }).catch((err: unknown) => {
          if (err instanceof PortTaken) return undefined;
          throw err;
        });
      }
      if (!made) throw new BackupUnavailableError("status", "could not reserve a port for the clone (every attempt collided with another clone)", r.backup.backupId);
      out.push(made);
    }
    this.o.queue.kick();
    return out;
  }

  /**
   * What a clone loads, one part per shard of the source (a standalone source: one): the RDB file and the stream
   * units after it — the backup's files as they are, or each shard's base and units up to the second.
   */
  private async plan(task: Task): Promise<{ parts: Array<{ file: StoredFile; units: StoredUnit[] }>; what: string }> {
    const atSec = task.params?.cloneTime as number | undefined;
    const sourceId = task.params?.sourceInstanceId as string;
    if (atSec === undefined) {
      const backup = task.backupId ? await this.o.catalog.backup(task.backupId) : undefined;
      if (!backup || (backup.status !== 2 && backup.status !== 4) || !backup.files.length) throw new Error(`backup ${task.backupId} can no longer be cloned`);
      const files = backupFiles(backup);
      return { parts: files.map((file) => ({ file, units: [] })), what: `backup ${backup.backupId}${files.length > 1 ? ` (${files.length} shards)` : ""}` };
    }
    const [config, source] = await Promise.all([this.o.catalog.streamConfig(sourceId), this.o.catalog.instance(sourceId)]);
    if (!config) throw new PointInTimeError(`second-level backup was never switched on for ${sourceId}`);
    const plans = await planInstancePointInTime(this.o.catalog, config, atSec, this.o.clock.now(), source?.shardNum);
    const parts = await Promise.all(plans.map(async (plan) => ({ plan, file: backupFiles(plan.backup)[0]!, units: await unitsOfPlan(this.o.store, plan) })));
    const each = parts.map(({ plan, units }) => `base ${plan.backup.backupId} + ${units.length} unit(s) of the stream (to offset ${units.length ? units.at(-1)!.end : plan.base.offset})`);
    const what = parts.length === 1 ? each[0]! : `${parts.length} shards: ${each.map((x, i) => `shard ${i}: ${x}`).join("; ")}`;
    return { parts, what: `${sourceId} at the end of second ${atSec}: ${what}` };
  }

  async run(ctx: JobContext): Promise<JobSuccess> {
    const p = this.o.provisioning;
    const id = ctx.task.instanceId;
    const row = await this.o.catalog.provisioned(id);
    const instance = await this.o.catalog.instance(id);
    if (!row || !instance || row.state !== "loading") throw new Error(`the clone ${id} is no longer provisioned`);
    // The node running the task owns the process from now on (it may not be the one that was asked).
    if (row.owner !== p.o.owner) await this.o.catalog.setProvisionedState(id, ["loading"], "loading", p.o.owner);
    const specs = p.nodesOf({ ...row, owner: p.o.owner }, instance);
    const cluster = row.clusterPorts !== undefined;
    const { parts, what } = await this.plan(ctx.task);
    if (parts.length !== specs.length) throw new Error(`the clone ${id} was provisioned with ${specs.length} server(s) for ${parts.length} shard(s) (the source changed shape since it was asked)`);
    await this.o.catalog.updateTask(ctx.task.taskId, { message: `cloning ${what}` }).catch(() => undefined);
    // Each shard's RDB into its node's directory; a standalone clone has one of each.
    for (const [i, spec] of specs.entries()) {
      const { dataFile } = await p.provider.prepare(spec);
      await pipeline(await verifiedRead(this.o.store, parts[i]!.file, { decompress: true }), fs.createWriteStream(dataFile, { mode: 0o600 }), { signal: ctx.signal });
    }
    ctx.progress(20);
    for (const spec of specs) await p.provider.start(spec);
    testHook("clone-loading"); // tests: the node dies with the clone's server started, loading
    const eps: RedisEndpoint[] = specs.map((spec) => ({ host: spec.host, port: spec.port, ...(spec.password !== undefined ? { password: spec.password } : {}) }));
    for (const [i, spec] of specs.entries()) await this.waitLoaded(spec, eps[i]!, ctx.signal);
    ctx.progress(50);
    if (cluster) await formCluster(eps, parts.map((x) => x.file.slots), ctx.signal);
    ctx.progress(70);
    // Each shard's units after its base into its own node (shards own disjoint slots: their order between shards
    // is free).
    let replay: { commands: number; ms: number } | undefined;
    for (const [i, { units }] of parts.entries()) {
      if (!units.length) continue;
      const r = await replayRaw(eps[i]!, units);
      if (r.errors) throw new Error(`replaying the stream${parts.length > 1 ? ` of shard ${i}` : ""} into the clone gave ${r.errors} error(s), the first: ${r.firstError ?? ""}`);
      replay = { commands: (replay?.commands ?? 0) + r.commands, ms: (replay?.ms ?? 0) + r.ms };
    }
    ctx.progress(90);
    for (const [i, spec] of specs.entries()) await persist(eps[i]!, spec.dataDir);
    const probe = await probeRedis(instance.redisUrl!, { timeoutMs: 10_000 }).catch(() => undefined);
    const shape = cluster ? `a cluster of ${specs.length} master(s) on ${specs.map((x) => x.port).join(", ")}` : `${specs[0]!.host}:${specs[0]!.port}`;
    return {
      message: `cloned ${what} into ${id} (${shape})${replay ? `; ${replay.commands} command(s) replayed in ${replay.ms} ms` : ""}`,
      commit: async (tx) => {
        if (!(await tx.setProvisionedState(id, ["loading"], "ready"))) throw new Error(`the clone ${id} was removed while it loaded`);
        if (probe) await tx.updateInstance(id, { redisVersion: probe.redisVersion, instanceType: probe.instanceType, memSizeMb: probe.memSizeMb, shardNum: probe.shardNum });
      },
    };
  }

  /** Resolves once the server answers PING (its RDB loaded); fails when the process is gone or it takes too long. */
  private async waitLoaded(spec: Parameters<Provisioning["provider"]["alive"]>[0], ep: RedisEndpoint, signal: AbortSignal): Promise<void> {
    const provider = this.o.provisioning.provider;
    const deadline = Date.now() + LOAD_TIMEOUT_MS;
    let last = "";
    for (let n = 0; ; n++) {
      signal.throwIfAborted();
      try {
        const c = await RespConnection.connect(ep, 2_000);
        try {
          if (String(await c.command("PING")) === "PONG") return;
        } finally {
          c.close();
        }
      } catch (err) {
        last = (err as Error).message;
      }
      // Give the process a moment to write its pid file before asking whether it lives.
      if (n > 10 && !(await provider.alive(spec))) throw new Error(`the clone's redis-server stopped while loading: ${(await provider.logTail(spec)) || last}`);
      if (Date.now() > deadline) throw new Error(`the clone's redis-server did not finish loading within ${LOAD_TIMEOUT_MS / 60_000} min (${last})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async undo(task: Task): Promise<Undone> {
    const p = this.o.provisioning;
    const row = await this.o.catalog.provisioned(task.instanceId);
    const instance = await this.o.catalog.instance(task.instanceId);
    await p.destroy(row ?? { instanceId: task.instanceId, owner: p.o.owner, provider: p.provider.name, port: 0, dataDir: p.dataDirOf(task.instanceId), state: "loading", createdAt: 0 }, instance);
    const ports = row?.clusterPorts ?? (row ? [row.port] : []);
    return { note: `the half-made clone ${task.instanceId} was removed (process${ports.length > 1 ? "es" : ""} stopped, directory deleted, port${ports.length > 1 ? "s" : ""} ${ports.join(", ") || "-"} freed)` };
  }

  async failed(tx: CatalogTx, task: Task): Promise<void> {
    await tx.deleteProvisioned(task.instanceId);
    const i = await tx.instance(task.instanceId);
    if (i && i.deletedAt === undefined) await tx.updateInstance(task.instanceId, { deletedAt: this.o.clock.now() });
  }
}

class PortTaken extends Error {}

/** Switches the append-only file on (a rewrite of the loaded data set), waits for it, and writes it into redis.conf. */
async function persist(ep: RedisEndpoint, dataDir: string): Promise<void> {
  const c = await RespConnection.connect(ep, 10_000);
  try {
    await c.command("CONFIG", "SET", "appendonly", "yes");
    const deadline = Date.now() + LOAD_TIMEOUT_MS;
    for (;;) {
      const info = parseInfo(await c.command("INFO", "persistence"));
      if (info.get("aof_enabled") === "1" && info.get("aof_rewrite_in_progress") === "0" && info.get("aof_rewrite_scheduled") === "0") break;
      if (Date.now() > deadline) throw new Error("the clone's append-only file was not written in time");
      await new Promise((r) => setTimeout(r, 50));
    }
    await c.command("CONFIG", "REWRITE");
  } finally {
    c.close();
  }
  // CONFIG REWRITE writes a new file: it holds requirepass, so it stays owner-only.
  await fs.promises.chmod(`${dataDir}/redis.conf`, 0o600).catch(() => undefined);
}
