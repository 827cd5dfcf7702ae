// Structured logging through pino: JSON lines by default, pretty when writing to a terminal. Every value is
// serialised by pino, so a caller-controlled string (an Action, a host) can never forge a line of its own.
// Secrets are redacted by the logger's own configuration rather than by each call site remembering to: any
// field called like a key, a password, a token or a Redis URL is replaced, up to three levels down.
import pino from "pino";
import type PinoPretty from "pino-pretty";
import { Writable } from "node:stream";

export type Logger = pino.Logger;

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Field names whose values never reach a log line. */
const SECRET_FIELDS = ["secretKey", "SecretKey", "password", "Password", "token", "Token", "authorization", "Authorization", "redisUrl", "Redis", "masterauth"];

export const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.*.${f}`),
  // Three levels down covers what we log (a task's params inside a task inside a line); pino's redaction paths
  // have no "any depth" wildcard, and a walk over every line would cost more than it protects.
  ...SECRET_FIELDS.map((f) => `*.*.*.${f}`),
  'headers["authorization"]',
  'req.headers["authorization"]',
];

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
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: "***" },
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.err },
  };
  if (o.pretty ?? isTty) {
    // In-process (no worker thread), so lines appear in order with the rest of the output. Loaded only here: a
    // server writing JSON to a file or a pipe does not pay for it at start.
    const pretty = require("pino-pretty") as typeof PinoPretty;
    return pino(options, pretty({ destination, colorize: isTty, translateTime: "SYS:standard", ignore: "pid,hostname", sync: true }));
  }
  return pino(options, destination);
}

/** A URL with its password replaced by ***, for display and messages (a Redis, PostgreSQL or Redis-store URL). */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(invalid URL)";
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
