// Real redis-server processes for tests: each on a free port in its own temporary directory.
import { spawn, ChildProcess, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { RespConnection, RedisEndpoint } from "../../src/backup/resp";

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
export async function startRedis(extra: string[] = [], opts: { password?: string; username?: string; dir?: string } = {}): Promise<RedisProcess> {
  const port = await freePort();
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "crs-redis-"));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", path.join(dir, "redis.log"), ...extra];
  const proc = spawn("redis-server", args, { stdio: "ignore" });
  const endpoint: RedisEndpoint = { host: "127.0.0.1", port, password: opts.password, username: opts.username };
  let exited = false;
  proc.once("exit", () => (exited = true));
  await waitFor(`redis-server on port ${port}`, async () => {
    if (exited) throw new Error(`redis-server exited; log: ${safeRead(path.join(dir, "redis.log"))}`);
    const c = await RespConnection.connect(endpoint, 1000);
    try {
      const reply = await c.command("PING");
      return reply === "PONG" ? true : undefined;
    } finally {
      c.close();
    }
  }, 15_000);
  return {
    port,
    dir,
    endpoint,
    proc,
    connect: () => RespConnection.connect(endpoint),
    kill: () => { if (!exited) proc.kill("SIGKILL"); },
    stop: () => new Promise<void>((resolve) => {
      if (exited) return resolve();
      proc.once("exit", () => resolve());
      proc.kill("SIGTERM");
    }),
  };
}

function safeRead(p: string): string {
  try { return fs.readFileSync(p, "utf8").slice(-2000); } catch { return "(no log)"; }
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
