// Child process of bench/rdb.ts: parses (or digests) one RDB file and reports time and peak RSS as JSON, so the
// memory figure is the parser's own and not the benchmark driver's.
//   node dist/bench/rdb-parse-child.js <file> parse|digest|digest-worker
import fs from "node:fs";
import { pipeline } from "node:stream/promises";
import { DigestStream, RdbDigest, RdbReader } from "../src/redis/rdb/index";

async function main(): Promise<void> {
  const [file, mode] = process.argv.slice(2);
  const t0 = process.hrtime.bigint();
  let keys = 0;
  let elements = 0;
  if (mode === "digest-worker") {
    const d = new DigestStream();
    await pipeline(fs.createReadStream(file, { highWaterMark: 1 << 16 }), d);
    keys = (await d.result()).keys;
  } else {
    const sink =
      mode === "digest"
        ? new RdbDigest()
        : new RdbReader({
          onKeyEnd: () => void keys++,
          onString: () => void elements++,
          onListItem: () => void elements++,
          onSetMember: () => void elements++,
          onZsetMember: () => void elements++,
          onHashField: () => void elements++,
          onStreamEntry: () => void elements++,
        });
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 16 })) {
      if (sink instanceof RdbDigest) sink.update(chunk as Buffer);
      else sink.feed(chunk as Buffer);
    }
    if (sink instanceof RdbDigest) keys = sink.digest().keys;
    else sink.end();
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(JSON.stringify({ ms, keys, elements, maxRssMB: process.resourceUsage().maxRSS / 1024 }) + "\n");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
