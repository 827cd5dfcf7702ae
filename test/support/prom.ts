// A small strict parser of the Prometheus text exposition format (version 0.0.4), for tests: it refuses what a
// Prometheus server would refuse (a sample before its family's TYPE, a malformed label set, a bad value, a
// duplicate series, a histogram without +Inf or with decreasing buckets), so a test that parses /metrics also
// checks that the format is right.

export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help?: string;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  families: Map<string, Family>;
  samples: Sample[];
  /** The value of one series (labels must match exactly), or undefined. */
  get(name: string, labels?: Record<string, string>): number | undefined;
  /** The sum over every series of `name` whose labels include `match`. */
  sum(name: string, match?: Record<string, string>): number;
  /** Every metric name sampled (series names, with _bucket/_sum/_count). */
  names(): Set<string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A value as Prometheus reads it (Go's ParseFloat: NaN and Inf in any case, as prom-client writes "Nan"). */
function parseValue(text: string, line: number): number {
  if (/^\+?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

/** Parses `{a="x",b="y"}` starting at `s[i] === "{"`; returns the labels and the index after `}`. */
function parseLabels(s: string, i: number, line: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  i++; // {
  for (;;) {
    if (s[i] === "}") return { labels, end: i + 1 };
    const eq = s.indexOf("=", i);
    if (eq < 0) throw new Error(`line ${line}: label without =`);
    const name = s.slice(i, eq).trim();
    if (!LABEL.test(name)) throw new Error(`line ${line}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`line ${line}: label ${name} twice`);
    if (s[eq + 1] !== '"') throw new Error(`line ${line}: label value not quoted`);
    let j = eq + 2;
    let value = "";
    for (;;) {
      const c = s[j];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (c === "\\") {
        const n = s[j + 1];
        if (n === "\\") value += "\\";
        else if (n === '"') value += '"';
        else if (n === "n") value += "\n";
        else throw new Error(`line ${line}: bad escape \\${n}`);
        j += 2;
        continue;
      }
      if (c === '"') break;
      if (c === "\n") throw new Error(`line ${line}: newline in label value`);
      value += c;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (s[i] === ",") i++;
    else if (s[i] !== "}") throw new Error(`line ${line}: expected , or } after a label`);
  }
}

function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === "histogram" || f.type === "summary")) return f;
  }
  return undefined;
}

export function parsePrometheus(text: string): Exposition {
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const lines = text.split("\n");
  for (const [n, raw] of lines.entries()) {
    const line = n + 1;
    if (raw === "") continue;
    if (raw.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!m) continue; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
      const f = families.get(name) ?? { name, type: "untyped" as const };
      if (kind === "TYPE") {
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`line ${line}: bad type ${rest}`);
        if (samples.some((s) => familyOf(s.name, families) === f)) throw new Error(`line ${line}: TYPE of ${name} after its samples`);
        f.type = rest as Family["type"];
      } else {
        if (f.help !== undefined) throw new Error(`line ${line}: HELP of ${name} twice`);
        f.help = rest;
      }
      families.set(name, f);
      continue;
    }
    const brace = raw.indexOf("{");
    const space = raw.indexOf(" ");
    const nameEnd = brace >= 0 && (space < 0 || brace < space) ? brace : space;
    if (nameEnd < 0) throw new Error(`line ${line}: no value`);
    const name = raw.slice(0, nameEnd);
    if (!NAME.test(name)) throw new Error(`line ${line}: bad metric name ${JSON.stringify(name)}`);
    let labels: Record<string, string> = {};
    let rest = raw.slice(nameEnd);
    if (rest.startsWith("{")) {
      const p = parseLabels(raw, nameEnd, line);
      labels = p.labels;
      rest = raw.slice(p.end);
    }
    const parts = rest.trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2 || parts[0] === "") throw new Error(`line ${line}: expected a value and an optional timestamp`);
    const value = parseValue(parts[0]!, line);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`line ${line}: bad timestamp`);
    const family = familyOf(name, families);
    if (!family || family.type === "untyped") throw new Error(`line ${line}: sample ${name} has no TYPE before it`);
    if (family.type === "counter" && !(value >= 0)) throw new Error(`line ${line}: counter ${name} is ${value}`);
    if (family.type === "histogram" && name.endsWith("_bucket") && labels.le === undefined) throw new Error(`line ${line}: bucket without le`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`line ${line}: duplicate series ${key}`);
    seen.add(key);
    samples.push({ name, labels, value });
  }
  // Histograms: cumulative buckets ending in +Inf equal to _count.
  for (const f of families.values()) {
    if (f.type !== "histogram") continue;
    const groups = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${f.name}_bucket`)) {
      const { le: _le, ...rest } = s.labels;
      const k = JSON.stringify(Object.entries(rest).sort());
      groups.set(k, [...(groups.get(k) ?? []), s]);
    }
    for (const [k, buckets] of groups) {
      const sorted = [...buckets].sort((a, b) => parseValue(a.labels.le!, 0) - parseValue(b.labels.le!, 0));
      if (sorted.at(-1)?.labels.le !== "+Inf") throw new Error(`histogram ${f.name}${k} has no +Inf bucket`);
      for (let i = 1; i < sorted.length; i++) if (sorted[i]!.value < sorted[i - 1]!.value) throw new Error(`histogram ${f.name}${k} buckets decrease`);
      const count = samples.find((s) => s.name === `${f.name}_count` && JSON.stringify(Object.entries(s.labels).sort()) === k);
      if (!count || count.value !== sorted.at(-1)!.value) throw new Error(`histogram ${f.name}${k}: _count differs from the +Inf bucket`);
    }
  }
  const matches = (labels: Record<string, string>, m: Record<string, string>) => Object.entries(m).every(([k, v]) => labels[k] === v);
  return {
    families,
    samples,
    get(name, labels = {}) {
      const want = JSON.stringify(Object.entries(labels).sort());
      return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
    },
    sum(name, match = {}) {
      return samples.filter((s) => s.name === name && matches(s.labels, match)).reduce((a, s) => a + s.value, 0);
    },
    names() {
      return new Set(samples.map((s) => s.name));
    },
  };
}
