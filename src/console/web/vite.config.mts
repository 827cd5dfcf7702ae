// Builds the console into dist/console (served by src/console/static.ts under /console/). Everything is bundled:
// no CDN, no external fonts, no inline script (the server's Content-Security-Policy forbids them).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = path.dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: here,
  base: "/console/",
  publicDir: false,
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: path.resolve(here, "../../../dist/console"),
    emptyOutDir: true,
    // No data: URLs and no injected inline polyfill.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2020",
    reportCompressedSize: false,
  },
});
