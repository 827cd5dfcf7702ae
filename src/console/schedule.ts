// When an instance's next automatic backup is due, by the same rules the scheduler fires on (src/jobs/scheduler.ts):
// whole-hour windows in the server's time zone, on the chosen weekdays, once per window.
import type { Instance } from "../catalog/types";
import { DAY_MS } from "../jobs/backups";
import { parsePeriod, WEEKDAYS } from "../jobs/scheduler";
import type { LocalTime } from "../protocol/time";

const HOUR_MS = 3_600_000;

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/**
 * The next automatic-backup window that has not been served yet: the one open now if the scheduler has not fired
 * in it, else the next on a chosen day. Undefined when the schedule can never fire (no days, bad period).
 */
export function nextWindow(instance: Pick<Instance, "autoBackupWeekDays" | "autoBackupPeriod" | "lastAutoWindow">, now: number, time: LocalTime): { start: number; end: number } | undefined {
  const period = parsePeriod(instance.autoBackupPeriod);
  if (!period || instance.autoBackupWeekDays.length === 0) return undefined;
  // From yesterday (a window may cross midnight) to a week ahead; steps of 24 h may visit a 25-hour day twice,
  // which is harmless, and never skip a day.
  for (let d = -1; d <= 8; d++) {
    const p = time.parts(now + d * DAY_MS);
    const start = time.parse(`${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(period.startHour)}:00:00`);
    if (start === undefined) continue;
    const end = start + period.hours * HOUR_MS;
    if (end <= now) continue;
    if (start <= now && instance.lastAutoWindow >= start) continue;
    if (!instance.autoBackupWeekDays.includes(WEEKDAYS[time.parts(start).weekday]!)) continue;
    return { start, end };
  }
  return undefined;
}
