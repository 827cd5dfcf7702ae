// Readiness: whether this node can do its work — the catalogue answers, its migrations are applied, the blob
// store is reachable. Each check is bounded by a timeout, so a catalogue that hangs (a PostgreSQL behind a
// dropped network) makes /readyz answer 503 in time instead of holding the probe open.
import type { Services } from "../services";

export type CheckState = "ok" | "failed" | "timeout" | "skipped";

export interface Readiness {
  ready: boolean;
  checks: { catalog: CheckState; migrations: CheckState; storage: CheckState };
  /** Why each failed check failed, for the log (not for the unauthenticated response). */
  errors: Record<string, string>;
}

const TIMED_OUT = Symbol("timeout");

async function bounded<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the three checks (catalogue ping, pending migrations, storage probe); none waits longer than `timeoutMs`. */
export async function checkReadiness(s: Pick<Services, "catalog" | "store">, timeoutMs = 2_000): Promise<Readiness> {
  const errors: Record<string, string> = {};
  const run = async (name: string, fn: () => Promise<boolean>): Promise<CheckState> => {
    try {
      const r = await bounded(fn(), timeoutMs);
      if (r === TIMED_OUT) {
        errors[name] = `no answer within ${timeoutMs} ms`;
        return "timeout";
      }
      return r ? "ok" : "failed";
    } catch (err) {
      errors[name] = (err as Error)?.message ?? String(err);
      return "failed";
    }
  };
  const [catalog, storage] = await Promise.all([
    run("catalog", async () => {
      await s.catalog.ping();
      return true;
    }),
    run("storage", async () => {
      await s.store.probe();
      return true;
    }),
  ]);
  const migrations: CheckState = catalog !== "ok" ? "skipped" : await run("migrations", async () => {
    const pending = await s.catalog.pendingMigrations();
    if (pending.length) errors.migrations = `pending: ${pending.join(", ")} (run crs-backup migrate)`;
    return pending.length === 0;
  });
  return { ready: catalog === "ok" && migrations === "ok" && storage === "ok", checks: { catalog, migrations, storage }, errors };
}
