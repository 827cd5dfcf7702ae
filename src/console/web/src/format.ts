// Numbers and times as people read them. API times are the server zone's wall clock (`YYYY-MM-DD HH:mm:ss`).
import type { T } from "./i18n";

export function bytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "—";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

export function age(seconds: number, t: T): string {
  if (seconds < 60) return t("age.seconds", { n: seconds });
  if (seconds < 3600) return t("age.minutes", { n: Math.floor(seconds / 60) });
  if (seconds < 86400) return t("age.hours", { n: Math.floor(seconds / 3600) });
  const days = Math.floor(seconds / 86400);
  return days === 1 ? t("age.day") : t("age.days", { n: days });
}

export function until(seconds: number, t: T): string {
  if (seconds <= 0) return t("in.now");
  if (seconds < 3600) return t("in.minutes", { n: Math.max(1, Math.round(seconds / 60)) });
  if (seconds < 86400) return t("in.hours", { n: Math.round(seconds / 3600) });
  const days = Math.round(seconds / 86400);
  return days === 1 ? t("in.day") : t("in.days", { n: days });
}

/** An API time as milliseconds on a zone-less scale: differences between two of them are right. */
export function wallMs(text: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(text);
  if (!m) return undefined;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

/** `<input type="datetime-local">` value (YYYY-MM-DDTHH:mm[:ss]) to an API time, and back. */
export function fromInput(v: string): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?$/.exec(v);
  return m ? `${m[1]} ${m[2]}${m[3] ?? ":00"}` : undefined;
}

export function toInput(v: string | null): string {
  const m = v ? /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}):(\d{2})$/.exec(v) : null;
  return m ? `${m[1]}T${m[2]}${m[3] === "00" ? "" : `:${m[3]}`}` : "";
}
