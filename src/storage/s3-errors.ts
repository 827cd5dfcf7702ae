// Turns AWS SDK failures into errors an operator can act on: which store, what went wrong (bucket missing,
// credentials refused, endpoint unreachable) and what to check. The SDK's own messages are often empty for
// HEAD requests (no body) or name only the code.

export type S3ErrorKind = "ENOENT" | "NoSuchBucket" | "AccessDenied" | "Unreachable" | "NoSuchUpload" | "Unsupported" | "S3Error";

export class S3StorageError extends Error {
  override name = "S3StorageError";
  constructor(readonly code: S3ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const ACCESS_CODES = new Set(["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AllAccessDisabled", "AccountProblem", "InvalidSecurity", "AuthorizationHeaderMalformed"]);
const NETWORK_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ECONNRESET", "EPIPE", "CERT_HAS_EXPIRED", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "SELF_SIGNED_CERT_IN_CHAIN", "ERR_TLS_CERT_ALTNAME_INVALID"]);

interface SdkLikeError {
  name?: string;
  code?: string;
  message?: string;
  Code?: string;
  errors?: Array<{ code?: string; message?: string }>;
  $metadata?: { httpStatusCode?: number };
}

/** The network error code of a failed request, looking inside AggregateError (several addresses tried). */
function networkCode(e: SdkLikeError): string | undefined {
  if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  for (const inner of e.errors ?? []) if (inner.code && NETWORK_CODES.has(inner.code)) return inner.code;
  if (e.name === "TimeoutError") return "ETIMEDOUT";
  return undefined;
}

/**
 * Maps an SDK error of operation `op` on `what` (`s3://bucket/key`) in store `where` (its describe()).
 * `notFound` says what a 404 without a code means for this operation (HEAD responses carry no error body).
 */
export function mapS3Error(err: unknown, op: string, what: string, where: string, notFound: "ENOENT" | "NoSuchBucket" = "ENOENT"): S3StorageError {
  if (err instanceof S3StorageError) return err;
  const e = (err ?? {}) as SdkLikeError;
  // HEAD responses have no body: the SDK then knows only the status ("NotFound", "Unknown").
  const name = e.name && e.name !== "Error" && e.name !== "Unknown" ? e.name : e.Code ?? e.code ?? "Error";
  const status = e.$metadata?.httpStatusCode;
  const detail = e.message && e.message !== name && e.message !== "UnknownError" ? `${name}: ${e.message}` : status ? `HTTP ${status}${name === "Error" ? "" : ` ${name}`}` : name;
  const net = networkCode(e);
  if (net) {
    return new S3StorageError("Unreachable", `object store endpoint unreachable (${where}) during ${op} ${what}: ${net}${e.message && !e.message.includes(net) ? ` ${e.message}` : ""}`, { cause: err });
  }
  if (name === "NoSuchUpload") return new S3StorageError("NoSuchUpload", `${op} ${what}: the multipart upload is gone (${detail})`, { cause: err });
  if (name === "NoSuchBucket" || (notFound === "NoSuchBucket" && status === 404)) {
    return new S3StorageError("NoSuchBucket", `the bucket of ${where} does not exist (${op} ${what}: ${detail}); create it or fix the storage URL`, { cause: err });
  }
  if (name === "NoSuchKey" || name === "NotFound" || status === 404) {
    return new S3StorageError("ENOENT", `ENOENT: no blob ${what} in ${where}`, { cause: err });
  }
  if (ACCESS_CODES.has(name) || status === 403) {
    return new S3StorageError("AccessDenied", `access denied by ${where} for ${op} ${what}: ${detail}; check the access key (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or --s3-key-file), its permissions on the bucket, --s3-region and the endpoint`, { cause: err });
  }
  // An S3-compatible store that lacks an operation: s3rver answers NotImplemented (501) for ListMultipartUploads
  // and MethodNotAllowed (405) for ListParts and AbortMultipartUpload.
  if (name === "NotImplemented" || name === "MethodNotAllowed" || status === 501 || status === 405) {
    return new S3StorageError("Unsupported", `${op} is not implemented by ${where} (${op} ${what}: ${detail})`, { cause: err });
  }
  return new S3StorageError("S3Error", `${op} ${what} failed at ${where}: ${detail}`, { cause: err });
}
