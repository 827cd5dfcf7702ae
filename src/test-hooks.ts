// Crash points for tests: `CRS_TEST_CRASH_AT=<name>` makes the process kill itself (SIGKILL, no cleanup at all)
// when it reaches that point, to prove recovery from the worst moment (e.g. a shard file committed to storage
// but not yet recorded in the catalogue). Unset in production; reading one variable is all it costs.
const crashAt = process.env.CRS_TEST_CRASH_AT;

export function testHook(name: string): void {
  if (crashAt === name) process.kill(process.pid, "SIGKILL");
}

/**
 * Behaviour switches for tests: `CRS_TEST_FLAGS=<name>[,<name>...]`, read at each call (a test may set it in its
 * own process around one step). E.g. `stream-proof-drop-unit`: the proof run drops one unit from its replay.
 */
export function testFlag(name: string): boolean {
  const flags = process.env.CRS_TEST_FLAGS;
  return flags !== undefined && flags.split(",").includes(name);
}
