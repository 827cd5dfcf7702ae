// The Host a request was sent to, parsed once. The endpoint rules (finance hosts) must see one canonical
// spelling, or `Redis.X.com.` and `x.com:abc` slip past a comparison with `redis.x.com`; the signature
// check, on the other hand, must see what the client signed, which is the header as sent (lower-cased).
import net from "node:net";
import { ApiError } from "../protocol/errors";

export interface RequestHost {
  /** Lower case, without a trailing dot and without the port: what the endpoint rules compare. */
  name: string;
  /** The port as sent (digits), if any. */
  port?: string;
  /** `name[:port]`, for URLs handed back to the caller. */
  authority: string;
  /** The spellings a client may have signed: as sent (lower-cased) with its port, then without it. */
  signed: string[];
}

const MAX_HOST = 255;
/** A DNS name or IPv4 address: letters, digits, `-` and `_` in dot-separated non-empty labels. */
const REG_NAME = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?$/;

function malformed(raw: string, why: string): ApiError {
  return new ApiError("InvalidParameter", { reason: `the Host ${JSON.stringify(raw.slice(0, 80))} is malformed: ${why}` });
}

/** Parses a Host header value (or an absolute target's authority); throws MissingParameter or InvalidParameter. */
export function parseHost(raw: string | undefined): RequestHost {
  const sent = (raw ?? "").trim().toLowerCase();
  if (sent === "") throw new ApiError("MissingParameter", { name: "Host" });
  if (sent.length > MAX_HOST) throw malformed(sent, `longer than ${MAX_HOST} characters`);
  // tccli given an endpoint URL sends the whole URL as the Host.
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(sent)) throw malformed(sent, "a Host is a name or address with an optional :port, not a URL; give the endpoint without its scheme (http:// or https://)");
  let hostPart = sent;
  let port: string | undefined;
  if (sent.startsWith("[")) {
    const close = sent.indexOf("]");
    if (close < 0) throw malformed(sent, "an IPv6 address must be closed by ]");
    if (!net.isIPv6(sent.slice(1, close))) throw malformed(sent, "not a valid IPv6 address in [ ]");
    hostPart = sent.slice(0, close + 1);
    const rest = sent.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) throw malformed(sent, "unexpected characters after the IPv6 address");
      port = rest.slice(1);
    }
  } else {
    const colon = sent.indexOf(":");
    if (colon >= 0) {
      hostPart = sent.slice(0, colon);
      port = sent.slice(colon + 1);
    }
    if (!REG_NAME.test(hostPart)) throw malformed(sent, "a host name has letters, digits, - and _ in non-empty labels separated by dots");
  }
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw malformed(sent, "the port must be a number from 1 to 65535");
  }
  const name = hostPart.endsWith(".") ? hostPart.slice(0, -1) : hostPart;
  const withPort = port === undefined ? hostPart : `${hostPart}:${port}`;
  return {
    name,
    port,
    authority: port === undefined ? name : `${name}:${port}`,
    signed: withPort === hostPart ? [hostPart] : [withPort, hostPart],
  };
}
