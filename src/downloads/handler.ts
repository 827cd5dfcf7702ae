// The `/download/` route: a GET (or HEAD) checks the link's signature, its expiry, the caller's address against
// the restriction the link carries and the backup's status, then streams the exported RDB file, whole or one byte
// range. Refusals are plain HTTP statuses with a small XML body, like a presigned object-store URL.
import crypto from "node:crypto";
import type http from "node:http";
import { pipeline } from "node:stream";
import rangeParser from "range-parser";
import { exportKey } from "../jobs/backups";
import type { Catalog } from "../catalog/catalog";
import type { Clock, Config } from "../config";
import type { Logger } from "../log";
import { attachmentDisposition, type BlobStore } from "../storage/blob-store";
/** A route of the HTTP server (gateway/server.ts routes non-API paths to handlers of this shape). */
type RawHandler = http.RequestListener;
import { DOWNLOAD_PREFIX, LinkSigner } from "./links";
import { downloadForm, downloadName } from "./encrypted";
import { verifiedRead } from "../storage/integrity";
import { KeyUnavailableError } from "../storage/keys/provider";
import { addressAllowed, describeRule, normalizeAddress } from "./restrictions";

type Range = { start: number; end: number };

/**
 * One `bytes=` range against a file of `size` bytes: the range, "invalid" (-> 416), or undefined (whole file).
 * Several ranges are refused (no multipart answers), as is a malformed header or another unit.
 */
export function parseRange(header: string | undefined, size: number): Range | "invalid" | undefined {
  if (header === undefined) return undefined;
  const ranges = rangeParser(size, header, { combine: true });
  if (ranges === -1 && size > 0 && /^\s*bytes\s*=\s*-\s*0*[1-9]\d*\s*$/i.test(header)) {
    // A suffix longer than the file is the whole file (RFC 9110, 14.1.1); range-parser finds it unsatisfiable.
    return { start: 0, end: size - 1 };
  }
  if (typeof ranges === "number" || ranges.type.trim().toLowerCase() !== "bytes" || ranges.length !== 1) return "invalid";
  return ranges[0]!;
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The `/download/` route: see the file's header. */
/** What the handler uses of a running server (its Services). */
export interface DownloadDeps {
  catalog: Catalog;
  store: BlobStore;
  clock: Clock;
  links: LinkSigner;
  logger: Logger;
  config: Pick<Config, "downloadRedirect" | "downloadEncrypted">;
}

export function createDownloadHandler(services: DownloadDeps): RawHandler {
  const { catalog, store, clock, links: signer } = services;
  const logger = services.logger.child({ component: "download" });

  return (req, res) => {
    const requestId = crypto.randomUUID();
    const method = req.method ?? "";
    const address = normalizeAddress(req.socket.remoteAddress ?? "");
    let backupId = "-";
    let shard = -1;
    const done = (status: number, bytes: number) => logger.info({ requestId, backupId, shard, ip: address, status, bytes }, "download");

    const refuse = (status: number, code: string, message: string, extra: http.OutgoingHttpHeaders = {}) => {
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message><RequestId>${requestId}</RequestId></Error>\n`;
      res.writeHead(status, { "Content-Type": "application/xml", "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-store", "X-Request-Id": requestId, ...extra });
      res.end(method === "HEAD" ? undefined : body);
      done(status, 0);
    };

    const serve = async (): Promise<void> => {
      if (method !== "GET" && method !== "HEAD") return refuse(405, "MethodNotAllowed", `the method ${method.slice(0, 20)} is not allowed on a download link; use GET or HEAD`, { Allow: "GET, HEAD" });
      const url = req.url ?? "";
      const at = url.indexOf(DOWNLOAD_PREFIX);
      const rest = url.slice(at + DOWNLOAD_PREFIX.length).split("?")[0]!;
      const token = rest.split("/")[0]!;
      const claims = signer.verify(token);
      if (!claims) return refuse(403, "InvalidToken", "the download link is not valid: its signature does not match");
      backupId = claims.b;
      shard = claims.s;
      const now = clock.now();
      if (now >= claims.e) return refuse(403, "ExpiredToken", `the download link expired at ${new Date(claims.e).toISOString()}; call DescribeBackupUrl for a new one`);
      if (!addressAllowed(claims.r, address)) {
        return refuse(403, "AccessDenied", `downloads from ${address} are not allowed: ${describeRule(claims.r)} (the restriction in force when the link was issued)`);
      }
      const b = await catalog.backup(claims.b);
      const instance = b ? await catalog.instance(b.instanceId) : undefined;
      if (!b || !instance || instance.accountId !== claims.a) return refuse(404, "NoSuchKey", `the backup ${claims.b} does not exist`);
      if (b.status === -1 || b.status === -2) return refuse(410, "Gone", `the backup ${b.backupId} is no longer available (${b.status === -1 ? "Status -1: expired" : "Status -2: deleted"})`);
      if (b.status !== 4) return refuse(404, "NoSuchKey", `the backup ${b.backupId} is not exported now (Status ${b.status}); call DescribeBackupUrl again`);
      const file = b.files.find((f) => f.shard === claims.s);
      const key = exportKey(b.backupId, claims.s);
      const st = file ? await store.stat(key) : undefined;
      if (!file || !st) return refuse(404, "NoSuchKey", `the export file of shard ${claims.s} of backup ${b.backupId} is missing; call DescribeBackupUrl again`);
      // An encrypted backup's export is stored encrypted: served decrypted (the plain RDB), or as stored.
      const form = downloadForm(services.config, b);
      const fileName = downloadName(form, b, claims.s);
      if (services.config.downloadRedirect && store.presign && !form.decrypt) {
        // Everything a link promises (signature, expiry, address, status) was checked above; the bytes then come
        // from the object store directly, on a pre-signed URL that lives only a few minutes.
        const location = await store.presign(key, { expiresInS: 300, fileName });
        res.writeHead(302, { Location: location, "Cache-Control": "no-store", "X-Request-Id": requestId, "Content-Length": 0 });
        res.end();
        return done(302, 0);
      }
      const size = form.decrypt ? file.bytes : st.size;
      const range = parseRange(req.headers.range, size);
      if (range === "invalid") {
        return refuse(416, "InvalidRange", `the range ${JSON.stringify(String(req.headers.range).slice(0, 80))} cannot be served from a file of ${size} bytes (one range of the form bytes=a-b, a- or -n)`, { "Content-Range": `bytes */${size}`, "Accept-Ranges": "bytes" });
      }
      const headers: http.OutgoingHttpHeaders = {
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "Content-Disposition": attachmentDisposition(fileName),
        // The plain RDB's SHA-256 names the plain file; the encrypted one is another entity.
        ETag: form.encrypted ? `"${file.sha256}-enc"` : `"${file.sha256}"`,
        "Cache-Control": "private, no-store",
        "X-Request-Id": requestId,
      };
      const status = range ? 206 : 200;
      const length = range ? range.end - range.start + 1 : size;
      headers["Content-Length"] = length;
      if (range) headers["Content-Range"] = `bytes ${range.start}-${range.end}/${size}`;
      if (method === "HEAD" || length === 0) {
        res.writeHead(status, headers);
        res.end();
        return done(status, 0);
      }
      let stream;
      try {
        if (form.decrypt && !range) {
          // The whole plain file: decrypted, and checked against the recorded size and SHA-256 on the way (a
          // mismatch ends the response early, so a damaged file never arrives complete).
          stream = await verifiedRead(store, { key, bytes: file.bytes, sha256: file.sha256, encryption: form.decrypt });
        } else {
          stream = await store.openRead(key, { ...(range ? { start: range.start, end: range.end } : {}), ...(form.decrypt ? { encryption: form.decrypt } : {}) });
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return refuse(404, "NoSuchKey", `the export file of shard ${claims.s} of backup ${b.backupId} is gone`);
        if (err instanceof KeyUnavailableError) {
          logger.error({ requestId, backupId, shard, keyId: err.keyId, reason: err.message }, "download: the backup's key is unavailable");
          return refuse(503, "KeyUnavailable", `the backup ${b.backupId} is encrypted with master key ${JSON.stringify(err.keyId)}, which this server cannot use now; retry later`);
        }
        throw err;
      }
      res.writeHead(status, headers);
      // pipeline() gives backpressure and destroys the file stream if the client goes away.
      pipeline(stream, res, (err) => {
        if (err) logger.info({ requestId, backupId, shard, reason: err.message }, "download ended early");
        done(status, err ? -1 : length);
      });
    };

    serve().catch((err: unknown) => {
      logger.error({ err, requestId, backupId, shard }, "download failure");
      if (!res.headersSent) refuse(500, "InternalError", "an internal error occurred; retry later");
      else res.destroy();
    });
  };
}
