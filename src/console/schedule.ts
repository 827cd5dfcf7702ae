// When an instance's next automatic backup is due, by the same rules the scheduler fires on (src/jobs/scheduler.ts):
// whole-hour windows in the server's time zone, on the chosen weekdays, once per window.
import type { Instance } from "../catalog/types";
import { parsePeriod, WEEKDAYS } from "../protocol/schedule";
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
  const today = time.parts(now);
  // Calendar days from yesterday (a window may cross midnight) to a week ahead, counted on the calendar rather
  // than in steps of 24 hours, which skip or repeat a date next to a daylight-saving change.
  for (let d = -1; d <= 7; d++) {
    const date = new Date(Date.UTC(today.year, today.month - 1, today.day + d));
    const start = time.parse(`${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ${pad(period.startHour)}:00:00`);
    if (start === undefined) continue;
    const end = start + period.hours * HOUR_MS;
    if (end <= now) continue;
    if (start <= now && instance.lastAutoWindow >= start) continue;
    if (!instance.autoBackupWeekDays.includes(WEEKDAYS[date.getUTCDay()]!)) continue;
    return { start, end };
  }
  return undefined;
}
