// Child process body for DigestStream: parses and digests RDB streams off the server's process, at the lowest
// CPU priority (nice 19), so a digest only ever takes CPU that nothing else wants: never from a Redis fork child
// streaming a snapshot, a capture's gzip or the request path. One process serves several streams at once (each
// a session with its own RdbDigest). A session opened with `gzip` receives a stored (gzip) file, inflates it
// here too and reports the plain bytes' count and SHA-256, so the server's process only reads the file. A
// malformed RDB fails its own session only.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import zlib from "node:zlib";
import { RdbDigest } from "./digest";
import { RdbParseError } from "./errors";

type Message =
  | { id: number; open: ConstructorParameters<typeof RdbDigest>[0] & { gzip?: boolean } }
  | { id: number; chunk: Uint8Array }
  | { id: number; end: true }
  | { id: number; abort: true };

/** Lowers every thread of this process (Linux keeps a nice value per thread) to nice 19; best effort. */
function lowestPriority(): void {
  let tids: string[] = [];
  try {
    tids = fs.readdirSync("/proc/self/task");
  } catch {
    // not Linux: the process-wide call below is all there is
  }
  for (const tid of tids) {
    try {
      os.setPriority(Number(tid), 19);
    } catch {
      // a thread that exited meanwhile
    }
  }
  try {
    os.setPriority(19);
  } catch {
    // not permitted: still correct, only not deprioritised
  }
}

interface Session {
  digest: RdbDigest;
  inflate?: zlib.Gunzip;
  hash?: crypto.Hash;
  bytes: number;
  failed?: boolean;
}

const sessions = new Map<number, Session>();
const send = (m: unknown): void => void process.send?.(m);

function fail(id: number, err: unknown): void {
  const s = sessions.get(id);
  if (s) {
    s.failed = true;
    s.inflate?.destroy();
  }
  sessions.delete(id);
  const e = err as Error;
  send({ id, error: { message: e.message, offset: e instanceof RdbParseError ? e.offset : undefined, expected: e instanceof RdbParseError ? e.expected : undefined } });
}

function finish(id: number, s: Session): void {
  try {
    const result = s.digest.digest();
    sessions.delete(id);
    send({ id, result: s.hash ? { ...result, plain: { bytes: s.bytes, sha256: s.hash.digest("hex") } } : result });
  } catch (err) {
    fail(id, err);
  }
}

function open(id: number, opts: ConstructorParameters<typeof RdbDigest>[0] & { gzip?: boolean }): void {
  const { gzip, ...digestOpts } = opts ?? {};
  const s: Session = { digest: new RdbDigest(digestOpts), bytes: 0 };
  if (gzip) {
    s.hash = crypto.createHash("sha256");
    s.inflate = zlib.createGunzip({ chunkSize: 1 << 16 });
    s.inflate.on("data", (plain: Buffer) => {
      if (s.failed) return;
      s.bytes += plain.length;
      s.hash!.update(plain);
      try {
        s.digest.update(plain);
      } catch (err) {
        fail(id, err);
      }
    });
    s.inflate.on("error", (err) => fail(id, new Error(`the stored file does not inflate: ${err.message}`)));
    s.inflate.on("end", () => !s.failed && finish(id, s));
  }
  sessions.set(id, s);
}

process.on("message", (m: Message) => {
  if ("open" in m) return open(m.id, m.open);
  const s = sessions.get(m.id);
  if ("abort" in m) {
    s?.inflate?.destroy();
    sessions.delete(m.id);
    return;
  }
  if (!s) return; // failed or aborted before: its remaining chunks are dropped
  if ("chunk" in m) {
    const chunk = Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength);
    if (s.inflate) {
      s.inflate.write(chunk, () => send({ id: m.id, ack: chunk.length }));
      return;
    }
    try {
      s.digest.update(chunk);
      send({ id: m.id, ack: chunk.length });
    } catch (err) {
      fail(m.id, err);
    }
  } else if (s.inflate) {
    s.inflate.end();
  } else {
    finish(m.id, s);
  }
});
// The parent going away (crash, SIGKILL) closes the channel: nothing is left running.
process.on("disconnect", () => process.exit(0));
lowestPriority();
