// Backup size and duration over time for one instance: a small SVG drawn here (no chart library). Size is the
// blue line on the left axis, duration the orange line on the right axis; every point's title names its backup.
import { useApp } from "./app";
import { bytes, duration, wallMs } from "./format";
import type { BackupSet } from "./types";

const W = 800;
const H = 240;
const PAD = { left: 70, right: 70, top: 16, bottom: 34 };

function ticks(max: number, n = 4): number[] {
  return Array.from({ length: n + 1 }, (_, i) => (max * i) / n);
}

export function SizeDurationChart({ backups }: { backups: BackupSet[] }) {
  const { t } = useApp();
  const points = backups
    .map((b) => ({ b, start: wallMs(b.StartTime), end: b.EndTime ? wallMs(b.EndTime) : undefined }))
    .filter((p): p is { b: BackupSet; start: number; end: number | undefined } => p.start !== undefined)
    .map((p) => ({ ...p, seconds: p.end !== undefined ? Math.max(0, Math.round((p.end - p.start) / 1000)) : 0 }))
    .sort((a, b) => a.start - b.start);
  if (points.length === 0) return <p class="muted" data-testid="chart-empty">{t("chart.empty")}</p>;
  const t0 = points[0]!.start;
  const t1 = points[points.length - 1]!.start;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  // Time on the x axis; when every backup started in the same second, evenly spaced instead.
  const x = (p: (typeof points)[number], i: number) =>
    PAD.left + (t1 > t0 ? ((p.start - t0) / (t1 - t0)) * plotW : points.length === 1 ? plotW / 2 : (i / (points.length - 1)) * plotW);
  const maxSize = Math.max(...points.map((p) => p.b.BackupSize), 1);
  const maxSecs = Math.max(...points.map((p) => p.seconds), 1);
  const ySize = (v: number) => PAD.top + plotH - (v / maxSize) * plotH;
  const ySecs = (v: number) => PAD.top + plotH - (v / maxSecs) * plotH;
  const sizeLine = points.map((p, i) => `${x(p, i).toFixed(1)},${ySize(p.b.BackupSize).toFixed(1)}`).join(" ");
  const secsLine = points.map((p, i) => `${x(p, i).toFixed(1)},${ySecs(p.seconds).toFixed(1)}`).join(" ");
  return (
    <figure class="chart" data-testid="chart" data-points={points.length}>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={t("chart.title")}>
        {ticks(1).map((f) => {
          const y = PAD.top + plotH - f * plotH;
          return (
            <g class="tick">
              <line x1={PAD.left} x2={W - PAD.right} y1={y} y2={y} />
              <text x={PAD.left - 6} y={y + 4} text-anchor="end" class="axis-size">{bytes(Math.round(f * maxSize))}</text>
              <text x={W - PAD.right + 6} y={y + 4} text-anchor="start" class="axis-duration">{duration(Math.round(f * maxSecs))}</text>
            </g>
          );
        })}
        <text x={PAD.left} y={H - 10} class="axis-time">{points[0]!.b.StartTime}</text>
        {points.length > 1 ? <text x={W - PAD.right} y={H - 10} text-anchor="end" class="axis-time">{points[points.length - 1]!.b.StartTime}</text> : null}
        <polyline class="series-size" points={sizeLine} />
        <polyline class="series-duration" points={secsLine} />
        {points.map((p, i) => (
          <g>
            <circle class="dot-size" cx={x(p, i)} cy={ySize(p.b.BackupSize)} r={3}>
              <title>{`${p.b.StartTime} · ${t("chart.size")} ${bytes(p.b.BackupSize)} · ${t("chart.duration")} ${duration(p.seconds)}`}</title>
            </circle>
            <circle class="dot-duration" cx={x(p, i)} cy={ySecs(p.seconds)} r={2.5}>
              <title>{`${p.b.StartTime} · ${t("chart.duration")} ${duration(p.seconds)}`}</title>
            </circle>
          </g>
        ))}
      </svg>
      <figcaption>
        <span class="legend legend-size">{t("chart.size")}</span>
        <span class="legend legend-duration">{t("chart.duration")}</span>
        <span class="muted">{t("chart.note", { n: points.length })}</span>
      </figcaption>
    </figure>
  );
}
