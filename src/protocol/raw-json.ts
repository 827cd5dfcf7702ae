// JSON text already serialised, for a response value the pipeline splices in as is instead of stringifying it
// again (a listing's BackupSet, rendered row by row from a memo). Only the response's top-level values may be one.

export class RawJson {
  constructor(readonly json: string) {}

  /** What a caller that stringifies the result itself (not the pipeline) gets: the value, parsed back. */
  toJSON(): unknown {
    return JSON.parse(this.json);
  }
}

/**
 * `JSON.stringify({ Response: { ...result, RequestId: requestId } })`, with RawJson values spliced in as they are:
 * the same text, key order included (a RequestId of the result's own is replaced in place, as the spread does).
 */
export function responseJson(result: Record<string, unknown>, requestId: string): string {
  let out = '{"Response":{';
  let idWritten = false;
  for (const key of Object.keys(result)) {
    let v = result[key];
    if (key === "RequestId") {
      v = requestId;
      idWritten = true;
    }
    const text = v instanceof RawJson ? v.json : JSON.stringify(v);
    // Undefined, a function or a symbol: JSON.stringify leaves the property out.
    if (text === undefined) continue;
    out += `${JSON.stringify(key)}:${text},`;
  }
  if (!idWritten) return `${out}"RequestId":${JSON.stringify(requestId)}}}`;
  return `${out.slice(0, -1)}}}`;
}
