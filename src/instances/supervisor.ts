// The instances this node provisions (CloneInstances): their ports, their specs, and the supervision loop. Each
// pass (every --poll interval) looks at the provisioned_instances rows this node owns: a ready instance whose
// process is not alive is started again (it died, or the machine rebooted) on its append-only file; a row left
// in `removing` (a removal interrupted) is finished. A `loading` row belongs to its clone task (jobs/clones.ts),
// whose recovery removes a half-made clone. Stopping the node stops the loop, not the instances: they keep
// serving, and the next start of the node finds them alive.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Catalog } from "../catalog/catalog";
import type { Instance, ProvisionedInstance } from "../catalog/types";
import type { Clock } from "../config";
import type { Logger } from "../log";
import { parseRedisUrl } from "../redis/client/url";
import type { InstanceProvider, InstanceSpec } from "./provider";

export interface PortRange {
  from: number;
  to: number;
}

export const DEFAULT_CLONE_PORTS: PortRange = { from: 7400, to: 7499 };

/** `7400-7499` (or one port) as a range; undefined when it does not read. */
export function parsePortRange(text: string): PortRange | undefined {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5}))?\s*$/.exec(text);
  if (!m) return undefined;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  return from >= 1024 && to <= 65535 && from <= to ? { from, to } : undefined;
}

/** Who owns provisioned processes: the configured node id, else the host name (stable across restarts). */
export function provisioningOwner(nodeId: string | undefined): string {
  return nodeId ?? os.hostname();
}

export interface ProvisioningOptions {
  catalog: Catalog;
  provider: InstanceProvider;
  logger: Logger;
  clock: Clock;
  owner: string;
  /** DATA/instances */
  root: string;
  host: string;
  ports: PortRange;
  pollMs: number;
}

function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export class Provisioning {
  private timer: NodeJS.Timeout | undefined;
  private passing: Promise<void> | undefined;
  /** Instances a pass is starting now (a slow start is not started twice). */
  private readonly starting = new Set<string>();

  constructor(readonly o: ProvisioningOptions) {}

  get provider(): InstanceProvider {
    return this.o.provider;
  }

  dataDirOf(instanceId: string): string {
    return path.join(this.o.root, instanceId);
  }

  /** What the provider is told about an instance: its row's port and directory, its registration's address and password. */
  specOf(row: ProvisionedInstance, instance: Instance | undefined): InstanceSpec {
    const spec: InstanceSpec = { instanceId: row.instanceId, host: this.o.host, port: row.port, dataDir: row.dataDir };
    const url = instance?.redisUrl ? parseRedisUrl(instance.redisUrl) : undefined;
    if (url?.kind === "direct") {
      spec.host = url.endpoint.host;
      if (url.endpoint.password) spec.password = url.endpoint.password;
    }
    return spec;
  }

  /**
   * The servers of an instance: one (its spec), or for a cluster-shaped one a node per shard, each on its port in
   * its own directory `shard-<n>` under the instance's.
   */
  nodesOf(row: ProvisionedInstance, instance: Instance | undefined): InstanceSpec[] {
    const spec = this.specOf(row, instance);
    if (!row.clusterPorts) return [spec];
    return row.clusterPorts.map((port, shard) => ({ ...spec, port, dataDir: path.join(row.dataDir, `shard-${shard}`), cluster: true }));
  }

  /**
   * Stops every server of an instance at once and deletes its directory: the nodes its row names and any
   * `shard-<n>` directory found under it (a row may be gone, or name fewer nodes than were started).
   */
  async destroy(row: ProvisionedInstance, instance: Instance | undefined): Promise<void> {
    const specs = this.nodesOf(row, instance);
    const known = new Set(specs.map((s) => s.dataDir));
    for (const entry of await fs.promises.readdir(row.dataDir).catch(() => [] as string[])) {
      const dir = path.join(row.dataDir, entry);
      if (/^shard-\d+$/.test(entry) && !known.has(dir)) specs.push({ ...this.specOf(row, instance), dataDir: dir, cluster: true });
    }
    for (const spec of specs) await this.o.provider.destroy(spec);
    await this.o.provider.destroy(this.specOf(row, instance));
  }

  /**
   * Ports of the range that no provisioned instance holds and that are free on the host now, lowest first; for
   * the nodes of a cluster (`bus`), their cluster bus port (port + 10000) is free too.
   */
  async freePorts(want: number, o: { bus?: boolean } = {}): Promise<number[]> {
    const taken = new Set((await this.o.catalog.provisionedInstances()).flatMap((p) => p.clusterPorts ?? [p.port]));
    const out: number[] = [];
    for (let port = this.o.ports.from; port <= this.o.ports.to && out.length < want; port++) {
      if (taken.has(port) || !(await bindable(this.o.host, port))) continue;
      if (o.bus && (port + 10000 > 65535 || !(await bindable(this.o.host, port + 10000)))) continue;
      out.push(port);
    }
    return out;
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.passing ??= this.pass().catch((err: unknown) => this.o.logger.error({ err }, "supervising provisioned instances failed")).finally(() => (this.passing = undefined));
    };
    tick();
    this.timer = setInterval(tick, this.o.pollMs);
    this.timer.unref();
  }

  /** Stops supervising (the instances keep running). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.passing;
  }

  /** One supervision pass over this node's instances. */
  async pass(): Promise<void> {
    for (const row of await this.o.catalog.provisionedInstances(this.o.owner)) {
      if (row.provider !== this.o.provider.name || this.starting.has(row.instanceId)) continue;
      const instance = await this.o.catalog.instance(row.instanceId);
      if (row.state === "removing") {
        await this.finishRemoval(row, instance);
      } else if (row.state === "ready") {
        // Each node of a cluster-shaped instance on its own: its nodes.conf brings it back into the cluster.
        for (const spec of this.nodesOf(row, instance)) {
          if (await this.o.provider.alive(spec)) continue;
          this.starting.add(row.instanceId);
          try {
            this.o.logger.warn({ instanceId: row.instanceId, port: spec.port, log: await this.o.provider.logTail(spec) }, "a provisioned instance's redis-server was not running; starting it again");
            await this.o.provider.start(spec);
          } finally {
            this.starting.delete(row.instanceId);
          }
        }
      }
    }
  }

  /**
   * Removes a provisioned instance: its row marked `removing` first (an interrupted removal is finished by the
   * owner's next pass), `unregister` (the instance's registration and backups, as for any instance), then its
   * process stopped and its directory deleted, then its row.
   */
  async remove(instance: Instance, unregister: () => Promise<void>): Promise<void> {
    const row = await this.o.catalog.provisioned(instance.instanceId);
    if (!row) throw new Error(`${instance.instanceId} is not provisioned by this service`);
    if (row.state === "loading") throw new Error(`${instance.instanceId} is still being cloned (task ${row.taskId ?? "?"}); remove it once the task has ended`);
    await this.o.catalog.setProvisionedState(instance.instanceId, ["ready", "removing"], "removing");
    try {
      await unregister();
    } catch (err) {
      await this.o.catalog.setProvisionedState(instance.instanceId, ["removing"], "ready");
      throw err;
    }
    await this.finishRemoval(row, instance);
  }

  private async finishRemoval(row: ProvisionedInstance, instance: Instance | undefined): Promise<void> {
    await this.destroy(row, instance);
    const i = await this.o.catalog.instance(row.instanceId);
    if (i && i.deletedAt === undefined) await this.o.catalog.updateInstance(row.instanceId, { deletedAt: this.o.clock.now() });
    await this.o.catalog.deleteProvisioned(row.instanceId);
    this.o.logger.info({ instanceId: row.instanceId, port: row.port }, "removed a provisioned instance: process stopped, directory deleted");
  }
}
