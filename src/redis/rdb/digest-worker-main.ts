// Worker thread body for DigestStream: parses and digests the RDB chunks it is sent, off the main thread.
import { parentPort, workerData } from "node:worker_threads";
import { RdbDigest } from "./digest";
import { RdbParseError } from "./errors";

const port = parentPort!;
const d = new RdbDigest(workerData as ConstructorParameters<typeof RdbDigest>[0]);
let failed = false;

port.on("message", (m: { chunk?: Uint8Array; end?: boolean }) => {
  if (failed) return;
  try {
    if (m.chunk) {
      d.update(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
      port.postMessage({ ack: m.chunk.byteLength });
    } else if (m.end) {
      port.postMessage({ result: d.digest() });
    }
  } catch (err) {
    failed = true;
    const e = err as Error;
    port.postMessage({ error: { message: e.message, offset: e instanceof RdbParseError ? e.offset : undefined, expected: e instanceof RdbParseError ? e.expected : undefined } });
  }
});
