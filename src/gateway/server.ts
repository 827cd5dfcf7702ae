// The HTTP server: reads a request within its size limits, runs it through the pipeline and answers 200 with
// application/json, echoing X-TC-TraceId. Non-API paths (file downloads) go to their own handlers. Requests
// Node's parser refuses get the same JSON envelope (clientError), and the connection limits and timeouts
// are those of an API server rather than Node's defaults.
import crypto from "node:crypto";
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import type { Logger } from "../log";
import { ApiError, ErrorCode } from "../protocol/errors";
import { headerValue } from "./auth";
import { ApiRequest, ApiResponse, LIMITS, parseTarget, Pipeline } from "./pipeline";

export type RawHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** What the request log point tells an observer (the server's metrics) about each API request answered. */
export interface RequestObserver {
  request(r: { action: string; code: string; account: string; ms: number }): void;
}

/** Either transport; both have the methods the server is driven by (listen, close, closeAllConnections...). */
export type ApiServer = http.Server | https.Server;

export interface ServerOptions {
  pipeline: Pipeline;
  /** Handlers for paths other than the API's `/`, by path prefix. */
  routes?: ReadonlyArray<{ prefix: string; handler: RawHandler }>;
  logger: Logger;
  /**
   * How long an idle keep-alive connection is kept open. Longer than common API gateways and load balancers
   * idle out (60 s), so it is the client side that closes first: a client that pauses between calls must
   * not find its pooled connection closed under it ("socket hang up"). Default 65 s.
   */
  keepAliveTimeoutMs?: number;
  /** Time allowed to receive a request's line and headers. Default 10 s. */
  headersTimeoutMs?: number;
  /** Time allowed to receive a whole request, body included (uploads here are small). Default 60 s. */
  requestTimeoutMs?: number;
  /** Open connections at most; further ones are closed at once. Default 1024. */
  maxConnections?: number;
  /** Open connections per client address at most; 0 = no per-address cap. Default 256. */
  maxConnectionsPerAddress?: number;
  /** Told about every API request at the point its log line is written (metrics). */
  observer?: RequestObserver;
  /** Serve HTTPS with this certificate chain and private key (PEM) instead of plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * After refusing a body over the size limit, how much more of it is read (and dropped, never kept) so that
   * a client writing it all before reading sees the answer instead of a reset; beyond either bound the
   * connection is closed. Default 64 MiB and 10 s.
   */
  discardMaxBytes?: number;
  discardMaxMs?: number;
}

export const SERVER_DEFAULTS = {
  keepAliveTimeoutMs: 65_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  maxConnections: 1024,
  maxConnectionsPerAddress: 256,
  discardMaxBytes: 64 * 1024 * 1024,
  discardMaxMs: 10_000,
} as const;

/** Request line and headers together; 64 KiB so a GET over the 32 KiB query limit still gets our envelope. */
export const MAX_HEADER_BYTES = 64 * 1024;

function envelope(code: ErrorCode, params: Record<string, string | number>): string {
  const message = new ApiError(code, params).messageIn("zh-CN");
  return JSON.stringify({ Response: { Error: { Code: code, Message: message }, RequestId: crypto.randomUUID() } });
}

/** The envelope for a request Node's HTTP parser refused (or timed out), by the parser's error code. */
function clientErrorBody(err: NodeJS.ErrnoException & { reason?: string }, o: Required<Pick<ServerOptions, "headersTimeoutMs" | "requestTimeoutMs">>): string {
  const code = err.code ?? "";
  if (code === "HPE_HEADER_OVERFLOW") {
    return envelope("RequestSizeLimitExceeded", { reason: `the request line and headers may be at most ${MAX_HEADER_BYTES} bytes` });
  }
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") {
    return envelope("InvalidRequest", {
      reason: `the request was not received in time (headers within ${o.headersTimeoutMs} ms, the whole request within ${o.requestTimeoutMs} ms)`,
    });
  }
  if (code === "HPE_INVALID_URL") {
    return envelope("InvalidParameter", { reason: "the request target has a character that is not allowed there; percent-encode anything outside printable ASCII" });
  }
  if (code === "HPE_INVALID_TRANSFER_ENCODING" || code === "HPE_UNEXPECTED_CONTENT_LENGTH" || code === "HPE_INVALID_CONTENT_LENGTH") {
    return envelope("InvalidParameter", { reason: `the request's Content-Length or Transfer-Encoding is invalid (${code})` });
  }
  // llhttp's reasons are fixed texts (never request bytes), so they are safe to pass on.
  const why = typeof err.reason === "string" ? err.reason.slice(0, 100) : "malformed HTTP";
  return envelope("InvalidParameter", { reason: `the HTTP request is malformed (${code || "unknown"}: ${why})` });
}

/**
 * The request's log line and its metrics, once it is answered: what the server does after the pipeline
 * (exported so bench/pipeline.ts measures the same work).
 */
export function logAnswer(logger: Logger, observer: RequestObserver | undefined, out: ApiResponse, started: bigint): void {
  const ms = Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100;
  const line = { requestId: out.requestId, action: out.action, account: out.account, code: out.code, ms };
  // A fault behind another code (a full disk: ResourceInsufficient) is the operator's to see, but not a bug.
  if (out.fault) {
    if (out.code === "InternalError") logger.error({ ...line, err: out.fault }, "request failed with an internal error");
    else logger.warn({ ...line, err: out.fault }, `request refused: ${out.code}`);
  } else logger.info(line, "request");
  try {
    observer?.request(line);
  } catch {
    // metrics must never break a request
  }
}

export function createApiServer(opts: ServerOptions): ApiServer {
  const logger = opts.logger;
  const o = { ...SERVER_DEFAULTS, ...definedOnly(opts) };
  const httpOptions: http.ServerOptions = {
    maxHeaderSize: MAX_HEADER_BYTES,
    // A request without Host gets our MissingParameter envelope from the pipeline instead of Node's bare 400.
    requireHostHeader: false,
    // Node refuses a headers timeout longer than the whole request's.
    headersTimeout: o.requestTimeoutMs > 0 ? Math.min(o.headersTimeoutMs, o.requestTimeoutMs) : o.headersTimeoutMs,
    requestTimeout: o.requestTimeoutMs,
    // Node checks both timeouts only this often (30 s by default), which would let a slow client stay far
    // beyond them.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(o.headersTimeoutMs / 4))),
  };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const started = process.hrtime.bigint();
    const target = req.url ?? "/";
    const path = parseTarget(target, undefined).path;
    if (path !== "/") {
      const route = opts.routes?.find((r) => path.startsWith(r.prefix));
      if (route) return route.handler(req, res);
    }
    const method = req.method ?? "";
    const limit = method === "GET" ? LIMITS.query : req.headers.authorization !== undefined ? LIMITS.v3Body : LIMITS.v1Body;
    const apiReq: ApiRequest = {
      method, target, headers: req.headers, body: Buffer.alloc(0), remoteAddress: req.socket.remoteAddress ?? "", connection: connectionIds.get(req.socket) ?? 0,
      secure: (req.socket as { encrypted?: boolean }).encrypted === true,
    };
    const queryLength = target.length - target.indexOf("?") - 1;
    if (method === "GET" && target.includes("?") && queryLength > LIMITS.query) {
      apiReq.tooLarge = `a GET request's query string may be at most ${LIMITS.query} bytes, got ${queryLength}`;
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (!apiReq.tooLarge && declared > limit) apiReq.tooLarge = `the body may be at most ${limit} bytes for this kind of request, got ${declared}`;
    // A refused body is still read to its end (or to a bound) before the connection closes: closing a socket
    // with unread bytes resets it, and a client that writes its whole body before reading (Node's http, so
    // the Node SDK) would see ECONNRESET instead of the answer. What is read is dropped as it arrives.
    let discarded = 0;
    let bodyEnded = false;
    let discardTimer: NodeJS.Timeout | undefined;
    const whenBodyEnded: Array<() => void> = [];
    const startDiscarding = () => {
      discardTimer = setTimeout(() => req.socket.destroy(), o.discardMaxMs);
      discardTimer.unref();
    };
    const finish = () => {
      opts.pipeline.handle(apiReq).then((out) => {
        if (res.destroyed || res.headersSent) return; // cut by a timeout while the pipeline ran
        const headers: http.OutgoingHttpHeaders = { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(out.body) };
        const trace = headerValue(req.headers, "x-tc-traceid");
        if (trace !== undefined) headers["X-TC-TraceId"] = trace;
        if (apiReq.tooLarge) headers.Connection = "close";
        res.writeHead(200, headers);
        if (apiReq.tooLarge && !bodyEnded) {
          // The whole answer now (the client has it once Content-Length bytes are in); the response ends, and
          // the connection with it, once the rest of the body is discarded.
          res.write(out.body);
          whenBodyEnded.push(() => res.end());
        } else res.end(out.body);
        logAnswer(logger, opts.observer, out, started);
      }, (err: unknown) => {
        logger.error({ err }, "pipeline failure");
        res.destroy();
      });
    };
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      if (apiReq.tooLarge) {
        discarded += chunk.length;
        if (discarded > o.discardMaxBytes) req.socket.destroy();
        return;
      }
      size += chunk.length;
      if (size > limit) {
        apiReq.tooLarge = `the body may be at most ${limit} bytes for this kind of request`;
        chunks.length = 0;
        discarded = size - limit;
        startDiscarding();
        finish();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      bodyEnded = true;
      if (apiReq.tooLarge) {
        clearTimeout(discardTimer);
        for (const f of whenBodyEnded.splice(0)) f();
        return;
      }
      apiReq.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      finish();
    });
    req.on("close", () => clearTimeout(discardTimer));
    if (apiReq.tooLarge) {
      // Refused by its declared size (or its query string): answered at once, the body discarded as above.
      startDiscarding();
      finish();
    }
    req.on("error", () => res.destroy());
  };
  // A TLS handshake gets the headers' time, not Node's 120 s: a client that connects and never speaks is cut as soon.
  const server: ApiServer = opts.tls
    ? https.createServer({ ...httpOptions, cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: o.headersTimeoutMs }, onRequest)
    : http.createServer(httpOptions, onRequest);
  server.keepAliveTimeout = o.keepAliveTimeoutMs;
  server.maxConnections = o.maxConnections;

  const connectionIds = new WeakMap<net.Socket, number>();
  let nextConnection = 1;
  const perAddress = new Map<string, number>();
  server.on("connection", (socket: net.Socket) => {
    const address = socket.remoteAddress ?? "";
    const open = perAddress.get(address) ?? 0;
    if (o.maxConnectionsPerAddress > 0 && open >= o.maxConnectionsPerAddress) {
      socket.destroy();
      return;
    }
    perAddress.set(address, open + 1);
    socket.once("close", () => {
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n <= 0) perAddress.delete(address);
      else perAddress.set(address, n);
    });
    if (!opts.tls) connectionIds.set(socket, nextConnection++);
  });
  if (opts.tls) {
    // Requests arrive on the TLS socket wrapping the TCP one: that is the connection they are identified by.
    server.on("secureConnection", (socket: net.Socket) => connectionIds.set(socket, nextConnection++));
    // A failed handshake (plain HTTP sent to the TLS port, an untrusted client certificate chain, a scanner):
    // the connection is closed, nothing else happens.
    server.on("tlsClientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
      logger.debug({ ip: socket.remoteAddress, reason: err.code ?? err.message }, "TLS handshake failed");
      socket.destroy();
    });
  }

  const answered = new WeakSet<net.Socket>();
  server.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    // The parser may report more errors on a connection already answered; the first answer stands.
    if (answered.has(socket)) return;
    const pending = (socket as net.Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
    if (!socket.writable || err.code === "ECONNRESET" || (pending && pending.headersSent)) {
      socket.destroy();
      return;
    }
    answered.add(socket);
    const body = clientErrorBody(err, o);
    socket.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    // Keep reading (and dropping) what the client still sends, so closing does not reset the connection
    // before it has read the answer; a client that never stops is cut after a moment.
    socket.resume();
    const linger = setTimeout(() => socket.destroy(), 2000);
    linger.unref();
    socket.once("close", () => clearTimeout(linger));
  });
  return server;
}

function definedOnly(opts: ServerOptions): Partial<typeof SERVER_DEFAULTS> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(SERVER_DEFAULTS) as Array<keyof typeof SERVER_DEFAULTS>) {
    const v = opts[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
