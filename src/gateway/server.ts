// The HTTP server: reads a request within its size limits, runs it through the pipeline and answers 200 with
// application/json, echoing X-TC-TraceId. Non-API paths (file downloads) go to their own handlers.
import crypto from "node:crypto";
import http from "node:http";
import type net from "node:net";
import type { Logger } from "../log";
import { headerValue } from "./auth";
import { ApiRequest, LIMITS, parseTarget, Pipeline } from "./pipeline";

export type RawHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface ServerOptions {
  pipeline: Pipeline;
  /** Handlers for paths other than the API's `/`, by path prefix. */
  routes?: ReadonlyArray<{ prefix: string; handler: RawHandler }>;
  logger: Logger;
  /** How long an idle keep-alive connection stays open (clients pausing between calls must not meet a closed one). */
  keepAliveTimeoutMs?: number;
}

const SIZE_ERROR_BODY = (requestId: string) =>
  JSON.stringify({ Response: { Error: { Code: "RequestSizeLimitExceeded", Message: "请求包超过限制大小：the request headers are too large." }, RequestId: requestId } });


export function createApiServer(opts: ServerOptions): http.Server {
  const logger = opts.logger;
  // Headers up to 64 KiB so that a GET over the documented 32 KiB gets our envelope rather than Node's 431.
  const server = http.createServer({ maxHeaderSize: 64 * 1024, keepAliveTimeout: opts.keepAliveTimeoutMs ?? 65_000 }, (req, res) => {
    const started = process.hrtime.bigint();
    const target = req.url ?? "/";
    const path = parseTarget(target, undefined).path;
    if (path !== "/") {
      const route = opts.routes?.find((r) => path.startsWith(r.prefix));
      if (route) return route.handler(req, res);
    }
    const method = req.method ?? "";
    const limit = method === "GET" ? LIMITS.query : req.headers.authorization !== undefined ? LIMITS.v3Body : LIMITS.v1Body;
    const apiReq: ApiRequest = { method, target, headers: req.headers, body: Buffer.alloc(0), remoteAddress: req.socket.remoteAddress ?? "" };
    const queryLength = target.length - target.indexOf("?") - 1;
    if (method === "GET" && target.includes("?") && queryLength > LIMITS.query) {
      apiReq.tooLarge = `a GET request's query string may be at most ${LIMITS.query} bytes, got ${queryLength}`;
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (!apiReq.tooLarge && declared > limit) apiReq.tooLarge = `the body may be at most ${limit} bytes for this kind of request, got ${declared}`;
    const finish = () => {
      opts.pipeline.handle(apiReq).then((out) => {
        const headers: http.OutgoingHttpHeaders = { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(out.body) };
        const trace = headerValue(req.headers, "x-tc-traceid");
        if (trace !== undefined) headers["X-TC-TraceId"] = trace;
        if (apiReq.tooLarge) headers.Connection = "close";
        res.writeHead(200, headers);
        res.end(out.body);
        const ms = Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100;
        const line = { requestId: out.requestId, action: out.action, account: out.account, code: out.code, ms };
        if (out.fault) logger.error({ ...line, err: out.fault }, "request failed with an internal error");
        else logger.info(line, "request");
      }, (err: unknown) => {
        logger.error({ err }, "pipeline failure");
        res.destroy();
      });
    };
    if (apiReq.tooLarge) {
      // Answer without reading the body, then drop the connection rather than drain megabytes.
      res.on("finish", () => req.destroy());
      return finish();
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      if (apiReq.tooLarge) return;
      size += chunk.length;
      if (size > limit) {
        apiReq.tooLarge = `the body may be at most ${limit} bytes for this kind of request`;
        chunks.length = 0;
        req.pause();
        res.on("finish", () => req.destroy());
        finish();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (apiReq.tooLarge) return;
      apiReq.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      finish();
    });
    req.on("error", () => res.destroy());
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (!socket.writable) return socket.destroy();
    if (err.code === "HPE_HEADER_OVERFLOW") {
      const body = SIZE_ERROR_BODY(crypto.randomUUID());
      socket.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    } else {
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    }
  });
  return server;
}
