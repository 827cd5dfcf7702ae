// Every process a test starts (redis-server, redis-sentinel, s3rver, crs-backup serve) is tracked here and
// SIGKILLed when the test file ends, whatever its hooks did: a suite whose `before` failed half-way would
// otherwise leave live children that keep the file's process, and with it `node --test`, running for ever.
import { after } from "node:test";
import type { ChildProcess } from "node:child_process";

const live = new Set<ChildProcess>();

function reapAll(): void {
  for (const p of live) {
    try { p.kill("SIGKILL"); } catch { /* already gone */ }
  }
  live.clear();
}

// In a test file the root test's last hook reaps; a bench, or a helper process a test spawned (which inherits
// the test context's environment but is no test file), reaps when it exits.
if (process.env.NODE_TEST_CONTEXT !== undefined && /\.test\.js$/.test(require.main?.filename ?? "")) after(reapAll);
process.once("exit", reapAll);

/** Tracks proc until it exits; returns it. */
export function track<T extends ChildProcess>(proc: T): T {
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
  return proc;
}
