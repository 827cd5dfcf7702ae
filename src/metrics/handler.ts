// The operator's HTTP endpoints beside the API, on the same port and transport:
//   GET /healthz  200 while the process serves (liveness: nothing is checked, so a slow catalogue never gets a
//                 healthy process restarted)
//   GET /readyz   200 when the catalogue answers, migrations are applied and storage is reachable; else 503
//                 with {"status":"unready","failed":[...],"checks":{...}} (details go to the log, not to the
//                 unauthenticated caller)
//   GET /metrics  Prometheus text format (metrics.ts); can be turned off or limited to addresses
// None is signed: probes and scrapers do not speak TC3. None collides with the API, which answers only path /.
import type http from "node:http";
import type { Logger } from "../log";
import type { RawHandler } from "../gateway/server";
import { addressAllowed, normalizeAddress, parseIpOrCidr } from "../downloads/restrictions";
import type { Services } from "../services";
import { checkReadiness } from "./health";
import type { ServerMetrics } from "./metrics";

export const HEALTH_PATH = "/healthz";
export const READY_PATH = "/readyz";
export const METRICS_PATH = "/metrics";

export interface OperatorRoutesOptions {
  services: Pick<Services, "catalog" | "store">;
  logger: Logger;
  /** Undefined: /metrics answers 404 (turned off). */
  metrics?: ServerMetrics;
  /** Addresses and CIDR blocks allowed to scrape /metrics; undefined or empty = any address. */
  metricsAllow?: readonly string[];
}

/** Checks a --metrics-allow list; returns the entry that is not an address or CIDR block, if any. */
export function invalidAllowEntry(list: readonly string[]): string | undefined {
  return list.find((e) => !parseIpOrCidr(e));
}

function send(res: http.ServerResponse, req: http.IncomingMessage, status: number, type: string, body: string, extra: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-store", ...extra });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** The three routes, for createApiServer's `routes`. */
export function operatorRoutes(o: OperatorRoutesOptions): Array<{ prefix: string; handler: RawHandler }> {
  const allow = o.metricsAllow?.length ? { t: "Customize" as const, c: "In" as const, ip: [...o.metricsAllow] } : undefined;
  const guard = (path: string, handler: RawHandler): RawHandler => (req, res) => {
    const target = req.url ?? "";
    const q = target.indexOf("?");
    const p = q < 0 ? target : target.slice(0, q);
    // Exact paths only (the route matched a prefix): /metricsx is nobody's.
    if (p !== path) return send(res, req, 404, "text/plain; charset=utf-8", `no such path: ${p.slice(0, 100)}\n`);
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, req, 405, "text/plain; charset=utf-8", "use GET or HEAD\n", { Allow: "GET, HEAD" });
    handler(req, res);
  };
  const routes: Array<{ prefix: string; handler: RawHandler }> = [
    { prefix: HEALTH_PATH, handler: guard(HEALTH_PATH, (req, res) => send(res, req, 200, "application/json", '{"status":"ok"}\n')) },
    {
      prefix: READY_PATH,
      handler: guard(READY_PATH, (req, res) => {
        checkReadiness(o.services).then((r) => {
          o.metrics?.noteReadiness(r);
          const failed = Object.entries(r.checks).filter(([, v]) => v !== "ok" && v !== "skipped").map(([k]) => k);
          if (!r.ready) o.logger.warn({ checks: r.checks, errors: r.errors }, "not ready");
          send(res, req, r.ready ? 200 : 503, "application/json", `${JSON.stringify({ status: r.ready ? "ready" : "unready", failed, checks: r.checks })}\n`);
        }, (err: unknown) => {
          o.logger.error({ err }, "readiness check failed");
          send(res, req, 503, "application/json", '{"status":"unready","failed":["check"]}\n');
        });
      }),
    },
  ];
  const metrics = o.metrics;
  routes.push({
    prefix: METRICS_PATH,
    handler: guard(METRICS_PATH, (req, res) => {
      if (!metrics) return send(res, req, 404, "text/plain; charset=utf-8", "metrics are turned off on this server (--metrics off)\n");
      const address = normalizeAddress(req.socket.remoteAddress ?? "");
      if (allow && !addressAllowed(allow, address)) {
        return send(res, req, 403, "text/plain; charset=utf-8", `${address} may not read the metrics (--metrics-allow)\n`);
      }
      metrics.render().then((text) => send(res, req, 200, metrics.contentType, text), (err: unknown) => {
        o.logger.error({ err }, "rendering the metrics failed");
        send(res, req, 500, "text/plain; charset=utf-8", "rendering the metrics failed\n");
      });
    }),
  });
  return routes;
}
