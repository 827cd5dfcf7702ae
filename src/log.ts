// Structured logging through pino: JSON lines by default, pretty when writing to a terminal. Every value is
// serialised by pino, so a caller-controlled string (an Action, a host) can never forge a line of its own.
// Secrets are redacted by the logger's own configuration rather than by each call site remembering to: any
// field called like a key, a password, a token or a Redis URL is replaced, at any depth a line has.
import pino from "pino";
import type PinoPretty from "pino-pretty";
import { Writable } from "node:stream";

export type Logger = pino.Logger;

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Field names whose values never reach a log line, in any letter case and at any depth we walk. */
const SECRET_FIELDS = ["secretKey", "password", "token", "authorization", "redisUrl", "Redis", "masterauth"];
const SECRET_KEYS = new Set(SECRET_FIELDS.map((f) => f.toLowerCase()));
/** Deeper than anything we log (a task's params inside a task inside a line is three). */
const REDACT_DEPTH = 8;
const CENSOR = "***";

/**
 * The value with every secret field replaced by ***, copying only the objects on the way to one (a line without
 * secrets is returned as it is, at the cost of a walk over its keys). Why not pino's `redact` option: its paths
 * have no "any depth" wildcard, and the `*.*.*.field` paths that cover three levels cost ~30 µs per line, a tenth
 * of an API request's whole budget; this walk costs well under one for a request line. Objects JSON would
 * serialise through `toJSON` (dates, buffers) are left alone; errors are serialised by pino's own serializer
 * first, so their own properties are walked too.
 */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== "object" || depth > REDACT_DEPTH) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const r = redactSecrets(value[i], depth + 1);
      if (r !== value[i]) (out ??= value.slice())[i] = r;
    }
    return out ?? value;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") return value;
  if (value instanceof Error) return redactSecrets(pino.stdSerializers.err(value), depth);
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    const r = SECRET_KEYS.has(key.toLowerCase()) ? CENSOR : redactSecrets(v, depth + 1);
    if (r !== v) (out ??= { ...(value as Record<string, unknown>) })[key] = r;
  }
  return out ?? value;
}

let isoMs = -1;
let isoText = "";

/** pino's isoTime, the string made once per millisecond (a busy server writes several lines in one). */
function isoTime(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoText = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoText;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; default stdout. */
  destination?: Writable;
  /** Human-readable lines instead of JSON; default: when the destination is a terminal. */
  pretty?: boolean;
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const destination = o.destination ?? process.stdout;
  const isTty = (destination as { isTTY?: boolean }).isTTY === true;
  const options: pino.LoggerOptions = {
    level: o.level ?? "info",
    base: undefined, // no pid/hostname on every line; the node id is logged where it matters
    timestamp: isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      // Redaction (see redactSecrets) of what each call logs; child bindings are redacted in withRedactedChildren.
      log: (obj) => redactSecrets(obj) as Record<string, unknown>,
    },
    // The log formatter has already serialised errors (and redacted them); pino's default would serialise the
    // result again and call every error an "Object".
    serializers: { err: (e: unknown) => e },
  };
  if (o.pretty ?? isTty) {
    // In-process (no worker thread), so lines appear in order with the rest of the output. Loaded only here: a
    // server writing JSON to a file or a pipe does not pay for it at start.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded lazily, see above
    const pretty = require("pino-pretty") as typeof PinoPretty;
    return withRedactedChildren(pino(options, pretty({ destination, colorize: isTty, translateTime: "SYS:standard", ignore: "pid,hostname", sync: true })));
  }
  return withRedactedChildren(pino(options, destination));
}

/**
 * pino applies `formatters.bindings` to the root's bindings only, so a child's bindings (a task's context) are
 * redacted here, before pino serialises them once for all the child's lines. Children are created from their
 * parent's prototype, so they inherit this `child` too.
 */
function withRedactedChildren(logger: Logger): Logger {
  const child = logger.child as unknown as (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => Logger;
  logger.child = function (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) {
    return child.call(this, redactSecrets(bindings) as pino.Bindings, options);
  } as unknown as Logger["child"];
  return logger;
}

/** A URL with its password replaced by ***, for display and messages (a Redis, PostgreSQL or Redis-store URL). */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    for (const k of [...u.searchParams.keys()]) if (/password$/i.test(k)) u.searchParams.set(k, "***");
    return u.toString().replace(/\/$/, "");
  } catch {
    // A URL with several hosts (redis-sentinel://h1,h2/name) is not a WHATWG URL: mask it by its syntax.
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return "(invalid URL)";
    return url.replace(/^([^:]+:\/\/[^:@/?#]*:)[^@/?#]*@/, "$1***@").replace(/([?&][^=&#]*password=)[^&#]*/gi, "$1***");
  }
}

/** A logger that drops everything (tools and tests that do not care). */
export const silentLogger: Logger = pino({ level: "silent" });

/** Lines as an array of parsed objects (tests): a writable destination that keeps what it is given. */
export function memoryDestination(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n")) if (l) lines.push(l);
      cb();
    },
  });
  return { stream, lines };
}
