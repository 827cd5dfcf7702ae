// The API's time strings are local wall-clock time without an offset (`YYYY-MM-DD HH:mm:ss`); the server's
// zone is a setting. Instants are stored as UTC epoch milliseconds. Offsets are cached per hour, because
// formatting sits on the hot path of every listing.

const PATTERN = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Direct-mapped memo slots (a power of two) for date strings per local day. */
const SLOTS = 4096;
/** Offsets are memoised per UTC hour in pages of this many hours (~6 months); at most MAX_PAGES pages (~3 MiB). */
const PAGE = 4096;
const MAX_PAGES = 200;
const UNKNOWN = 0x7fffffff;

export class LocalTime {
  private readonly dtf: Intl.DateTimeFormat;
  private readonly offsetPages = new Map<number, Int32Array>();
  private readonly dayKeys = new Float64Array(SLOTS).fill(NaN);
  private readonly dayTexts = new Array<string>(SLOTS).fill("");

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
    const pageNo = Math.floor(hour / PAGE);
    let page = this.offsetPages.get(pageNo);
    if (!page) {
      if (this.offsetPages.size >= MAX_PAGES) this.offsetPages.clear();
      page = new Int32Array(PAGE).fill(UNKNOWN);
      this.offsetPages.set(pageNo, page);
    }
    const at = hour - pageNo * PAGE;
    let off = page[at]!;
    if (off === UNKNOWN) {
      const parts: Record<string, string> = {};
      for (const p of this.dtf.formatToParts(new Date(hour * HOUR))) parts[p.type] = p.value;
      const wall = Date.UTC(+parts.year!, +parts.month! - 1, +parts.day!, +parts.hour!, +parts.minute!, +parts.second!);
      off = wall - hour * HOUR;
      // Real offsets are within a day; anything else (an impossible zone answer) is just not memoised.
      if (Math.abs(off) < UNKNOWN) page[at] = off;
    }
    return off;
  }

  format(epochMs: number): string {
    // On the hot path of every listing (three times a row): the date part is memoised per local day and the
    // time of day is plain arithmetic, with no Date object.
    const local = Math.trunc(epochMs + this.offsetAt(epochMs));
    const day = Math.floor(local / DAY);
    const slot = day & (SLOTS - 1);
    let date: string;
    if (this.dayKeys[slot] === day) date = this.dayTexts[slot]!;
    else {
      const d = new Date(day * DAY);
      if (Number.isNaN(d.getTime())) return formatSlow(local);
      date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} `;
      this.dayKeys[slot] = day;
      this.dayTexts[slot] = date;
    }
    const s = Math.floor((local - day * DAY) / 1000);
    const h = Math.floor(s / 3600);
    const m = Math.floor(s / 60) % 60;
    return `${date}${pad(h)}:${pad(m)}:${pad(s % 60)}`;
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

function formatSlow(local: number): string {
  const d = new Date(local);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
