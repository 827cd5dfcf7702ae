// One server per embedded data directory: its SQLite catalogue and files serve one node, and start-up recovery
// treats every task a server left running as dead. The lock file (server.pid) holds the PID and that process's
// start time, so a lock left by a dead process is taken over even when its PID now belongs to something else.
import fs from "node:fs";
import path from "node:path";

export const LOCK_FILE = "server.pid";

interface LockHolder {
  pid: number;
  start?: string;
}

/** The start time of a process (field 22 of /proc/PID/stat), to tell a live owner from a reused PID. */
function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/**
 * Whether a live process may be a crs-backup server, by its command line: lock files of older versions hold a
 * bare PID, and a PID reused by an unrelated process must not block start-up for good. Unknown (no /proc):
 * assume it is.
 */
function maybeServer(pid: number): boolean {
  let argv: string[];
  try {
    argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return true;
  }
  return argv.includes("serve") || argv.some((a) => a.includes("crs-backup"));
}

function alive(holder: LockHolder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (holder.start === undefined) return maybeServer(holder.pid);
  // Same PID, different start time: the PID was reused by an unrelated process after ours died.
  const now = processStart(holder.pid);
  return now === undefined || now === holder.start;
}

/**
 * The one reading of a lock file: `{"pid":…,"start":…}`, or a bare PID (older versions). Undefined when the file
 * is missing, unreadable, half-written or names no valid PID (then it is stale).
 */
function readHolder(file: string): LockHolder | undefined {
  try {
    const text = fs.readFileSync(file, "utf8");
    const held = (text.startsWith("{") ? JSON.parse(text) : { pid: Number(text) }) as { pid?: unknown; start?: unknown };
    if (typeof held.pid !== "number" || !Number.isInteger(held.pid) || held.pid <= 0) return undefined;
    return { pid: held.pid, ...(typeof held.start === "string" ? { start: held.start } : {}) };
  } catch {
    return undefined;
  }
}

/** The PID of a live server holding the data directory's lock, if any (nothing is written). */
export function dataDirHolder(dataDir: string): number | undefined {
  const held = readHolder(path.join(dataDir, LOCK_FILE));
  return held && alive(held) ? held.pid : undefined;
}

/** Takes the data directory's lock, or throws naming the live server that holds it. Returns the release function. */
export function lockDataDir(dataDir: string): () => void {
  const file = path.join(dataDir, LOCK_FILE);
  const mine = JSON.stringify({ pid: process.pid, start: processStart(process.pid) });
  for (;;) {
    try {
      fs.writeFileSync(file, mine, { flag: "wx", mode: 0o600 });
      return () => {
        try {
          if (fs.readFileSync(file, "utf8") === mine) fs.rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const held = readHolder(file);
      if (held && held.pid !== process.pid && alive(held)) throw new Error(`another crs-backup server (pid ${held.pid}) is using ${dataDir}`);
      fs.rmSync(file, { force: true });
    }
  }
}
