// The console's calls to its server: login/logout/session, and actions run through the API pipeline with the
// session cookie. The key never comes back from the server and nothing secret is stored in the browser.
import type { Lang } from "./i18n";

export class ApiFailure extends Error {
  constructor(readonly code: string, message: string, readonly requestId?: string) {
    super(message);
  }
}

/** The session is gone (expired, logged out elsewhere, credential removed): the app returns to the login page. */
export class SessionEnded extends Error {}

export interface Policy {
  Actions?: string[];
  Instances?: string[];
}

export interface Session {
  SecretId: string;
  AccountId: string;
  ExpiresAt: number;
  TimeZone: string;
  Policy: Policy | null;
  Regions: Array<{ Region: string; InstanceCount: number }>;
}

type Envelope = { Response: Record<string, unknown> & { Error?: { Code: string; Message: string }; RequestId?: string } };

let sessionEnded: () => void = () => undefined;
export function onSessionEnded(fn: () => void): void {
  sessionEnded = fn;
}

async function post(path: string, body: unknown, method = "POST"): Promise<Envelope["Response"]> {
  const res = await fetch(`/console/api/${path}`, {
    method,
    credentials: "same-origin",
    headers: method === "POST" ? { "Content-Type": "application/json", "X-CRS-Console": "1" } : { "X-CRS-Console": "1" },
    body: method === "POST" ? JSON.stringify(body) : undefined,
  });
  let json: Envelope;
  try {
    json = (await res.json()) as Envelope;
  } catch {
    throw new ApiFailure("InternalError", `HTTP ${res.status}`);
  }
  if (res.status === 401 && path !== "login") {
    // Only a call made during a session means it ended; the first session check just finds none.
    if (path === "call") sessionEnded();
    throw new SessionEnded(json.Response.Error?.Message ?? "session ended");
  }
  const err = json.Response.Error;
  if (err) throw new ApiFailure(err.Code, err.Message, json.Response.RequestId);
  return json.Response;
}

export async function currentSession(): Promise<Session | undefined> {
  try {
    return (await post("session", undefined, "GET")) as unknown as Session;
  } catch (err) {
    if (err instanceof SessionEnded) return undefined;
    throw err;
  }
}

export async function login(secretId: string, secretKey: string, token: string, language: Lang): Promise<Session> {
  return (await post("login", { SecretId: secretId, SecretKey: secretKey, Token: token || undefined, Language: language })) as unknown as Session;
}

export async function logout(): Promise<void> {
  await post("logout", {});
}

export async function call<T = Record<string, unknown>>(action: string, region: string, language: Lang, params: Record<string, unknown> = {}): Promise<T> {
  return (await post("call", { Action: action, Region: region, Params: params, Language: language })) as unknown as T;
}
