// The local provider: each instance is a redis-server process of the owning node, started from the binary of
// --clone-redis-server (else redis-server on PATH) with a redis.conf in the instance's own owner-only directory
// (DATA/instances/<id>/): its port, bound to --advertise-host, requirepass from the request's Password, the RDB it
// loads first (dump.rdb) and, once the clone is loaded, an append-only file (`appendonly yes`, fsync every second),
// so a restart of the process keeps its data.
//
// The processes are started detached (their own process group) and outlive the service: a restart of the service
// does not restart its clones, it finds them running again (alive()) and supervises them from then on. A process
// is found by its pid file and, on Linux, by a marker in its environment (CRS_BACKUP_INSTANCE=<id>, which a Redis
// does not rewrite, unlike its process title): recovery after a SIGKILL of the service finds a redis-server that
// was started but had not yet written its pid file.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { InstanceProvider, InstanceSpec } from "./provider";

export const INSTANCE_MARKER = "CRS_BACKUP_INSTANCE";

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

/** Whether a live pid carries the instance's marker (Linux); true where /proc is not there to say. */
function hasMarker(pid: number, instanceId: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(`${INSTANCE_MARKER}=${instanceId}`);
  } catch {
    return !fs.existsSync("/proc/self"); // on Linux an unreadable environment is not our process
  }
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
      ...(spec.password !== undefined ? [`requirepass ${quote(spec.password)}`] : ["protected-mode no"]),
    ];
    await fs.promises.writeFile(path.join(spec.dataDir, CONF), `${lines.join("\n")}\n`, { mode: 0o600 });
    return { dataFile: path.join(spec.dataDir, "dump.rdb") };
  }

  async start(spec: InstanceSpec): Promise<void> {
    const conf = path.join(spec.dataDir, CONF);
    await fs.promises.access(conf);
    const child = spawn(this.o.redisServer, [conf], {
      cwd: spec.dataDir, detached: true, stdio: "ignore", env: { PATH: process.env.PATH ?? "", [INSTANCE_MARKER]: spec.instanceId },
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
      if (Number.isSafeInteger(pid) && pid > 1 && isAlive(pid) && hasMarker(pid, spec.instanceId)) found.add(pid);
    }
    if (!found.size) for (const pid of markedProcesses(spec.instanceId)) found.add(pid);
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

/** Processes of this user whose environment carries the instance's marker (Linux; none elsewhere). */
function markedProcesses(instanceId: string): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    try {
      if (fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(`${INSTANCE_MARKER}=${instanceId}`) && isAlive(pid)) out.push(pid);
    } catch {
      // another user's, or gone
    }
  }
  return out;
}
