// Real Redis Sentinels for tests: `redis-server <conf> --sentinel` (any redis-server binary is a Sentinel), each on
// a free port in its own temporary directory, with short failure timeouts so failovers take about a second.
import { spawn, ChildProcess } from "node:child_process";
import { track } from "./reaper";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { RedisEndpoint, RespConnection, RespValue } from "../../src/redis/client/resp";
import { freePort, waitFor } from "./redis";

export interface SentinelProcess {
  port: number;
  endpoint: RedisEndpoint;
  proc: ChildProcess;
  /** Runs one command on this Sentinel. */
  command(...args: string[]): Promise<RespValue>;
  kill(): void;
}

export interface SentinelOptions {
  masterName: string;
  masterPort: number;
  /** The data nodes' password (`sentinel auth-pass`). */
  dataPassword?: string;
  /** The Sentinels' own password (`requirepass`, and `sentinel sentinel-pass` between them). */
  sentinelPassword?: string;
  quorum?: number;
}

export async function startSentinel(o: SentinelOptions): Promise<SentinelProcess> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crs-sentinel-"));
  const conf = path.join(dir, "sentinel.conf");
  const lines = [
    `port ${port}`, "bind 127.0.0.1", `dir ${dir}`, `logfile ${path.join(dir, "sentinel.log")}`, "daemonize no",
    `sentinel monitor ${o.masterName} 127.0.0.1 ${o.masterPort} ${o.quorum ?? 2}`,
    `sentinel down-after-milliseconds ${o.masterName} 2000`,
    `sentinel failover-timeout ${o.masterName} 4000`,
    `sentinel parallel-syncs ${o.masterName} 1`,
  ];
  if (o.dataPassword) lines.push(`sentinel auth-pass ${o.masterName} ${o.dataPassword}`);
  if (o.sentinelPassword) lines.push(`requirepass ${o.sentinelPassword}`, `sentinel sentinel-pass ${o.sentinelPassword}`);
  fs.writeFileSync(conf, `${lines.join("\n")}\n`);
  const proc = track(spawn("redis-server", [conf, "--sentinel"], { stdio: "ignore" }));
  let exited = false;
  proc.once("exit", () => (exited = true));
  const endpoint: RedisEndpoint = { host: "127.0.0.1", port, password: o.sentinelPassword };
  const command = async (...args: string[]): Promise<RespValue> => {
    const c = await RespConnection.connect(endpoint, 2000);
    try {
      return await c.command(...args);
    } finally {
      c.close();
    }
  };
  await waitFor(`Sentinel on port ${port}`, async () => {
    if (exited) throw new Error(`the Sentinel exited; log: ${fs.existsSync(path.join(dir, "sentinel.log")) ? fs.readFileSync(path.join(dir, "sentinel.log"), "utf8").slice(-2000) : "(none)"}`);
    return (await command("PING")) === "PONG" || undefined;
  }, 15_000);
  return { port, endpoint, proc, command, kill: () => void (exited || proc.kill("SIGKILL")) };
}

/** The master's address as this Sentinel names it now. */
export async function masterOf(s: SentinelProcess, name: string): Promise<string> {
  const r = (await s.command("SENTINEL", "get-master-addr-by-name", name)) as Buffer[];
  return `${String(r[0])}:${String(r[1])}`;
}
