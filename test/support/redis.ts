// Real redis-server processes for tests: each on a free port in its own temporary directory.
import { spawn, ChildProcess, execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { keySlot, readSlotMap, SlotRange } from "../../src/redis/client/cluster";

// Tests route writes to a cluster's nodes with the same slot function as the service.
export { keySlot };
import { parseInfo, RespConnection, RedisEndpoint, RespValue } from "../../src/redis/client/resp";
import { track } from "./reaper";

/** Runs fn on a fresh connection to p, closed afterwards whatever fn does. */
export async function withConn<T>(p: RedisProcess, fn: (c: RespConnection) => Promise<T>): Promise<T> {
  const c = await p.connect();
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/** One field of a section of the node's INFO (undefined when it is not there). */
export async function infoField(n: RedisProcess, section: string, name: string): Promise<string | undefined> {
  return parseInfo(await withConn(n, (x) => x.command("INFO", section))).get(name);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface RedisProcess {
  port: number;
  dir: string;
  endpoint: RedisEndpoint;
  proc: ChildProcess;
  connect(): Promise<RespConnection>;
  stop(): Promise<void>;
  kill(): void;
}

/** Starts redis-server with the given extra arguments (e.g. ["--requirepass", "x"]). */
export async function startRedis(extra: string[] = [], opts: { password?: string; username?: string; dir?: string; bin?: string } = {}): Promise<RedisProcess> {
  // A free port can be taken between the probe and redis-server's bind (by another test's process, or by a
  // cluster node's bus port, which is port + 10000): then start again on another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRedisOnce(extra, opts);
    } catch (err) {
      if (attempt >= 5 || !(err instanceof PortTaken)) throw err;
    }
  }
}

class PortTaken extends Error {}

async function startRedisOnce(extra: string[], opts: { password?: string; username?: string; dir?: string; bin?: string }): Promise<RedisProcess> {
  const port = await freePort();
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "crs-redis-"));
  const logfile = path.join(dir, "redis.log");
  const logStart = fs.existsSync(logfile) ? fs.statSync(logfile).size : 0; // a restart in the same directory appends
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", logfile, ...extra];
  const proc = track(spawn(opts.bin ?? "redis-server", args, { stdio: "ignore" }));
  const endpoint: RedisEndpoint = { host: "127.0.0.1", port, password: opts.password, username: opts.username };
  let exited = false;
  proc.once("exit", () => (exited = true));
  // An exit ends the wait at once (the probe's errors are retried until the deadline).
  const outcome = await waitFor(`redis-server on port ${port}`, async () => {
    if (exited) return "exited" as const;
    const c = await RespConnection.connect(endpoint, 1000);
    try {
      return (await c.command("PING")) === "PONG" ? ("up" as const) : undefined;
    } finally {
      c.close();
    }
  }, 15_000).catch((err: unknown) => {
    proc.kill("SIGKILL");
    throw err;
  });
  if (outcome === "exited") {
    const log = safeRead(logfile, logStart);
    if (/Address already in use/.test(log)) throw new PortTaken(`port ${port} was taken: ${log}`);
    throw new Error(`redis-server exited; log: ${log}`);
  }
  return {
    port,
    dir,
    endpoint,
    proc,
    connect: () => RespConnection.connect(endpoint),
    kill: () => {
      if (exited) return;
      // A BGSAVE/replication fork child would outlive its parent (still saving); kill it too.
      for (const child of childPids(proc.pid)) {
        try { process.kill(child, "SIGKILL"); } catch { /* already gone */ }
      }
      proc.kill("SIGKILL");
    },
    stop: () => new Promise<void>((resolve) => {
      if (exited) return resolve();
      proc.once("exit", () => resolve());
      proc.kill("SIGTERM");
    }),
  };
}

function childPids(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return []; // not Linux, or the process is gone
  }
}

function safeRead(p: string, from = 0): string {
  try { return fs.readFileSync(p).subarray(from).toString("utf8").slice(-2000); } catch { return "(no log)"; }
}

export function redisCheckRdb(file: string): { ok: boolean; output: string } {
  try {
    const out = execFileSync("redis-check-rdb", [file], { encoding: "utf8" });
    return { ok: /RDB looks OK/.test(out), output: out };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

/**
 * Starts cluster-enabled servers and joins them into one Redis Cluster: `masters` masters and, with
 * `replicasPerMaster`, that many replicas each (after the masters in the array; every replica's link is up).
 */
/**
 * A range of ports for a test's clones of clusters: below 55535, so each node's cluster bus port (port + 10000)
 * exists too (the ephemeral ports freePort gives are often above that). Ports someone else holds are skipped by
 * the service itself.
 */
export function clusterClonePorts(size: number): { from: number; to: number } {
  const from = 20000 + Math.floor(Math.random() * 30000);
  return { from, to: from + size };
}

export async function startCluster(masters: number, password: string, extra: string[] = [], replicasPerMaster = 0, bin?: string): Promise<RedisProcess[]> {
  const started = await Promise.allSettled(Array.from({ length: masters * (1 + replicasPerMaster) }, () =>
    startRedis(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--requirepass", password, "--masterauth", password, ...extra], { password, ...(bin ? { bin } : {}) })));
  const nodes = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    for (const n of nodes) n.kill();
    throw failed.reason;
  }
  await new Promise<void>((resolve, reject) =>
    execFile("redis-cli", ["-a", password, "--no-auth-warning", "--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", String(replicasPerMaster), "--cluster-yes"],
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve())));
  for (const n of nodes) {
    await waitFor("cluster_state:ok", async () => {
      const c = await n.connect();
      try {
        return /cluster_state:ok/.test(String(await c.command("CLUSTER", "INFO"))) || undefined;
      } finally {
        c.close();
      }
    }, 20_000);
  }
  if (replicasPerMaster > 0) {
    // redis-cli gives the first `masters` addresses the slots; the others replicate them. Order the array so.
    for (const n of nodes) {
      await waitFor(`a role for node ${n.port}`, async () => {
        const info = String(await withConn(n, (c) => c.command("INFO", "replication")));
        return /role:master/.test(info) || /master_link_status:up/.test(info) || undefined;
      }, 30_000, 50);
    }
    // ... and every node knows every replica as one (the roles travel by gossip).
    for (const n of nodes) {
      await waitFor(`node ${n.port} to see the replicas`, async () => {
        const text = String(await withConn(n, (c) => c.command("CLUSTER", "NODES")));
        return text.split("\n").filter((l) => / (myself,)?slave /.test(l)).length === masters * replicasPerMaster || undefined;
      }, 30_000, 50);
    }
  }
  return nodes;
}

/**
 * A minimal cluster client for tests: each key goes to the master of its slot. No redirections are followed;
 * refresh() re-reads the slot map (after a failover) from the first of its seeds that answers.
 */
export class ClusterClient {
  private conns = new Map<string, Promise<RespConnection>>();
  private constructor(private readonly seeds: RedisEndpoint[], private map: SlotRange[]) {}

  static async open(seed: RedisEndpoint): Promise<ClusterClient> {
    return new ClusterClient([seed], await readSlotMap(seed));
  }

  /** A client whose slot map is read from the first of the nodes that answers (some may be down). */
  static async ofAny(seeds: RedisEndpoint[]): Promise<ClusterClient> {
    const client = new ClusterClient(seeds, []);
    await client.refresh();
    return client;
  }

  async refresh(): Promise<void> {
    for (const seed of this.seeds) {
      try {
        this.map = await readSlotMap(seed);
        return;
      } catch {
        // that node is down or not ready: the next one
      }
    }
  }

  async node(key: string): Promise<RespConnection> {
    const slot = keySlot(key);
    const r = this.map.find((x) => slot >= x.start && slot <= x.end)!;
    const addr = `${r.master.host}:${r.master.port}`;
    let c = this.conns.get(addr);
    if (!c) {
      c = RespConnection.connect(r.master);
      this.conns.set(addr, c);
      c.catch(() => this.conns.delete(addr)); // a node that did not answer is tried again next time
    }
    return c;
  }

  async run(key: string, ...args: Array<string | number | Buffer>): Promise<RespValue> {
    return (await this.node(key)).command(...args);
  }

  close(): void {
    for (const c of this.conns.values()) void c.then((x) => x.close(), () => undefined);
  }
}
