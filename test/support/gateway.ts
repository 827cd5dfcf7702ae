// The API gateway on its own port with chosen options (timeouts, limits), over an existing server's services,
// and raw-socket exchanges for what an HTTP client library would refuse to send or hide.
import http from "node:http";
import net from "node:net";
import { Pipeline, PipelineOptions } from "../../src/gateway/pipeline";
import { MemoryBucketStore, RateLimiter } from "../../src/gateway/ratelimit";
import { DEFAULT_REGIONS, RegionRules } from "../../src/protocol/regions";
import { createApiServer, ServerOptions } from "../../src/gateway/server";
import type { Services } from "../../src/services";
import { silentLogger } from "../../src/log";

export interface Gateway {
  server: http.Server;
  port: number;
  pipeline: Pipeline;
  close(): Promise<void>;
}

export async function startGateway(services: Services, o: { pipeline?: Partial<PipelineOptions>; server?: Partial<ServerOptions>; host?: string } = {}): Promise<Gateway> {
  const pipeline = new Pipeline({
    services, regions: new RegionRules(DEFAULT_REGIONS, "tencentcloudapi.com"), limiter: new RateLimiter(new MemoryBucketStore(), 0), ...o.pipeline,
  });
  const server = createApiServer({ pipeline, logger: silentLogger, ...o.server });
  await new Promise<void>((resolve) => server.listen(0, o.host ?? "127.0.0.1", resolve));
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    pipeline,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

export interface RawExchange {
  /** Everything the server sent before it closed (or before the timeout). */
  raw: string;
  status: number;
  headers: Record<string, string>;
  body: string;
  json?: { Response: { Error?: { Code: string; Message: string }; RequestId: string } & Record<string, unknown> };
  /** Milliseconds from connecting until the server closed the connection; undefined if it stayed open. */
  closedAfterMs?: number;
}

/**
 * Writes `bytes` on a fresh connection, then reads until the server closes it or `waitMs` passes. `then`
 * may write more (e.g. dribble) while waiting.
 */
export function rawExchange(port: number, bytes: Buffer | string, o: { waitMs?: number; localAddress?: string; then?: (s: net.Socket) => void; untilAnswered?: boolean } = {}): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect({ port, host: "127.0.0.1", localAddress: o.localAddress });
    const chunks: Buffer[] = [];
    let closedAfterMs: number | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parseRaw(Buffer.concat(chunks).toString("utf8"), closedAfterMs));
    };
    const timer = setTimeout(done, o.waitMs ?? 5000);
    socket.on("connect", () => {
      socket.write(bytes);
      o.then?.(socket);
    });
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      if (!o.untilAnswered) return;
      // A keep-alive answer does not close the connection: stop once the whole body is in.
      const x = parseRaw(Buffer.concat(chunks).toString("utf8"));
      if (x.headers["content-length"] !== undefined && Buffer.byteLength(x.body) === Number(x.headers["content-length"])) done();
    });
    socket.on("close", () => {
      closedAfterMs = Date.now() - started;
      done();
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNRESET" || err.code === "EPIPE") return; // 'close' follows
      clearTimeout(timer);
      reject(err);
    });
  });
}

export function parseRaw(raw: string, closedAfterMs?: number): RawExchange {
  const end = raw.indexOf("\r\n\r\n");
  const head = end < 0 ? raw : raw.slice(0, end);
  const [statusLine = "", ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const c = l.indexOf(":");
    if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
  }
  let body = end < 0 ? "" : raw.slice(end + 4);
  if (headers["content-length"] !== undefined) body = Buffer.from(body).subarray(0, Number(headers["content-length"])).toString("utf8");
  let json: RawExchange["json"];
  try {
    json = JSON.parse(body) as RawExchange["json"];
  } catch {
    json = undefined;
  }
  return { raw, status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body, json, closedAfterMs };
}

export { UUID } from "./server";

/** A catalogue that counts the calls of each method, to prove that a request never reached it. */
export function countingServices(services: Services): { services: Services; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const target = services.catalog as unknown as Record<string | symbol, unknown>;
  const catalog = new Proxy(target, {
    get(t, name) {
      const v = t[name];
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        calls.set(String(name), (calls.get(String(name)) ?? 0) + 1);
        return (v as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  }) as unknown as Services["catalog"];
  return { services: { ...services, catalog }, calls };
}
