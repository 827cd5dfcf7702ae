// The console's built front-end (Vite's output in dist/console) served as static files: hashed assets cached for
// a year, index.html revalidated every time and served for every client-side route, each with its Content-Type
// and gzip when the browser takes it.
import fs from "node:fs";
import type http from "node:http";
import path from "node:path";
import zlib from "node:zlib";

/** dist/console, seen from this file's compiled place (dist/src/console/static.js). */
export const DEFAULT_ROOT = path.join(__dirname, "..", "..", "console");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};
const COMPRESSIBLE = new Set([".html", ".js", ".css", ".svg", ".json", ".txt"]);

interface Loaded {
  body: Buffer;
  gzip?: Buffer;
  etag: string;
  mtimeMs: number;
}

export class StaticFiles {
  private readonly cache = new Map<string, Loaded>();

  constructor(readonly root: string) {}

  /** The file for a path under /console, or undefined if it is not one of the built files. */
  private resolve(rel: string): string | undefined {
    let decoded: string;
    try {
      decoded = decodeURIComponent(rel);
    } catch {
      return undefined;
    }
    if (decoded.includes("\0")) return undefined;
    const file = path.resolve(this.root, "." + path.posix.normalize("/" + decoded));
    if (file !== this.root && !file.startsWith(this.root + path.sep)) return undefined;
    return file;
  }

  private load(file: string): Loaded | undefined {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const have = this.cache.get(file);
    if (have && have.mtimeMs === st.mtimeMs) return have;
    const body = fs.readFileSync(file);
    const loaded: Loaded = { body, etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`, mtimeMs: st.mtimeMs };
    if (COMPRESSIBLE.has(path.extname(file)) && body.length > 1024) loaded.gzip = zlib.gzipSync(body, { level: 9 });
    this.cache.set(file, loaded);
    return loaded;
  }

  /** Answers a GET or HEAD for `rel` (the path after /console/); false when there is nothing built to serve. */
  serve(req: http.IncomingMessage, res: http.ServerResponse, rel: string, headers: http.OutgoingHttpHeaders): boolean {
    const isAsset = rel.startsWith("assets/");
    const wanted = rel === "" ? undefined : this.resolve(rel);
    let file = wanted;
    let loaded = file ? this.load(file) : undefined;
    if (!loaded) {
      if (isAsset || /\.[a-z0-9]+$/i.test(rel)) {
        res.writeHead(404, { ...headers, "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" });
        res.end("not found\n");
        return true;
      }
      // A client-side route: the application's page.
      file = path.join(this.root, "index.html");
      loaded = this.load(file);
      if (!loaded) return false;
    }
    const ext = path.extname(file!);
    const out: http.OutgoingHttpHeaders = {
      ...headers,
      "Content-Type": TYPES[ext] ?? "application/octet-stream",
      // Vite names assets by content hash: they never change. The page itself is revalidated every time.
      "Cache-Control": isAsset && file === wanted ? "public, max-age=31536000, immutable" : "no-cache",
      ETag: loaded.etag,
      Vary: "Accept-Encoding",
    };
    if (req.headers["if-none-match"] === loaded.etag) {
      res.writeHead(304, out);
      res.end();
      return true;
    }
    const gzip = loaded.gzip && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = gzip ? loaded.gzip! : loaded.body;
    if (gzip) out["Content-Encoding"] = "gzip";
    out["Content-Length"] = body.length;
    res.writeHead(200, out);
    res.end(req.method === "HEAD" ? undefined : body);
    return true;
  }
}
