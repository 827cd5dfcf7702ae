// A crs-backup server in a child process (started with child_process.fork), so a test can measure the
// server's memory without its own. argv[2] is the fixture file, argv[3] a data directory. It answers IPC
// messages: "rss" -> { rss } (after a full GC when run with --expose-gc), and exits on "exit".
// Failed authentications are not limited per address here: the flood must be refused by what it is, not
// merely slowed because it all comes from 127.0.0.1.
import { DEFAULTS, startServer } from "../../src/app";
import { startGateway } from "./gateway";
import { silentLogger } from "../../src/log";

async function main(): Promise<void> {
  const [seed, dataDir] = process.argv.slice(2);
  const running = await startServer({ ...DEFAULTS, dataDir: dataDir!, port: 0, seed, rateLimit: 0, schedulerIntervalMs: 0, logger: silentLogger }, {});
  const gateway = await startGateway(running.services, { pipeline: { authFailures: { burst: 0, perSecond: 0 } } });
  process.on("message", (m) => {
    if (m === "rss") {
      // Settled: V8 frees ArrayBuffer backing stores after a GC, on a background thread; read right after one gc()
      // the figure still holds the last requests' bodies, tens of MB that are already garbage.
      const gc = () => (globalThis as { gc?: () => void }).gc?.();
      gc();
      setTimeout(() => {
        gc();
        setTimeout(() => {
          gc();
          process.send!({ rss: process.memoryUsage().rss });
        }, 250);
      }, 250);
    } else if (m === "exit") {
      void gateway.close().then(() => running.close()).then(() => process.exit(0));
    }
  });
  process.send!({ port: gateway.port });
}

main().catch((err: unknown) => {
  process.stderr.write(`flood server failed: ${String(err)}\n`);
  process.exit(1);
});
