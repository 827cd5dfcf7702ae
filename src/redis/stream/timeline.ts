// Time on the stream: which units a restore to a second includes, and which seconds have no backup data.
//
// A sample (o, t) says the master's offset was o at master time t. So a unit ending at offset e <= o ran at or
// before t, and one ending at e > o ran after t. For a cut at the end of second S (cutoff = (S+1)*1000 ms):
// - every unit ending at or before the last sample taken before the cutoff is in;
// - every unit ending after the first sample taken at or after the cutoff is out;
// - between the two, units are placed by arrival (arrival follows execution, so "arrived before the cutoff" is
//   never wrong to include; a unit that ran just before the cutoff but arrived after it is left out).
// The cut is a prefix: the first unit left out ends it.

export interface TimedUnit {
  end: number;
  arrival: number;
}

/** The (offset, time) bounds for a cutoff, from every sample of the lineage. */
export function sampleBounds(samples: ReadonlyArray<readonly [number, number]>, cutoffMs: number): { sure: number; never: number } {
  let sure = -Infinity;
  let never = Infinity;
  for (const [o, t] of samples) {
    if (t < cutoffMs) sure = Math.max(sure, o);
    else never = Math.min(never, o);
  }
  return { sure, never };
}

/** How many of `units` (in stream order) a cut at `cutoffMs` includes. */
export function unitsBefore(units: readonly TimedUnit[], bounds: { sure: number; never: number }, cutoffMs: number): number {
  let n = 0;
  for (const u of units) {
    const inside = u.end <= bounds.sure || (u.end <= bounds.never && u.arrival < cutoffMs);
    if (!inside) break;
    n++;
  }
  return n;
}

export interface Coverage {
  fromMs: number;
  toMs: number;
}

/**
 * Seconds without backup data between `sinceMs` and `untilMs`: the holes between covered ranges (a range is the
 * time a segment accounts for). Ranges closer than `slackMs` are joined (commits are about a second apart).
 * Returned as inclusive whole seconds.
 */
export function missingRanges(ranges: readonly Coverage[], sinceMs: number, untilMs: number, slackMs = 1500): Array<{ start: number; end: number }> {
  const sorted = [...ranges].sort((a, b) => a.fromMs - b.fromMs);
  const out: Array<{ start: number; end: number }> = [];
  let at = sinceMs;
  for (const r of sorted) {
    if (r.fromMs - at > slackMs) out.push({ start: Math.floor(at / 1000), end: Math.floor((r.fromMs - 1) / 1000) });
    at = Math.max(at, r.toMs);
  }
  if (untilMs - at > slackMs + 1000) out.push({ start: Math.floor(at / 1000), end: Math.floor((untilMs - 1) / 1000) });
  return out.filter((g) => g.end >= g.start);
}
