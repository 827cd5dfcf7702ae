// Parameter schemas for actions: type checks (with the string-encoded numbers real clients send), required
// fields, unknown names and ranges, each failing with the precise Tencent code and the parameter's name.
import { ApiError, ErrorCode, invalidParameter } from "./errors";
import { JsonNumber, ParamObject, ParamValue } from "./params";

interface Base {
  required?: boolean;
}
export interface StringSpec extends Base {
  type: "string";
  maxLength?: number;
}
export interface IntegerSpec extends Base {
  type: "integer";
  min?: number;
  max?: number;
  /** The code for an out-of-range value; the default is InvalidParameterValue. */
  rangeCode?: ErrorCode;
}
export interface BooleanSpec extends Base {
  type: "boolean";
}
export interface ArraySpec extends Base {
  type: "array";
  items: StringSpec | IntegerSpec | ObjectSpec;
  maxItems?: number;
}
/** A structure (e.g. DescribeBackupUrl's `LimitVpc.N`): its own fields, checked like top-level parameters. */
export interface ObjectSpec extends Base {
  type: "object";
  fields: Record<string, StringSpec | IntegerSpec | BooleanSpec | ArraySpec>;
}
export type FieldSpec = StringSpec | IntegerSpec | BooleanSpec | ArraySpec | ObjectSpec;
export type Schema = Record<string, FieldSpec>;

type ValueOf<F extends FieldSpec> = F extends StringSpec
  ? string
  : F extends IntegerSpec
    ? number
    : F extends BooleanSpec
      ? boolean
      : F extends ArraySpec
        ? Array<ValueOf<F["items"]>>
        : F extends ObjectSpec
          ? { [K in keyof F["fields"]]?: ValueOf<F["fields"][K]> }
          : never;

export type Params<S extends Schema> = { [K in keyof S]?: ValueOf<S[K]> };

const INT64_MAX = 9223372036854775807n;

function kindOf(v: ParamValue): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v instanceof JsonNumber) return "a number";
  if (typeof v === "object") return "an object";
  return typeof v === "string" ? "a string" : "a boolean";
}

function checkInteger(name: string, v: ParamValue, spec: IntegerSpec): number {
  let text: string;
  if (v instanceof JsonNumber) text = v.raw;
  else if (typeof v === "string") text = v.trim();
  else throw invalidParameter(`\`${name}\` must be an integer, got ${kindOf(v)}`);
  if (!/^-?\d+$/.test(text)) throw invalidParameter(`\`${name}\` must be an integer, got ${JSON.stringify(text.slice(0, 40))}`);
  const big = BigInt(text);
  if (big > INT64_MAX || big < -INT64_MAX - 1n) throw invalidParameter(`\`${name}\` is out of the 64-bit integer range`);
  const n = Number(text);
  const lo = spec.min ?? Number.MIN_SAFE_INTEGER;
  const hi = spec.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(n) || n < lo || n > hi) {
    const rule = spec.min !== undefined && spec.max !== undefined ? `between ${spec.min} and ${spec.max}` : spec.min !== undefined ? `at least ${spec.min}` : `at most ${hi}`;
    throw new ApiError(spec.rangeCode ?? "InvalidParameterValue", { reason: `\`${name}\` must be ${rule}, got ${text}` });
  }
  return n;
}

function checkString(name: string, v: ParamValue, spec: StringSpec): string {
  if (typeof v !== "string") throw invalidParameter(`\`${name}\` must be a string, got ${kindOf(v)}`);
  // Every schema names its own bounds; this is the net under a field that forgot to.
  const max = spec.maxLength ?? 1024;
  if (v.length > max) throw invalidParameter(`\`${name}\` is longer than ${max} characters`);
  return v;
}

function checkField(name: string, v: ParamValue, spec: FieldSpec, action: string): unknown {
  switch (spec.type) {
    case "string":
      return checkString(name, v, spec);
    case "integer":
      return checkInteger(name, v, spec);
    case "boolean":
      if (typeof v === "boolean") return v;
      if (v === "true" || v === "false") return v === "true";
      throw invalidParameter(`\`${name}\` must be a boolean (true or false)`);
    case "array": {
      if (!Array.isArray(v)) throw invalidParameter(`\`${name}\` must be an array (\`${name}.0\`, \`${name}.1\`, ... in a query or form), got ${kindOf(v)}`);
      const max = spec.maxItems ?? 1000;
      if (v.length > max) throw invalidParameter(`\`${name}\` has more than ${max} items`);
      return v.map((item, i) => checkField(`${name}.${i}`, item, spec.items, action));
    }
    case "object": {
      if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof JsonNumber) {
        throw invalidParameter(`\`${name}\` must be an object (\`${name}.Field\` in a query or form), got ${kindOf(v)}`);
      }
      return checkFields(v, spec.fields, action, `${name}.`);
    }
  }
}

function checkFields(input: ParamObject, fields: Record<string, FieldSpec>, action: string, prefix = ""): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(input)) {
    if (!Object.prototype.hasOwnProperty.call(fields, name)) throw new ApiError("UnknownParameter", { name: prefix + name, action });
  }
  for (const [name, spec] of Object.entries(fields)) {
    const v = input[name];
    if (v === undefined || v === null || (spec.required && v === "")) {
      if (spec.required) throw new ApiError("MissingParameter", { name: prefix + name });
      continue;
    }
    out[name] = checkField(prefix + name, v, spec, action);
  }
  return out;
}

/** Validates business parameters against a schema; `action` names the action in UnknownParameter. */
export function validate<S extends Schema>(action: string, schema: S, input: ParamObject): Params<S> {
  return checkFields(input, schema, action) as Params<S>;
}
