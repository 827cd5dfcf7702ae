// The API's automatic-backup schedule formats: WeekDays names and whole-hour TimePeriod windows.

/** Day names in the API's order (DescribeAutoBackupConfig lists them Monday first). */
export const ALL_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/** Day names by JavaScript's day index (0 = Sunday). */
export const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** Parses `HH:00-HH:00` into start hour and length in hours (a window may cross midnight). */
export function parsePeriod(period: string): { startHour: number; hours: number } | undefined {
  const m = /^(\d{2}):00-(\d{2}):00$/.exec(period);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (start > 23 || end > 23 || start === end) return undefined;
  return { startHour: start, hours: (end - start + 24) % 24 };
}
