// Worker thread body for DigestStream: parses and digests RDB streams off the main thread. One worker serves
// several streams at once (each a session with its own RdbDigest), so concurrent captures share a few long-lived
// workers instead of starting a V8 isolate each. A malformed RDB fails its own session only.
import { parentPort } from "node:worker_threads";
import { RdbDigest } from "./digest";
import { RdbParseError } from "./errors";

const port = parentPort!;

type Message =
  | { id: number; open: ConstructorParameters<typeof RdbDigest>[0] }
  | { id: number; chunk: Uint8Array }
  | { id: number; end: true }
  | { id: number; abort: true };

const sessions = new Map<number, RdbDigest>();

port.on("message", (m: Message) => {
  if ("open" in m) {
    sessions.set(m.id, new RdbDigest(m.open));
    return;
  }
  if ("abort" in m) {
    sessions.delete(m.id);
    return;
  }
  const d = sessions.get(m.id);
  if (!d) return; // failed or aborted before: its remaining chunks are dropped
  try {
    if ("chunk" in m) {
      d.update(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
      port.postMessage({ id: m.id, ack: m.chunk.byteLength });
    } else {
      sessions.delete(m.id);
      port.postMessage({ id: m.id, result: d.digest() });
    }
  } catch (err) {
    sessions.delete(m.id);
    const e = err as Error;
    port.postMessage({ id: m.id, error: { message: e.message, offset: e instanceof RdbParseError ? e.offset : undefined, expected: e instanceof RdbParseError ? e.expected : undefined } });
  }
});
