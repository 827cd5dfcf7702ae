// Point-in-time recovery tests' shared parts: a writer that records when each write was sent and acknowledged
// (standalone or, through a key -> connection function, a cluster), the check of a restored data set against
// those records at a cut (`crs-backup restore --at` runs through cli-process.ts's runCli).
import { RespConnection } from "../../src/redis/client/resp";
import type { RedisEndpoint } from "../../src/redis/client/resp";
import { send } from "./dataset";

/** Writes acknowledged this close before the end of the second may have arrived after it: either outcome. */
export const ARRIVAL_MARGIN_MS = 200;

export interface AckedWrite {
  key: string;
  value: string;
  sent: number;
  /** When the master acknowledged it; undefined when no reply came (the master died). */
  acked?: number;
}

/**
 * Writes `SET <prefix><i> v<i>` one after the other until `more()` is false or the master stops answering,
 * recording each write's times. `connOf` gives the connection a key goes to (a cluster: its slot's master).
 */
export async function writeUntil(connOf: (key: string) => Promise<RespConnection>, prefix: string, more: () => boolean, pauseMs = 2): Promise<AckedWrite[]> {
  const ops: AckedWrite[] = [];
  for (let i = 0; more(); i++) {
    const key = `${prefix}${i}`;
    const op: AckedWrite = { key, value: `v${i}`, sent: Date.now() };
    ops.push(op);
    try {
      await (await connOf(key)).command("SET", key, op.value);
    } catch {
      break; // the master is gone: this write has no acknowledgement
    }
    op.acked = Date.now();
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
  }
  return ops;
}

/** A writer on one standalone master. */
export async function writeStandalone(ep: RedisEndpoint, prefix: string, more: () => boolean): Promise<AckedWrite[]> {
  const conn = await RespConnection.connect(ep);
  try {
    return await writeUntil(async () => conn, prefix, more);
  } finally {
    conn.close();
  }
}

export interface CutTally {
  inside: number;
  outside: number;
  either: number;
}

/**
 * Checks a restored data set against the writes at `cutoffMs`: a write acknowledged more than the margin before
 * it must be there, one sent at or after it must not.
 */
export async function checkAtCut(target: RedisEndpoint, ops: readonly AckedWrite[], cutoffMs: number): Promise<CutTally> {
  const replies = await send(target, ops.map((o) => ["GET", o.key]));
  const tally: CutTally = { inside: 0, outside: 0, either: 0 };
  for (const [n, op] of ops.entries()) {
    const v = replies[n];
    const got = v === null ? null : Buffer.isBuffer(v) ? v.toString() : String(v);
    if (got !== null && got !== op.value) throw new Error(`${op.key}: unexpected value ${got}`);
    if (op.acked !== undefined && op.acked < cutoffMs - ARRIVAL_MARGIN_MS) {
      if (got === null) throw new Error(`${op.key} acknowledged at ${op.acked}, before the cut ${cutoffMs}, is missing`);
      tally.inside++;
    } else if (op.sent >= cutoffMs) {
      if (got !== null) throw new Error(`${op.key} sent at ${op.sent}, after the cut ${cutoffMs}, is in the restore`);
      tally.outside++;
    } else tally.either++;
  }
  return tally;
}
