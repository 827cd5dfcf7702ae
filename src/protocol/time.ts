// The API's time strings are local wall-clock time without an offset (`YYYY-MM-DD HH:mm:ss`); the server's
// zone is a setting. Instants are stored as UTC epoch milliseconds. Offsets are cached per hour, because
// formatting sits on the hot path of every listing.

const PATTERN = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
const HOUR = 3_600_000;

export class LocalTime {
  private readonly dtf: Intl.DateTimeFormat;
  private readonly offsets = new Map<number, number>();

  constructor(readonly timeZone: string) {
    try {
      this.dtf = new Intl.DateTimeFormat("en-US", {
        timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
      });
    } catch {
      throw new Error(`unknown time zone ${JSON.stringify(timeZone)} (use an IANA name such as Asia/Shanghai)`);
    }
  }

  /** Offset of the zone from UTC in ms at the given instant. */
  offsetAt(epochMs: number): number {
    const hour = Math.floor(epochMs / HOUR);
    let off = this.offsets.get(hour);
    if (off === undefined) {
      const parts: Record<string, string> = {};
      for (const p of this.dtf.formatToParts(new Date(hour * HOUR))) parts[p.type] = p.value;
      const wall = Date.UTC(+parts.year!, +parts.month! - 1, +parts.day!, +parts.hour!, +parts.minute!, +parts.second!);
      off = wall - hour * HOUR;
      if (this.offsets.size > 100_000) this.offsets.clear();
      this.offsets.set(hour, off);
    }
    return off;
  }

  format(epochMs: number): string {
    const d = new Date(epochMs + this.offsetAt(epochMs));
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }

  /** Parses a local time string; undefined if it is not a valid `YYYY-MM-DD HH:mm:ss`. */
  parse(text: string): number | undefined {
    const m = PATTERN.exec(text);
    if (!m) return undefined;
    const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
    const wall = Date.UTC(y, mo - 1, d, h, mi, s);
    const back = new Date(wall);
    if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return undefined;
    // Two passes settle the offset across a DST change.
    let t = wall - this.offsetAt(wall);
    t = wall - this.offsetAt(t);
    return t;
  }

  /** Wall-clock parts of an instant in the zone (for the scheduler). */
  parts(epochMs: number): { year: number; month: number; day: number; hour: number; minute: number; weekday: number } {
    const d = new Date(epochMs + this.offsetAt(epochMs));
    return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), weekday: d.getUTCDay() };
  }
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
