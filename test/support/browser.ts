// A real browser for console tests: Debian's chromium driven by playwright-core, headless, in a fresh profile.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, BrowserContext, Page } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(opts: { locale?: string } = {}): Promise<Browser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "crs-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1440, height: 900 },
    locale: opts.locale ?? "en-US",
    acceptDownloads: true,
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A browser and one page of it whose uncaught errors are printed (a console test's usual start). */
export async function launchBrowserPage(opts: { locale?: string } = {}): Promise<{ browser: Browser; page: Page }> {
  const browser = await launchBrowser(opts);
  const page = await browser.context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  return { browser, page };
}
