// The request pipeline, in the order a request meets it: protocol parsing -> authentication -> action and
// version -> region and endpoint rules -> rate limit -> permission check -> parameters -> handler -> envelope.
import crypto from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { actions as defaultActions } from "../actions";
import { apiErrorOf } from "../actions/errors";
import { AccountScope, policyAllows } from "../actions/scope";
import type { Action, ActionContext } from "../actions/action";
import type { Credential } from "../catalog/types";
import { ApiError, Language } from "../protocol/errors";
import { decodeUrlEncoded, decodeUtf8, parseJsonBody, ParamObject, unflatten } from "../protocol/params";
import { responseJson } from "../protocol/raw-json";
import { validate } from "../protocol/schema";
import type { Services } from "../services";
import { Authenticated, authenticateV1, authenticateV3, headerValue, TIMESTAMP_WINDOW_S } from "./auth";
import { parseHost, RequestHost } from "./host";
import { DEFAULT_FAILURE_LIMIT, FailureLimiter, FailureLimitOptions, type RateLimiter } from "./ratelimit";
import type { RegionRules } from "../protocol/regions";
import { ReplayGuard, V3Use } from "./replay";
import { normalizeAddress } from "../address";

export const API_VERSION = "2018-04-12";
export const LIMITS = { query: 32 * 1024, v1Body: 1024 * 1024, v3Body: 10 * 1024 * 1024 };

/** Parameters that belong to the protocol, not to an action. */
const COMMON = new Set(["Action", "Version", "Region", "Timestamp", "Nonce", "SecretId", "Signature", "SignatureMethod", "Token", "Language", "RequestClient"]);

export interface ApiRequest {
  method: string;
  /** The request target as received: `/?a=b`, or `http://host/?a=b` through a proxy. */
  target: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  remoteAddress: string;
  /** Identifies the connection the request came on (for the TC3 replay check, with the address); 0 when unknown. */
  connection?: number;
  /** Set when the request was refused for its size before its body was read. */
  tooLarge?: string;
  /** Whether it came over TLS (links handed out then use https). */
  secure?: boolean;
}

export interface ApiResponse {
  body: string;
  requestId: string;
  action: string;
  account: string;
  code: string;
  /** The unexpected fault behind an InternalError, for the log only. */
  fault?: unknown;
}

export interface PipelineOptions {
  services: Services;
  regions: RegionRules;
  limiter: RateLimiter;
  actions?: ReadonlyMap<string, Action>;
  /** Seconds since the epoch, for the signature window. */
  nowSeconds?: () => number;
  /** Failed authentications allowed per client address; `{ burst: 0, perSecond: 0 }` turns the limit off. */
  authFailures?: FailureLimitOptions;
  /** Bounds of the replay memory (v1 nonces, TC3 signatures) for the signature window. */
  replay?: { maxEntries?: number; maxBytes?: number };
}

interface Parsed {
  v3: boolean;
  host: RequestHost;
  rawQuery: string;
  pairs: Array<[string, string]>;
  common: Map<string, string>;
  business: ParamObject;
}

export function parseTarget(target: string, hostHeader: string | undefined): { host: string; path: string; rawQuery: string } {
  let rest = target;
  let host = hostHeader ?? "";
  const abs = /^https?:\/\/([^/?#]*)(.*)$/i.exec(target);
  if (abs) {
    // An absolute target comes from a client behind an HTTP proxy: the path is what follows the authority.
    if (!host) host = abs[1]!;
    rest = abs[2] || "/";
  }
  const q = rest.indexOf("?");
  const path = q < 0 ? rest : rest.slice(0, q);
  const rawQuery = q < 0 ? "" : rest.slice(q + 1);
  return { host: host.trim(), path, rawQuery };
}

function parseRequest(req: ApiRequest): Parsed {
  const { host, path, rawQuery } = parseTarget(req.target, headerValue(req.headers, "host"));
  if (path !== "/") throw new ApiError("InvalidRequest", { reason: `the API is served at path /, not ${path.slice(0, 100)}` });
  const requestHost = parseHost(host);
  // Node hands the target over as latin1; a byte outside ASCII must still be valid UTF-8.
  // eslint-disable-next-line no-control-regex -- the ASCII range, NUL included, on purpose
  if (/[^\x00-\x7f]/.test(rawQuery)) decodeUtf8(Buffer.from(rawQuery, "latin1"), "query string");
  const v3 = req.headers.authorization !== undefined || req.headers["x-tc-action"] !== undefined;
  const pairs = decodeUrlEncoded(rawQuery, "query string");
  let json: ParamObject | undefined;
  if (req.method === "POST" && req.body.length > 0) {
    const type = (headerValue(req.headers, "content-type") ?? "").toLowerCase();
    if (type.startsWith("application/json")) {
      json = parseJsonBody(decodeUtf8(req.body, "JSON body"));
    } else if (type.startsWith("application/x-www-form-urlencoded")) {
      pairs.push(...decodeUrlEncoded(decodeUtf8(req.body, "form body"), "form body"));
    } else {
      throw new ApiError("InvalidParameter", { reason: `the Content-Type must be application/json or application/x-www-form-urlencoded, got ${JSON.stringify(type.slice(0, 80))}` });
    }
  }
  const common = new Map<string, string>();
  const businessPairs: Array<[string, string]> = [];
  for (const [k, v] of pairs) {
    if (COMMON.has(k)) {
      if (common.has(k)) throw new ApiError("InvalidParameter", { reason: `the parameter \`${k}\` appears twice` });
      common.set(k, v);
    } else businessPairs.push([k, v]);
  }
  if (v3) {
    for (const [name, header] of [["Action", "x-tc-action"], ["Version", "x-tc-version"], ["Region", "x-tc-region"], ["Language", "x-tc-language"]] as const) {
      const v = headerValue(req.headers, header);
      if (v !== undefined) common.set(name, v);
    }
  }
  const business = unflatten(businessPairs, req.method === "GET" ? "query string" : "request");
  if (json) {
    for (const [k, v] of Object.entries(json)) {
      if (COMMON.has(k)) continue;
      if (k in business) throw new ApiError("InvalidParameter", { reason: `the parameter \`${k}\` is in both the query string and the body` });
      business[k] = v;
    }
  }
  return { v3, host: requestHost, rawQuery, pairs, common, business };
}

/**
 * The scheme a caller reached us with: https over our own TLS, or behind a TLS-terminating proxy that says so
 * (X-Forwarded-Proto, as the console reads it). Only the links this caller is handed depend on it.
 */
function schemeOf(req: ApiRequest): "http" | "https" {
  if (req.secure) return "https";
  return headerValue(req.headers, "x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase() === "https" ? "https" : "http";
}

/**
 * The language a request asked for, for an error met before its parameters were parsed (a malformed Host, an
 * oversized body, bad percent-encoding): X-TC-Language, else a `Language` in the query string or a form body.
 * Never throws; anything but en-US is zh-CN, as the full check would decide or refuse it.
 */
function languageHint(req: ApiRequest): Language {
  const header = headerValue(req.headers, "x-tc-language");
  if (header !== undefined) return header.trim() === "en-US" ? "en-US" : "zh-CN";
  const q = req.target.indexOf("?");
  const sources = q < 0 ? [] : [req.target.slice(q + 1)];
  if (req.method === "POST" && req.body.length > 0 && (headerValue(req.headers, "content-type") ?? "").toLowerCase().startsWith("application/x-www-form-urlencoded")) {
    sources.push(req.body.toString("latin1"));
  }
  for (const s of sources) {
    if (s.includes("Language=") && new URLSearchParams(s).get("Language") === "en-US") return "en-US";
  }
  return "zh-CN";
}

function pickLanguage(req: ApiRequest, common: Map<string, string>): Language {
  const v = common.get("Language") ?? headerValue(req.headers, "x-tc-language");
  if (v === undefined || v === "" || v === "zh-CN") return "zh-CN";
  if (v === "en-US") return "en-US";
  throw new ApiError("InvalidParameterValue", { reason: `\`Language\` must be zh-CN or en-US, got ${JSON.stringify(v.slice(0, 40))}` });
}

function checkPolicy(c: Credential, action: string, instanceId: string | undefined): void {
  if (!policyAllows(c, action)) {
    throw new ApiError("UnauthorizedOperation.NoCAMAuthed", { reason: `the credential's policy does not allow the action \`${action}\`` });
  }
  if (instanceId !== undefined && !policyAllows(c, action, instanceId)) {
    throw new ApiError("UnauthorizedOperation.NoCAMAuthed", { reason: `the credential's policy does not allow access to the instance \`${instanceId}\`` });
  }
}

export class Pipeline {
  private readonly actions: ReadonlyMap<string, Action>;
  private readonly nowSeconds: () => number;
  private readonly failures: FailureLimiter;
  private readonly replay: ReplayGuard;

  constructor(private readonly opts: PipelineOptions) {
    this.actions = opts.actions ?? defaultActions;
    this.nowSeconds = opts.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
    this.failures = new FailureLimiter(opts.authFailures ?? DEFAULT_FAILURE_LIMIT);
    this.replay = new ReplayGuard({ windowS: TIMESTAMP_WINDOW_S, ...opts.replay, now: () => this.nowSeconds() * 1000 });
  }

  /** Authenticates, counting failures per client address and refusing an address that has run out. */
  private async authenticate(req: ApiRequest, parsed: Parsed): Promise<Authenticated> {
    this.failures.check(req.remoteAddress);
    const { catalog } = this.opts.services;
    try {
      if (parsed.v3) return await authenticateV3({ method: req.method, host: parsed.host, rawQuery: parsed.rawQuery, headers: req.headers, body: req.body }, catalog, this.nowSeconds());
      const auth = await authenticateV1({ method: req.method, host: parsed.host, pairs: parsed.pairs, common: parsed.common }, catalog, this.nowSeconds());
      const c = parsed.common;
      this.replay.checkV1(auth.credential.secretId, c.get("Nonce")!, c.get("Timestamp")!, auth.signature);
      return auth;
    } catch (err) {
      if (err instanceof ApiError && err.code.startsWith("AuthFailure.")) this.failures.failed(req.remoteAddress);
      throw err;
    }
  }

  async handle(req: ApiRequest): Promise<ApiResponse> {
    const requestId = crypto.randomUUID();
    let language: Language | undefined;
    let actionName = "-";
    let account = "-";
    try {
      if (req.method !== "GET" && req.method !== "POST") throw new ApiError("UnsupportedProtocol", { method: req.method.slice(0, 20) });
      if (req.tooLarge) throw new ApiError("RequestSizeLimitExceeded", { reason: req.tooLarge });
      const parsed = parseRequest(req);
      language = pickLanguage(req, parsed.common);
      const name = parsed.common.get("Action");
      if (!name) throw new ApiError("MissingParameter", { name: "Action" });
      actionName = name.slice(0, 64);
      const version = parsed.common.get("Version");
      if (!version) throw new ApiError("MissingParameter", { name: "Version" });
      const { credential, signature, actionSigned } = await this.authenticate(req, parsed);
      account = credential.accountId;
      const result = await this.run(credential, this.actions, name, version, parsed.common.get("Region"), parsed.business, {
        host: parsed.host, language, requestId, clientIp: req.remoteAddress, origin: `${schemeOf(req)}://${parsed.host.authority}`,
        replay: parsed.v3 ? { signature, use: { connection: req.connection ?? 0, address: normalizeAddress(req.remoteAddress), actionSigned: actionSigned === true } } : undefined,
      });
      return { body: responseJson(result, requestId), requestId, action: actionName, account, code: "OK" };
    } catch (err) {
      // Refused before the parameters were parsed (or for its Language itself): the language it seems to ask for.
      return failure(err, language ?? languageHint(req), requestId, actionName, account);
    }
  }

  /**
   * Runs an action for a caller authenticated another way (the web console's session cookie): the same stages
   * as handle() after authentication, with `opts.actions` (e.g. console-only actions) in place of the registry.
   */
  async invoke(credential: Credential, name: string, region: string, params: ParamObject, opts: InvokeOptions): Promise<ApiResponse> {
    const requestId = crypto.randomUUID();
    const actionName = name.slice(0, 64);
    try {
      const result = await this.run(credential, opts.actions ?? this.actions, name, API_VERSION, region, params, { ...opts, host: parseHost(opts.host), requestId });
      return { body: responseJson(result, requestId), requestId, action: actionName, account: credential.accountId, code: "OK" };
    } catch (err) {
      return failure(err, opts.language, requestId, actionName, credential.accountId);
    }
  }

  /** Action and version -> region and endpoint rules -> rate limit -> permission check -> parameters -> handler. */
  private async run(credential: Credential, actions: ReadonlyMap<string, Action>, name: string, version: string, region: string | undefined,
    business: ParamObject, call: { host: RequestHost; language: Language; requestId: string; clientIp: string; origin: string; replay?: { signature: string; use: V3Use } }): Promise<Record<string, unknown>> {
    const account = credential.accountId;
    const action = actions.get(name);
    if (!action) throw new ApiError("InvalidAction", { action: name.slice(0, 64) });
    if (version !== API_VERSION) throw new ApiError("NoSuchVersion", { version: version.slice(0, 40) });
    if (!region) throw new ApiError("MissingParameter", { name: "Region" });
    this.opts.regions.check(region, call.host.name);
    if (call.replay) this.replay.checkV3(credential.secretId, call.replay.signature, name, action.mutates === true, call.replay.use);
    await this.opts.limiter.check(account, name);
    // An action that is a view over another (the console's) is allowed by the policy under that one's name.
    const policyName = action.policyAction ?? name;
    checkPolicy(credential, policyName, undefined);
    const params = validate(name, action.schema, business);
    if (action.instanceParam) checkPolicy(credential, policyName, params[action.instanceParam] as string | undefined);
    const ctx: ActionContext = {
      scope: new AccountScope(this.opts.services.catalog, credential, region),
      catalog: this.opts.services.catalog, time: this.opts.services.time, services: this.opts.services, credential, accountId: account, region,
      language: call.language, requestId: call.requestId, clientIp: call.clientIp, origin: call.origin,
    };
    return action.handle(params, ctx);
  }
}

export interface InvokeOptions {
  language: Language;
  /** The Host the caller reached us on (for the region's endpoint rules). */
  host: string;
  clientIp: string;
  /** Scheme://host[:port], for URLs handed out (download links). */
  origin: string;
  actions?: ReadonlyMap<string, Action>;
}

function failure(err: unknown, language: Language, requestId: string, action: string, account: string): ApiResponse {
  const mapped = apiErrorOf(err, action);
  const apiError = mapped ?? new ApiError("InternalError");
  const body = JSON.stringify({ Response: { Error: { Code: apiError.code, Message: apiError.messageIn(language) }, RequestId: requestId } });
  // The cause goes to the log when it is the operator's to see: an unexpected fault, a full disk, a failed job.
  // A refusal (a busy instance, a locked backup) is an answer, not a fault.
  const fault = err instanceof ApiError || (mapped && mapped.code !== "ResourceInsufficient" && mapped.code !== "FailedOperation.SystemError") ? undefined : err;
  return { body, requestId, action, account, code: apiError.code, fault };
}
