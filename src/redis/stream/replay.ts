// Replays stored stream units into a Redis as an ordinary client, pipelined: a `SELECT` of the database the
// first unit ran in, then every command as the master sent it (MULTI ... EXEC kept whole, scripts as their
// effects). The master propagates expirations as absolute PEXPIREAT/DEL, so a key whose TTL has passed since
// is gone once the replay reaches it.
import { PipelinedConnection, ReplyKind } from "../client/pipelined";
import type { RedisEndpoint } from "../client/resp";
import { splitCommands } from "./parser";
import type { StoredUnit } from "./segments";

export interface ReplayResult {
  units: number;
  commands: number;
  /** Error replies, and the first one. */
  errors: number;
  firstError?: string;
  ms: number;
}

const IN_FLIGHT = 4 << 20;

export async function replayUnits(ep: RedisEndpoint, units: readonly StoredUnit[], opts: { timeoutMs?: number } = {}): Promise<ReplayResult> {
  const t0 = Date.now();
  const conn = await PipelinedConnection.connect(ep, { timeoutMs: opts.timeoutMs ?? 60_000 });
  let errors = 0;
  let firstError: string | undefined;
  let commands = 0;
  conn.onReply = (_tag, kind, text) => {
    if (kind !== ReplyKind.Error) return;
    errors++;
    firstError ??= `${text ?? ""} (for ${conn.currentCommand().toString("latin1", 0, 80).replace(/\r\n/g, " ")})`;
  };
  try {
    conn.command(["SELECT", String(units[0]?.db ?? 0)], 0);
    for (const u of units) {
      for (const cmd of splitCommands(u.raw)) {
        conn.sendRaw(cmd, 1);
        commands++;
      }
      if (conn.inflightBytes > IN_FLIGHT) await conn.waitBelow(IN_FLIGHT / 2);
    }
    await conn.waitBelow(0);
  } finally {
    conn.close();
  }
  return { units: units.length, commands, errors, ...(firstError ? { firstError } : {}), ms: Date.now() - t0 };
}
