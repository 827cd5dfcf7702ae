// Redis's glob (MATCH syntax: * ? [abc] [^a] [a-z] \\x) on raw key bytes: the restore's key filter and
// verification's sampling.

/** Redis's stringmatchlen (glob) on bytes. */
export function globMatch(pattern: Buffer, s: Buffer, pi = 0, si = 0): boolean {
  while (pi < pattern.length) {
    const c = pattern[pi];
    if (c === 0x2a) { // *
      while (pi + 1 < pattern.length && pattern[pi + 1] === 0x2a) pi++;
      if (pi + 1 === pattern.length) return true;
      for (let k = si; k <= s.length; k++) if (globMatch(pattern, s, pi + 1, k)) return true;
      return false;
    }
    if (si >= s.length) return false;
    if (c === 0x3f) { // ?
      pi++;
      si++;
      continue;
    }
    if (c === 0x5b) { // [
      let p = pi + 1;
      const not = pattern[p] === 0x5e;
      if (not) p++;
      let matched = false;
      while (p < pattern.length && pattern[p] !== 0x5d) {
        if (pattern[p] === 0x5c && p + 1 < pattern.length) {
          p++;
          if (pattern[p] === s[si]) matched = true;
        } else if (p + 2 < pattern.length && pattern[p + 1] === 0x2d && pattern[p + 2] !== 0x5d) {
          let lo = pattern[p];
          let hi = pattern[p + 2];
          if (lo > hi) [lo, hi] = [hi, lo];
          if (s[si] >= lo && s[si] <= hi) matched = true;
          p += 2;
        } else if (pattern[p] === s[si]) {
          matched = true;
        }
        p++;
      }
      if (not) matched = !matched;
      if (!matched) return false;
      pi = p + 1;
      si++;
      continue;
    }
    if (c === 0x5c && pi + 1 < pattern.length) pi++; // escaped literal
    if (pattern[pi] !== s[si]) return false;
    pi++;
    si++;
  }
  return si === s.length;
}
