// Decoding request parameters from the three wire forms (JSON body, query string, urlencoded form) into one
// nested shape. Everything undecodable is the client's fault and becomes InvalidParameter, never a crash.
import { invalidParameter } from "./errors";

/** A JSON number kept as its source text, so huge or fractional values can be judged by the schema. */
export class JsonNumber {
  constructor(readonly raw: string) {}
}

export type ParamValue = string | boolean | null | JsonNumber | ParamValue[] | ParamObject;
export interface ParamObject {
  [key: string]: ParamValue;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function decodeUtf8(bytes: Buffer, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw invalidParameter(`the ${what} is not valid UTF-8`);
  }
}

/**
 * A strict JSON parser: rejects duplicate keys and keeps numbers as text. Kept hand-written: JSON.parse keeps the
 * last of duplicate keys and rounds huge numbers silently, where both must be InvalidParameter (README, decisions).
 */
export function parseJsonBody(text: string): ParamObject {
  const p = new JsonParser(text);
  p.ws();
  const v = p.value(0);
  p.ws();
  if (p.i !== text.length) p.fail("unexpected data after the JSON value");
  if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof JsonNumber) {
    throw invalidParameter("the JSON body must be an object");
  }
  return v;
}

const MAX_DEPTH = 32;

class JsonParser {
  i = 0;
  constructor(private readonly s: string) {}

  fail(why: string): never {
    throw invalidParameter(`malformed JSON body at offset ${this.i}: ${why}`);
  }

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.i++;
      else break;
    }
  }

  value(depth: number): ParamValue {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    const c = this.s[this.i];
    switch (c) {
      case "{": return this.object(depth);
      case "[": return this.array(depth);
      case '"': return this.string();
      case "t": return this.literal("true", true);
      case "f": return this.literal("false", false);
      case "n": return this.literal("null", null);
      default:
        if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.number();
        return this.fail(c === undefined ? "unexpected end" : `unexpected character ${JSON.stringify(c)}`);
    }
  }

  literal<T extends ParamValue>(word: string, v: T): T {
    if (!this.s.startsWith(word, this.i)) this.fail(`expected ${word}`);
    this.i += word.length;
    return v;
  }

  number(): JsonNumber {
    const m = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    m.lastIndex = this.i;
    const r = m.exec(this.s);
    if (!r) return this.fail("malformed number");
    this.i += r[0].length;
    return new JsonNumber(r[0]);
  }

  string(): string {
    const s = this.s;
    let i = this.i + 1;
    let out = "";
    let start = i;
    for (;;) {
      if (i >= s.length) this.fail("unterminated string");
      const c = s.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) { this.i = i; this.fail("control character in string"); }
      if (c === 0x5c) {
        out += s.slice(start, i);
        const e = s[i + 1];
        switch (e) {
          case '"': out += '"'; break;
          case "\\": out += "\\"; break;
          case "/": out += "/"; break;
          case "b": out += "\b"; break;
          case "f": out += "\f"; break;
          case "n": out += "\n"; break;
          case "r": out += "\r"; break;
          case "t": out += "\t"; break;
          case "u": {
            const hex = s.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) { this.i = i; this.fail("bad \\u escape"); }
            out += String.fromCharCode(parseInt(hex, 16));
            i += 4;
            break;
          }
          default: this.i = i; this.fail("bad escape");
        }
        i += 2;
        start = i;
        continue;
      }
      i++;
    }
    out += s.slice(start, i);
    this.i = i + 1;
    return out;
  }

  array(depth: number): ParamValue[] {
    this.i++;
    const out: ParamValue[] = [];
    this.ws();
    if (this.s[this.i] === "]") { this.i++; return out; }
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i++];
      if (c === "]") return out;
      if (c !== ",") { this.i--; this.fail("expected , or ]"); }
    }
  }

  object(depth: number): ParamObject {
    this.i++;
    const out: ParamObject = Object.create(null) as ParamObject;
    this.ws();
    if (this.s[this.i] === "}") { this.i++; return out; }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail("expected a key");
      const key = this.string();
      if (Object.prototype.hasOwnProperty.call(out, key)) throw invalidParameter(`the JSON body has the key \`${key}\` twice`);
      this.ws();
      if (this.s[this.i++] !== ":") { this.i--; this.fail("expected :"); }
      this.ws();
      out[key] = this.value(depth + 1);
      this.ws();
      const c = this.s[this.i++];
      if (c === "}") return out;
      if (c !== ",") { this.i--; this.fail("expected , or }"); }
    }
  }
}

/**
 * Decodes `a=1&b.0=x` into ordered [name, value] pairs with raw (decoded) values. `plusIsSpace` for forms and
 * query strings alike, as HTML forms and Go's url.Values encode spaces as `+`.
 */
export function decodeUrlEncoded(text: string, what: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  if (text === "") return pairs;
  for (const part of text.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? "" : part.slice(eq + 1);
    pairs.push([percentDecode(rawName, what), percentDecode(rawValue, what)]);
  }
  return pairs;
}

function percentDecode(s: string, what: string): string {
  const plus = s.includes("+") ? s.replace(/\+/g, " ") : s;
  if (!plus.includes("%")) return plus;
  try {
    return decodeURIComponent(plus);
  } catch {
    throw invalidParameter(`the ${what} has bad percent-encoding or invalid UTF-8 in ${JSON.stringify(s.slice(0, 64))}`);
  }
}

/**
 * Rebuilds nesting from flattened names: `Status.0=2&Status.1=4` -> {Status:["2","4"]},
 * `Filters.0.Values.1=x` -> {Filters:[{Values:[<hole>, "x"]}]}. Numeric segments make arrays (0-based).
 */
export function unflatten(pairs: ReadonlyArray<readonly [string, string]>, what: string): ParamObject {
  const root: ParamObject = Object.create(null) as ParamObject;
  const seen = new Set<string>();
  for (const [name, value] of pairs) {
    if (seen.has(name)) throw invalidParameter(`the parameter \`${name}\` appears twice in the ${what}`);
    seen.add(name);
    const segments = name.split(".");
    if (segments.some((s) => s === "")) throw invalidParameter(`the parameter name \`${name}\` has an empty segment`);
    let node: ParamObject | ParamValue[] = root;
    for (let k = 0; k < segments.length; k++) {
      const seg = segments[k]!;
      const last = k === segments.length - 1;
      const isIndex = /^\d+$/.test(seg);
      if (Array.isArray(node) !== isIndex) {
        throw invalidParameter(`the parameter \`${name}\` mixes list indexes and field names at \`${segments.slice(0, k).join(".")}\``);
      }
      const key: string | number = isIndex ? Number(seg) : seg;
      if (isIndex && (key as number) > 10_000) throw invalidParameter(`the list index in \`${name}\` is too large`);
      const container = node as Record<string | number, ParamValue>;
      if (last) {
        if (container[key] !== undefined) throw invalidParameter(`the parameter \`${name}\` conflicts with another parameter`);
        container[key] = value;
      } else {
        let child = container[key];
        const wantArray = /^\d+$/.test(segments[k + 1]!);
        if (child === undefined) {
          child = wantArray ? [] : (Object.create(null) as ParamObject);
          container[key] = child;
        } else if (typeof child !== "object" || child === null || child instanceof JsonNumber) {
          throw invalidParameter(`the parameter \`${name}\` conflicts with \`${segments.slice(0, k + 1).join(".")}\``);
        }
        node = child as ParamObject | ParamValue[];
      }
    }
  }
  compactArrays(root);
  return root;
}

// Flattened lists may skip an index; keep the given order and drop the holes.
function compactArrays(v: ParamValue): void {
  if (Array.isArray(v)) {
    const dense = v.filter((x) => x !== undefined);
    v.length = 0;
    v.push(...dense);
    for (const x of v) compactArrays(x);
  } else if (v && typeof v === "object" && !(v instanceof JsonNumber)) {
    for (const k of Object.keys(v)) compactArrays(v[k]!);
  }
}
