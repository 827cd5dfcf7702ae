// Shared pieces of the benchmarks: pre-signed API requests, spawning the real server, waiting for a port, and
// an autocannon run reduced to the figures we record.
import autocannon from "autocannon";
import { spawn, ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { sha256Hex, tc3Signature } from "../src/protocol/signature";

export const CLI = path.join(__dirname, "..", "src", "cli", "main.js");

export interface SignedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** A TC3-signed POST as the Node SDK sends it to 127.0.0.1:port (valid for the 300 s signature window). */
export function signedRequest(port: number, key: { secretId: string; secretKey: string }, body: string, action = "DescribeInstanceBackups"): SignedRequest {
  const ts = Math.floor(Date.now() / 1000);
  const date = new Date(ts * 1000).toISOString().slice(0, 10);
  const sig = tc3Signature({
    method: "POST", canonicalQuery: "", signedHeaders: ["content-type", "host"], headerValues: { "content-type": "application/json", host: "127.0.0.1" },
    payloadHash: sha256Hex(body), timestamp: String(ts), date, service: "127", secretKey: key.secretKey,
  });
  return {
    method: "POST",
    path: "/",
    body,
    headers: {
      host: `127.0.0.1:${port}`, "content-type": "application/json", "x-tc-action": action, "x-tc-version": "2018-04-12",
      "x-tc-region": "ap-guangzhou", "x-tc-timestamp": String(ts),
      authorization: `TC3-HMAC-SHA256 Credential=${key.secretId}/${date}/127/tc3_request, SignedHeaders=content-type;host, Signature=${sig}`,
    },
  };
}

export async function waitForHttp(port: number, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const r = http.get({ host: "127.0.0.1", port, path: "/" }, (res) => {
        res.resume();
        resolve(true);
      });
      r.on("error", () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not answer`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sends one request and returns the body. */
export function send(port: number, req: SignedRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: "127.0.0.1", port, method: req.method, path: req.path, headers: req.headers }, (res) => {
      let s = "";
      res.on("data", (c: Buffer) => (s += c.toString()));
      res.on("end", () => resolve(s));
    });
    r.on("error", reject);
    r.end(req.body);
  });
}

/**
 * A process's CPU time so far from /proc/PID/stat (Linux; clock ticks of USER_HZ = 100): its own (user + system)
 * and its reaped children's, in seconds, with its command name. Throws when the process is gone.
 */
export function processCpu(pid: number): { comm: string; seconds: number; childrenSeconds: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
    seconds: (Number(f[11]) + Number(f[12])) / 100, // utime, stime
    childrenSeconds: (Number(f[13]) + Number(f[14])) / 100, // cutime, cstime
  };
}

/** Starts a process with its output in a log file (the per-request log stays on, as in production). */
export function spawnLogged(args: string[], logFile: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  const fd = fs.openSync(logFile, "a");
  return spawn(process.execPath, [...(process.env.BENCH_PRELOAD ? ["-r", process.env.BENCH_PRELOAD] : []), ...args], { stdio: ["ignore", fd, fd], env: { ...process.env, CRS_SECRET_ID: "", CRS_SECRET_KEY: "", ...env } });
}

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** Requests answered in the run. */
  total: number;
}

export async function load(port: number, requests: SignedRequest[], opts: { connections: number; seconds: number }): Promise<LoadResult> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`, connections: opts.connections, duration: opts.seconds,
    requests: requests.map((r) => ({ method: "POST" as const, path: r.path, headers: r.headers, body: r.body })),
  });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx, total: result.requests.total };
}
