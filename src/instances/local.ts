// The local provider: each instance is a redis-server process of the owning node, started from the binary of
// --clone-redis-server (else redis-server on PATH) with a redis.conf in the instance's own owner-only directory
// (DATA/instances/<id>/): its port, bound to --advertise-host, requirepass from the request's Password, the RDB it
// loads first (dump.rdb) and, once the clone is loaded, an append-only file (`appendonly yes`, fsync every second),
// so a restart of the process keeps its data.
//
// The processes are started detached (their own process group) and outlive the service: a restart of the service
// does not restart its clones, it finds them running again (alive()) and supervises them from then on. A process
// is found by its pid files and, on Linux, by its working directory (it is started in the instance's directory,
// and its `dir` is that directory; its process title and environment are rewritten by Redis, so neither can
// mark it): recovery after a SIGKILL of the service finds a redis-server that was started but had not yet
// written its pid file.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { InstanceProvider, InstanceSpec } from "./provider";

const CONF = "redis.conf";
const PID = "redis.pid";
/** Written by us right after the spawn, before Redis writes its own pid file. */
const SPAWNED = "spawned.pid";
const LOG = "redis.log";

/** The major version of a redis-server binary (0: it did not say). */
export function redisMajorVersion(bin: string): Promise<number> {
  return new Promise((resolve) => {
    const p = spawn(bin, ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.on("error", () => resolve(0));
    p.on("exit", () => resolve(Number(/v=(\d+)/.exec(out)?.[1] ?? 0)));
  });
}

function quote(v: string): string {
  return `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // A zombie or a pid reused by something else is not our server.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    if (/\) Z /.test(stat)) return false;
  } catch {
    // not Linux: the signal test is all there is
  }
  return true;
}

/** The working directory of a process (Linux), without the " (deleted)" of a removed one; undefined elsewhere. */
function cwdOf(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/cwd`).replace(/ \(deleted\)$/, "");
  } catch {
    return undefined;
  }
}

/** Whether a live pid runs in the instance's directory (Linux); true where /proc is not there to say. */
function runsIn(pid: number, dir: string): boolean {
  const cwd = cwdOf(pid);
  return cwd === undefined ? !fs.existsSync("/proc/self") : cwd === path.resolve(dir);
}

export class LocalProcessProvider implements InstanceProvider {
  readonly name = "local";
  private major: Promise<number> | undefined;

  constructor(private readonly o: { redisServer: string }) {}

  private version(): Promise<number> {
    this.major ??= redisMajorVersion(this.o.redisServer);
    return this.major;
  }

  async prepare(spec: InstanceSpec): Promise<{ dataFile: string }> {
    await fs.promises.mkdir(path.dirname(spec.dataDir), { recursive: true, mode: 0o700 });
    await fs.promises.mkdir(spec.dataDir, { recursive: true, mode: 0o700 });
    await fs.promises.chmod(spec.dataDir, 0o700);
    const major = await this.version();
    if (!major) throw new Error(`${this.o.redisServer} --version gave no Redis version (set --clone-redis-server, or put redis-server on PATH)`);
    const lines = [
      "# Written by crs-backup (CloneInstances); the service rewrites appendonly once the clone is loaded.",
      `port ${spec.port}`, `bind ${spec.host}`, `dir ${quote(spec.dataDir)}`, "dbfilename dump.rdb", `pidfile ${quote(path.join(spec.dataDir, PID))}`,
      `logfile ${quote(path.join(spec.dataDir, LOG))}`, "daemonize no", "save \"\"", "appendonly no", "appendfsync everysec", "loglevel notice",
      ...(major >= 7 ? ["enable-debug-command local"] : []),
      // A node of a cluster-shaped clone: its membership and slots live in nodes.conf beside its data.
      ...(spec.cluster ? ["cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 5000"] : []),
      ...(spec.password !== undefined ? [`requirepass ${quote(spec.password)}`] : ["protected-mode no"]),
    ];
    await fs.promises.writeFile(path.join(spec.dataDir, CONF), `${lines.join("\n")}\n`, { mode: 0o600 });
    return { dataFile: path.join(spec.dataDir, "dump.rdb") };
  }

  async start(spec: InstanceSpec): Promise<void> {
    const conf = path.join(spec.dataDir, CONF);
    await fs.promises.access(conf);
    const child = spawn(this.o.redisServer, [conf], {
      cwd: spec.dataDir, detached: true, stdio: "ignore", env: { PATH: process.env.PATH ?? "" },
    });
    const started = await new Promise<number>((resolve, reject) => {
      child.once("error", reject);
      child.once("spawn", () => resolve(child.pid!));
    });
    fs.writeFileSync(path.join(spec.dataDir, SPAWNED), `${started}\n`, { mode: 0o600 });
    child.unref();
  }

  /** The live pids of the instance's server: from its pid files, else (Linux) any process carrying its marker. */
  private pids(spec: InstanceSpec): number[] {
    const found = new Set<number>();
    for (const f of [PID, SPAWNED]) {
      const pid = Number(readOr(path.join(spec.dataDir, f)).trim());
      if (Number.isSafeInteger(pid) && pid > 1 && isAlive(pid) && runsIn(pid, spec.dataDir)) found.add(pid);
    }
    if (!found.size) for (const pid of processesIn(spec.dataDir)) found.add(pid);
    return [...found];
  }

  async alive(spec: InstanceSpec): Promise<boolean> {
    return this.pids(spec).length > 0;
  }

  async stop(spec: InstanceSpec, graceMs: number): Promise<void> {
    const pids = this.pids(spec);
    if (!pids.length) return;
    for (const pid of pids) signal(pid, graceMs > 0 ? "SIGTERM" : "SIGKILL");
    const deadline = Date.now() + graceMs;
    while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const pid of pids.filter(isAlive)) signal(pid, "SIGKILL");
    const hard = Date.now() + 5000;
    while (pids.some(isAlive) && Date.now() < hard) await new Promise((r) => setTimeout(r, 20));
    if (pids.some(isAlive)) throw new Error(`the redis-server of ${spec.instanceId} (pid ${pids.filter(isAlive).join(", ")}) did not stop`);
  }

  async destroy(spec: InstanceSpec): Promise<void> {
    await this.stop(spec, 0);
    await fs.promises.rm(spec.dataDir, { recursive: true, force: true });
  }

  async logTail(spec: InstanceSpec): Promise<string> {
    return readOr(path.join(spec.dataDir, LOG)).trim().split("\n").slice(-3).join(" | ");
  }
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

/** Processes of this user running in `dir` (Linux; none elsewhere). */
export function processesIn(dir: string): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return [];
  }
  const want = path.resolve(dir);
  return entries.filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => cwdOf(pid) === want && isAlive(pid));
}
