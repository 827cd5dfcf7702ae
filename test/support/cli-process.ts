// The crs-backup command as real child processes (what an operator runs): `serve` kept running with its output
// captured, one-off commands run to completion, and the official SDK pointed at a served port.
import { spawn, spawnSync, ChildProcess, SpawnSyncReturns } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { RedisClient, SdkClient } from "./server";
import { freePort, waitFor } from "./redis";
import { track } from "./reaper";

export const CLI = path.join(__dirname, "..", "..", "src", "cli", "main.js");

/** The test's environment without a key of the default account (unless given) and with `extra` added. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const k of ["CRS_SECRET_ID", "CRS_SECRET_KEY", "CRS_TEST_CRASH_AT", "CRS_DATA", "CRS_REDIS_PASSWORD"]) if (!(k in extra)) delete env[k];
  return env;
}

/** A fresh directory for a served process: its data directory (created by the server) and a fixture file holding `fixture`. */
export function seededDir(prefix: string, fixture: object): { base: string; data: string; seed: string } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const seed = path.join(base, "seed.json");
  fs.writeFileSync(seed, JSON.stringify(fixture));
  return { base, data: path.join(base, "data"), seed };
}

const live = new Set<ChildProcess>();

/** SIGKILLs every serve process still running (for an `after` hook: a failed assertion must not leave one). */
export function killServed(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
}

export interface Served {
  proc: ChildProcess;
  port: number;
  /** stdout and stderr together, in arrival order. */
  out(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exit: Promise<number | null>;
  /** The signal that ended the process, if one did. */
  signal(): NodeJS.Signals | null;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<number | null>;
}

/** Starts `crs-backup serve` on a free port (unless --port is given) and waits until it listens. */
export async function serve(args: string[], env: NodeJS.ProcessEnv, o: { cwd?: string; timeoutMs?: number } = {}): Promise<Served> {
  const port = args.includes("--port") ? Number(args[args.indexOf("--port") + 1]) : await freePort();
  // No automatic backups unless the test asks (`--auto-backups on`): a fixture's default schedule (00:00-01:00 in
  // the server's zone, 16:00-17:00 UTC) is open on the wall clock an hour a day, and its start-up pass would back
  // every instance up under the test.
  const auto = args.includes("--auto-backups") || env.CRS_AUTO_BACKUPS !== undefined ? [] : ["--auto-backups", "off"];
  const proc = spawn(process.execPath, [CLI, "serve", ...(args.includes("--port") ? [] : ["--port", String(port)]), ...auto, ...args], { env, cwd: o.cwd, stdio: ["ignore", "pipe", "pipe"] });
  live.add(track(proc));
  let out = "";
  let stdout = "";
  let stderr = "";
  let exited = false;
  proc.stdout!.on("data", (c: Buffer) => {
    out += c.toString();
    stdout += c.toString();
  });
  proc.stderr!.on("data", (c: Buffer) => {
    out += c.toString();
    stderr += c.toString();
  });
  let signal: NodeJS.Signals | null = null;
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code, sig) => {
    exited = true;
    signal = sig;
    live.delete(proc);
    resolve(code);
  }));
  await Promise.race([
    waitFor("the server to listen", () => (out.includes("listening on") ? true : undefined), o.timeoutMs ?? 15_000),
    exit.then(() => {
      if (!out.includes("listening on")) throw new Error(`serve exited before listening:\n${out}`);
    }),
  ]);
  return {
    proc, port, exit, out: () => out, stdout: () => stdout, stderr: () => stderr, signal: () => signal,
    stop: async () => {
      if (!exited) proc.kill("SIGTERM");
      return exit;
    },
  };
}

/** Runs a one-off crs-backup command to completion. */
export function cli(args: string[], env: NodeJS.ProcessEnv, o: { cwd?: string; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env, cwd: o.cwd, timeout: o.timeoutMs ?? 60_000 });
}

/** Runs one crs-backup command without blocking the event loop (the test's own server keeps answering): its exit code and stdout+stderr. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.on("exit", (code) => resolve({ code, out }));
  });
}

export function sdk(port: number, secretId: string, secretKey: string, language?: "en-US" | "zh-CN"): SdkClient {
  return new RedisClient({ credential: { secretId, secretKey }, region: "ap-guangzhou", profile: { ...(language ? { language } : {}), httpProfile: { endpoint: `127.0.0.1:${port}`, protocol: "http://" } } });
}

/** Every line of a serve process's stdout as parsed JSON (a line that is not JSON throws, naming it). */
export function jsonLines(text: string): Array<Record<string, unknown>> {
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new Error(`a log line is not JSON: ${JSON.stringify(l)}`);
    }
  });
}
