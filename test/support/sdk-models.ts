// The official SDK's models of the redis 2018-04-12 API, read from the installed tencentcloud-sdk-nodejs's
// declarations (redis_models.d.ts, generated from the same api.json as tccli's) with the TypeScript compiler, so a
// test can enumerate a structure's fields and their JSON types instead of keeping a copy of the list.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import ts from "typescript";

export type JsonKind = "string" | "number" | "boolean" | "array" | "object";

export interface ModelField {
  name: string;
  /** The JSON type of the field's value. */
  kind: JsonKind;
  /** For arrays: the elements' JSON type; for objects and arrays of objects: the model's name. */
  element?: JsonKind;
  model?: string;
}

let models: Map<string, ModelField[]> | undefined;

function kindOf(t: ts.TypeNode): { kind: JsonKind; model?: string } {
  switch (t.kind) {
    case ts.SyntaxKind.StringKeyword: return { kind: "string" };
    case ts.SyntaxKind.NumberKeyword: return { kind: "number" };
    case ts.SyntaxKind.BooleanKeyword: return { kind: "boolean" };
  }
  // Integers the SDK lets callers pass as bigint (`number | bigint`) are JSON numbers.
  if (ts.isUnionTypeNode(t) && t.types.every((u) => u.kind === ts.SyntaxKind.NumberKeyword || u.kind === ts.SyntaxKind.BigIntKeyword)) return { kind: "number" };
  if (ts.isTypeReferenceNode(t) && ts.isIdentifier(t.typeName)) return { kind: "object", model: t.typeName.text };
  throw new Error(`unexpected type in the SDK's models: ${ts.SyntaxKind[t.kind]}`);
}

function load(): Map<string, ModelField[]> {
  if (models) return models;
  const root = path.dirname(require.resolve("tencentcloud-sdk-nodejs/package.json"));
  const file = path.join(root, "tencentcloud", "services", "redis", "v20180412", "redis_models.d.ts");
  const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, false);
  const found = new Map<string, ModelField[]>();
  for (const st of source.statements) {
    if (!ts.isInterfaceDeclaration(st)) continue;
    const fields: ModelField[] = [];
    for (const m of st.members) {
      if (!ts.isPropertySignature(m) || !m.type || !ts.isIdentifier(m.name)) continue;
      const t = m.type;
      if (ts.isTypeReferenceNode(t) && ts.isIdentifier(t.typeName) && t.typeName.text === "Array" && t.typeArguments?.length === 1) {
        const el = kindOf(t.typeArguments[0]!);
        fields.push({ name: m.name.text, kind: "array", element: el.kind, ...(el.model ? { model: el.model } : {}) });
      } else if (ts.isArrayTypeNode(t)) {
        const el = kindOf(t.elementType);
        fields.push({ name: m.name.text, kind: "array", element: el.kind, ...(el.model ? { model: el.model } : {}) });
      } else {
        fields.push({ name: m.name.text, ...kindOf(t) });
      }
    }
    found.set(st.name.text, fields);
  }
  models = found;
  return found;
}

/** The fields of one model (an interface of redis_models.d.ts), in declaration order. */
export function modelFields(name: string): ModelField[] {
  const fields = load().get(name);
  assert.ok(fields, `the SDK declares a model ${name}`);
  return fields;
}

function jsonKind(v: unknown): JsonKind | "null" | "undefined" {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v as JsonKind;
}

/**
 * Asserts that `value` has every field of `model` (but those in `absent`, which must not be there) with its
 * declared JSON type, elements of arrays and nested models included, and no field the model does not declare.
 */
export function assertModel(value: unknown, model: string, opts: { where?: string; absent?: string[] } = {}): void {
  const where = opts.where ?? model;
  assert.equal(jsonKind(value), "object", `${where} is an object`);
  const obj = value as Record<string, unknown>;
  const fields = modelFields(model);
  const absent = new Set(opts.absent ?? []);
  for (const f of fields) {
    const v = obj[f.name];
    if (absent.has(f.name)) {
      assert.ok(!(f.name in obj), `${where}.${f.name} is left out, got ${JSON.stringify(v)}`);
      continue;
    }
    assert.equal(jsonKind(v), f.kind, `${where}.${f.name} is a ${f.kind}, got ${JSON.stringify(v)}`);
    if (f.kind === "object" && f.model) assertModel(v, f.model, { where: `${where}.${f.name}` });
    if (f.kind === "array") {
      (v as unknown[]).forEach((el, n) => {
        if (f.model) assertModel(el, f.model, { where: `${where}.${f.name}[${n}]` });
        else assert.equal(jsonKind(el), f.element, `${where}.${f.name}[${n}] is a ${f.element}, got ${JSON.stringify(el)}`);
      });
    }
  }
  const declared = new Set(fields.map((f) => f.name));
  assert.deepEqual(Object.keys(obj).filter((k) => !declared.has(k)), [], `${where} has only fields the model declares`);
}
