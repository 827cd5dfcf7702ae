// Reads a V8 .cpuprofile (node --cpu-prof, or bench/pipeline.ts's BENCH_PROFILE) and prints where the time went:
// self time summed by function (name, file:line) and by file, as shares of the whole and, given a request count,
// as µs per request.
//
//   [CPUPROF_WINDOW=FROM_MS-TO_MS] node dist/bench/cpuprofile-top.js FILE.cpuprofile [requests] [top=30]
import fs from "node:fs";
import path from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** A file's name shortened to what tells it apart: the package in node_modules, the path under dist/. */
function shortUrl(url: string): string {
  if (!url) return "(native)";
  const u = url.replace(/^file:\/\//, "");
  const nm = u.lastIndexOf("node_modules/");
  if (nm >= 0) return u.slice(nm + "node_modules/".length);
  const dist = u.indexOf("/dist/");
  if (dist >= 0) return u.slice(dist + "/dist/".length);
  return u.startsWith("node:") ? u : path.basename(u);
}

/** `window` [fromMs, toMs] after the profile's start: only the samples taken in it count (e.g. past start-up). */
export function summarise(p: Profile, window?: [number, number]): { totalUs: number; byFunction: Map<string, number>; byFile: Map<string, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = 0; // µs since the profile's start
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (window && (at < window[0] * 1000 || at > window[1] * 1000)) continue;
    // A sample's time is the delta to the next sample.
    const dt = p.timeDeltas[i + 1] ?? 0;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  }
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let totalUs = 0;
  for (const [id, us] of self) {
    const f = byId.get(id)!.callFrame;
    const file = shortUrl(f.url);
    const fn = `${f.functionName || "(anonymous)"} ${file}${f.url ? `:${f.lineNumber + 1}` : ""}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byFile.set(file, (byFile.get(file) ?? 0) + us);
    totalUs += us;
  }
  return { totalUs, byFunction, byFile };
}

function main(): void {
  const [file, requestsText, topText] = process.argv.slice(2);
  if (!file) throw new Error("usage: cpuprofile-top FILE.cpuprofile [requests] [top]");
  const p = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
  const requests = requestsText ? Number(requestsText) : 0;
  const top = Number(topText ?? 30);
  // CPUPROF_WINDOW=FROM-TO (ms after the profile's start): only that stretch, e.g. what bench:scale's fleet prints.
  const w = /^(\d+)-(\d+)$/.exec(process.env.CPUPROF_WINDOW ?? "");
  const { totalUs, byFunction, byFile } = summarise(p, w ? [Number(w[1]), Number(w[2])] : undefined);
  const idle = byFunction.get("(idle) (native)") ?? 0;
  const busy = totalUs - idle;
  console.log(`profile: ${(totalUs / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy (not idle)${requests ? `; ${requests} requests: ${(busy / requests).toFixed(1)} µs busy per request` : ""}`);
  const table = (title: string, m: Map<string, number>) => {
    console.log(`\n| ${title} | self ms | % of busy |${requests ? " µs/request |" : ""}`);
    console.log(`|---|---|---|${requests ? "---|" : ""}`);
    for (const [k, us] of [...m].filter(([k]) => !k.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`| ${k.replace(/\|/g, "\\|")} | ${(us / 1000).toFixed(0)} | ${((100 * us) / busy).toFixed(1)} |${requests ? ` ${(us / requests).toFixed(2)} |` : ""}`);
    }
  };
  table("function (file:line)", byFunction);
  table("file", byFile);
}

if (require.main === module) main();
