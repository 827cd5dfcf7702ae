// What commands print: tables or JSON for read commands (`--output table|json`), sizes, and progress bars on
// standard error (cli-progress: a bar on a terminal, a line now and then otherwise, so logs stay readable).
import cliProgress from "cli-progress";
import { formatBytes } from "../units";
import { UsageError } from "./settings";

export type OutputFormat = "table" | "json";

/** The `--output` option's value, or a usage error naming it. */
export function formatOf(v: unknown): OutputFormat {
  if (v !== "table" && v !== "json") throw new UsageError(`--output must be table or json, got ${JSON.stringify(v)}`);
  return v;
}

export { formatBytes };

/** Prints rows as an aligned table (headers from the first row's keys) or as one JSON array. */
export function printRows(rows: Array<Record<string, unknown>>, format: OutputFormat, columns?: string[]): void {
  if (format === "json") {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  const cols = columns ?? (rows[0] ? Object.keys(rows[0]) : []);
  if (!rows.length) {
    process.stdout.write("(none)\n");
    return;
  }
  const cell = (v: unknown) => (v === undefined || v === null ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join("  ");
  process.stdout.write(`${line(cols.map((c) => c.toUpperCase()))}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => cell(r[c])))}\n`);
}

export interface Progress {
  update(done: number, total: number | undefined, label: string): void;
  /** Progress in items rather than bytes (n of total). */
  updateCount(done: number, total: number, label: string): void;
  stop(final?: { done: number; label: string }): void;
}

/** A progress display for a transfer of `done` bytes (of `total` when known). */
export function progressBar(): Progress {
  const started = Date.now();
  const tty = process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = 0;
  const rate = (done: number) => `${formatBytes(done / Math.max((Date.now() - started) / 1000, 0.001))}/s`;
  const payload = (done: number, total: number | undefined, label: string) => ({
    bytes: formatBytes(done), of: total ? ` of ${formatBytes(total)}` : "", rate: rate(done), secs: ((Date.now() - started) / 1000).toFixed(1), label,
  });
  return {
    update(done, total, label) {
      if (tty) {
        if (!bar) {
          bar = new cliProgress.SingleBar({
            format: "[{bar}] {bytes}{of}  {rate}  {secs}s  {label}", stream: process.stderr, hideCursor: true, barsize: 24, fps: 5, clearOnComplete: false,
          }, cliProgress.Presets.legacy);
          bar.start(total ?? 0, 0, payload(done, total, label));
        }
        if (total) bar.setTotal(total);
        bar.update(total ? Math.min(done, total) : 0, payload(done, total, label));
        return;
      }
      // Not a terminal: a plain line at most every 2 s.
      if (Date.now() - lastLine < 2000) return;
      lastLine = Date.now();
      const p = payload(done, total, label);
      process.stderr.write(`${p.bytes}${p.of}  ${p.rate}  ${p.secs}s  ${label}\n`);
    },
    updateCount(done, total, label) {
      if (tty) {
        if (!bar) {
          bar = new cliProgress.SingleBar({ format: "[{bar}] {value}/{total}  {label}", stream: process.stderr, hideCursor: true, barsize: 24, fps: 5 }, cliProgress.Presets.legacy);
          bar.start(total, 0, { label });
        }
        bar.update(done, { label });
        return;
      }
      if (Date.now() - lastLine < 2000 && done !== total) return;
      lastLine = Date.now();
      process.stderr.write(`${done}/${total}  ${label}\n`);
    },
    stop(final) {
      if (bar) {
        if (final) bar.update(bar.getTotal() || 0, payload(final.done, undefined, final.label));
        bar.stop();
      } else if (final) {
        const p = payload(final.done, undefined, final.label);
        process.stderr.write(`${p.bytes}  ${p.rate}  ${p.secs}s  ${final.label}\n`);
      }
    },
  };
}
