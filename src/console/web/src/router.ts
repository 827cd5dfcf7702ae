// A small history router for the console's pages under /console/; the server answers index.html for all of them.
import { useEffect, useState } from "preact/hooks";

export const BASE = "/console";

export interface Route {
  /** Path below /console, e.g. "/instances/crs-abcdefgh". */
  path: string;
  query: URLSearchParams;
}

const listeners = new Set<() => void>();

function current(): Route {
  let path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  if (path === "" || path === "/") path = "/instances";
  return { path: path.replace(/\/+$/, "") || "/", query: new URLSearchParams(location.search) };
}

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  const url = to.startsWith(BASE) ? to : BASE + to;
  if (url === location.pathname + location.search) return;
  if (opts.replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  window.scrollTo(0, 0);
  for (const l of listeners) l();
}

/** The URL of the current page with some query parameters changed (an empty value removes one). */
export function withQuery(route: Route, changes: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams(route.query);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === "") q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return `${route.path}${s ? `?${s}` : ""}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return route;
}

/** A left click on an in-app link changes the page without reloading it. */
export function linkClick(e: MouseEvent, to: string): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(to);
}
