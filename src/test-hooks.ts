// Crash points for tests: `CRS_TEST_CRASH_AT=<name>` makes the process kill itself (SIGKILL, no cleanup at all)
// when it reaches that point, to prove recovery from the worst moment (e.g. a shard file committed to storage
// but not yet recorded in the catalogue). Unset in production; reading one variable is all it costs.
const crashAt = process.env.CRS_TEST_CRASH_AT;

export function testHook(name: string): void {
  if (crashAt === name) process.kill(process.pid, "SIGKILL");
}
