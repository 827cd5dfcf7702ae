// The web console at /console on the API's port: the built front-end (static.ts) and its small JSON API.
//
//   POST /console/api/login   {SecretId, SecretKey, Token?}       -> session cookie (HttpOnly, SameSite=Strict)
//   POST /console/api/logout                                      -> cookie cleared
//   GET  /console/api/session                                     -> who is logged in, the regions to pick from
//   POST /console/api/call    {Action, Region, Params, Language}  -> the action's envelope, as the API answers it
//
// Calls run through the same pipeline stages as the public API after authentication (Pipeline.invoke), with the
// session's credential, so its CAM policy applies and no account sees another's data. Every API request must
// carry `X-CRS-Console: 1` (a cross-site form cannot set it) and, when the browser sends one, an Origin of this
// host; with SameSite=Strict that stops cross-site request forgery, login forgery included.
import crypto from "node:crypto";
import type http from "node:http";
import { ApiError, Language } from "../protocol/errors";
import { JsonNumber, parseJsonBody, ParamObject, ParamValue } from "../protocol/params";
import type { Credential } from "../catalog/types";
import { parseTarget, Pipeline } from "../gateway/pipeline";
import { headerValue } from "../gateway/auth";
import { MemoryBucketStore } from "../gateway/ratelimit";
import type { RegionRules } from "../protocol/regions";
import type { RawHandler } from "../gateway/server";
import type { Services } from "../services";
import { consoleActions } from "./actions";
import { policyAllows } from "../actions/scope";
import { readCookie, SESSION_COOKIE, SESSION_TTL_MS, sessionCookie, SessionSigner } from "./session";
import { DEFAULT_ROOT, StaticFiles } from "./static";

export const CONSOLE_PREFIX = "/console";
const MAX_BODY = 64 * 1024;
/** Login attempts per client address: a burst of 10, then one every 6 seconds. */
const LOGIN_BURST = 10;
const LOGIN_RATE = 1 / 6;

/** Headers on every console response. */
const SECURITY_HEADERS: http.OutgoingHttpHeaders = {
  "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
};

export interface ConsoleOptions {
  services: Services;
  pipeline: Pipeline;
  regions: RegionRules;
  /** Where the built front-end is (default: dist/console next to the compiled server). */
  root?: string;
}

class HttpFailure extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function isTls(req: http.IncomingMessage): boolean {
  return (req.socket as { encrypted?: boolean }).encrypted === true || headerValue(req.headers, "x-forwarded-proto")?.split(",")[0]?.trim() === "https";
}

function languageOf(v: ParamValue | undefined): Language {
  return v === "en-US" ? "en-US" : "zh-CN";
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new HttpFailure(413, "RequestSizeLimitExceeded", `the body may be at most ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

export function createConsoleHandler(opts: ConsoleOptions): RawHandler {
  const { services, pipeline, regions } = opts;
  const logger = services.logger.child({ component: "console" });
  const files = new StaticFiles(opts.root ?? DEFAULT_ROOT);
  const sessions = new SessionSigner(services.catalog, () => services.clock.now());
  const loginBuckets = new MemoryBucketStore();

  function send(res: http.ServerResponse, status: number, body: string, extra: http.OutgoingHttpHeaders = {}): void {
    res.writeHead(status, { ...SECURITY_HEADERS, "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(body), ...extra });
    res.end(body);
  }

  function envelope(fields: Record<string, unknown>, requestId = crypto.randomUUID()): string {
    return JSON.stringify({ Response: { ...fields, RequestId: requestId } });
  }

  function errorBody(code: string, message: string): string {
    return envelope({ Error: { Code: code, Message: message } });
  }

  /** Refuses what a cross-site page could send: no console header, or another site's Origin. */
  function checkSameSite(req: http.IncomingMessage): void {
    if (headerValue(req.headers, "x-crs-console") !== "1") throw new HttpFailure(403, "UnauthorizedOperation", "the X-CRS-Console: 1 header is required");
    const origin = headerValue(req.headers, "origin");
    const host = (headerValue(req.headers, "host") ?? "").toLowerCase();
    if (origin !== undefined) {
      const m = /^https?:\/\/([^/]+)$/i.exec(origin);
      if (!m || m[1]!.toLowerCase() !== host) throw new HttpFailure(403, "UnauthorizedOperation", "the request comes from another origin");
    }
    const site = headerValue(req.headers, "sec-fetch-site");
    if (site !== undefined && site !== "same-origin" && site !== "none") throw new HttpFailure(403, "UnauthorizedOperation", "the request comes from another site");
  }

  async function jsonBody(req: http.IncomingMessage): Promise<ParamObject> {
    const type = (headerValue(req.headers, "content-type") ?? "").toLowerCase();
    if (!type.startsWith("application/json")) throw new HttpFailure(415, "InvalidParameter", "the Content-Type must be application/json");
    const body = await readBody(req);
    return parseJsonBody(body.toString("utf8"));
  }

  async function session(req: http.IncomingMessage) {
    const s = await sessions.verify(readCookie(headerValue(req.headers, "cookie"), SESSION_COOKIE));
    if (!s) throw new HttpFailure(401, "AuthFailure.InvalidAuthorization", "no valid console session: log in again");
    return s;
  }

  async function login(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const address = req.socket.remoteAddress ?? "";
    if (!loginBuckets.take(address, LOGIN_RATE, LOGIN_BURST, Date.now())) {
      throw new HttpFailure(429, "RequestLimitExceeded", "too many login attempts from this address; wait a few seconds");
    }
    const body = await jsonBody(req);
    const language = languageOf(body.Language);
    for (const name of ["SecretId", "SecretKey"]) {
      if (typeof body[name] !== "string" || body[name] === "") return send(res, 200, errorBody("MissingParameter", new ApiError("MissingParameter", { name }).messageIn(language)));
    }
    const token = typeof body.Token === "string" && body.Token !== "" ? body.Token : undefined;
    const result = await sessions.login(body.SecretId as string, body.SecretKey as string, token);
    if ("failure" in result) {
      logger.info({ code: result.failure === "token" ? "AuthFailure.TokenFailure" : "AuthFailure.SignatureFailure" }, "console login");
      // The same answer whether the SecretId or the SecretKey is wrong.
      const err = result.failure === "token"
        ? new ApiError("AuthFailure.TokenFailure")
        : new ApiError("AuthFailure.SignatureFailure", { reason: language === "en-US" ? "The SecretId or the SecretKey is incorrect." : "SecretId 或 SecretKey 不正确。" });
      return send(res, 200, errorBody(err.code, err.messageIn(language)));
    }
    const issued = await sessions.issue(result.credential);
    logger.info({ account: result.credential.accountId, code: "OK" }, "console login");
    send(res, 200, envelope(await whoAmI(req, result.credential, issued.expires)), {
      "Set-Cookie": sessionCookie(issued.cookie, Math.floor(SESSION_TTL_MS / 1000), isTls(req)),
    });
  }

  /** The session's account and the regions this host can serve, those with the account's instances first. */
  async function whoAmI(req: http.IncomingMessage, credential: Credential, expires: number): Promise<Record<string, unknown>> {
    const host = parseTarget(req.url ?? "/", headerValue(req.headers, "host")).host.replace(/:\d+$/, "");
    const counts = new Map<string, number>();
    for (const i of await services.catalog.instances(credential.accountId)) {
      if (i.deletedAt !== undefined || !policyAllows(credential, "DescribeInstances", i.instanceId)) continue;
      counts.set(i.region, (counts.get(i.region) ?? 0) + 1);
    }
    const usable = regions.list().filter((r) => {
      try {
        regions.check(r, host);
        return true;
      } catch {
        return false;
      }
    });
    const ordered = [...usable.filter((r) => counts.has(r)), ...usable.filter((r) => !counts.has(r))];
    return {
      SecretId: credential.secretId,
      AccountId: credential.accountId,
      ExpiresAt: expires,
      TimeZone: services.time.timeZone,
      Policy: credential.policy ?? null,
      Regions: ordered.map((r) => ({ Region: r, InstanceCount: counts.get(r) ?? 0 })),
    };
  }

  async function call(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const { credential } = await session(req);
    const body = await jsonBody(req);
    const language = languageOf(body.Language);
    const params = body.Params ?? {};
    // A JsonNumber is an object too, but not a parameter object.
    if (typeof body.Action !== "string" || typeof body.Region !== "string" || params === null || typeof params !== "object" || Array.isArray(params) || params instanceof JsonNumber) {
      return send(res, 200, errorBody("InvalidParameter", new ApiError("InvalidParameter", { reason: "the body must be {Action, Region, Params, Language}" }).messageIn(language)));
    }
    const host = parseTarget(req.url ?? "/", headerValue(req.headers, "host")).host;
    const out = await pipeline.invoke(credential, body.Action, body.Region, params as ParamObject, {
      language, host, clientIp: req.socket.remoteAddress ?? "", origin: `${isTls(req) ? "https" : "http"}://${host}`, actions: consoleActions,
    });
    send(res, 200, out.body);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const line = { requestId: out.requestId, action: out.action, account: out.account, code: out.code, ms: Math.round(ms * 100) / 100 };
    // A fault behind another code (a full disk: ResourceInsufficient) is the operator's to see, but not a bug.
    if (out.fault) {
      if (out.code === "InternalError") logger.error({ ...line, err: out.fault }, "console request failed with an internal error");
      else logger.warn({ ...line, err: out.fault }, `console request refused: ${out.code}`);
    } else logger.info(line, "console request");
  }

  async function api(req: http.IncomingMessage, res: http.ServerResponse, route: string): Promise<void> {
    checkSameSite(req);
    const method = req.method ?? "";
    if (route === "session" && method === "GET") {
      const s = await session(req);
      return send(res, 200, envelope(await whoAmI(req, s.credential, s.expires)));
    }
    if (method !== "POST") throw new HttpFailure(405, "UnsupportedProtocol", `${route} does not take ${method.slice(0, 20)}`);
    if (route === "login") return login(req, res);
    if (route === "logout") {
      return send(res, 200, envelope({}), { "Set-Cookie": sessionCookie("", 0, isTls(req)) });
    }
    if (route === "call") return call(req, res);
    throw new HttpFailure(404, "InvalidRequest", `no console API ${route.slice(0, 40)}`);
  }

  return (req, res) => {
    const path = parseTarget(req.url ?? "/", undefined).path;
    if (path !== CONSOLE_PREFIX && !path.startsWith(CONSOLE_PREFIX + "/")) {
      res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
      res.end("not found\n");
      return;
    }
    const rel = path.slice(CONSOLE_PREFIX.length + 1);
    if (rel.startsWith("api/")) {
      api(req, res, rel.slice(4)).catch((err: unknown) => {
        if (res.headersSent) return res.destroy();
        if (err instanceof HttpFailure) return send(res, err.status, errorBody(err.code, err.message), err.status === 413 ? { Connection: "close" } : {});
        if (err instanceof ApiError) return send(res, 200, errorBody(err.code, err.messageIn("en-US")));
        logger.error({ err }, "console failure");
        send(res, 500, errorBody("InternalError", "An internal error has occurred."));
      });
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { ...SECURITY_HEADERS, Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" });
      res.end("method not allowed\n");
      return;
    }
    if (!files.serve(req, res, rel, SECURITY_HEADERS)) {
      res.writeHead(503, { ...SECURITY_HEADERS, "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" });
      res.end("The console is not built: run `npm run build`.\n");
    }
  };
}
