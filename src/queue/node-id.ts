// Who holds a task's lease.
import crypto from "node:crypto";
import os from "node:os";

/** A process-unique node id. `serve:` nodes are servers, `cli:` one-off commands. */
export function makeNodeId(role: "serve" | "cli", given?: string): string {
  if (given) return given;
  return `${role}:${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString("hex")}`;
}
