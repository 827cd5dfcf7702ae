// The console's shell: session check, header (navigation, region, language, logout) and the page for the route.
import { render } from "preact";
import { useCallback, useEffect, useLayoutEffect, useMemo, useState } from "preact/hooks";
import { call as apiCall, currentSession, logout, onSessionEnded, Session } from "./api";
import { App, AppContext } from "./app";
import { LangSelect, Link } from "./components";
import { initialLang, Key, Lang, translate } from "./i18n";
import { InstancePage } from "./pages/instance";
import { InstancesPage } from "./pages/instances";
import { LoginPage } from "./pages/login";
import { TasksPage } from "./pages/tasks";
import { navigate, useRoute } from "./router";
import "./styles.css";

const LANG_KEY = "crs-console.lang";
const REGION_KEY = "crs-console.region";

function storedItem(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function storeItem(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Private mode: the choice lasts for this page only.
  }
}

// What the last session check answered (identifiers, regions, time zone; nothing secret), kept for this tab so a
// reload shows the page at once while the check runs again in the background.
const SESSION_KEY = "crs-console.session";

function cachedSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    const s = raw ? (JSON.parse(raw) as Session) : undefined;
    return s && typeof s.ExpiresAt === "number" && s.ExpiresAt > Date.now() && Array.isArray(s.Regions) ? s : undefined;
  } catch {
    return undefined;
  }
}

function cacheSession(s: Session | null): void {
  try {
    if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(SESSION_KEY);
  } catch {
    // Storage unavailable: every load checks first.
  }
}

function pickRegion(session: Session): string {
  const stored = storedItem(REGION_KEY);
  if (stored && session.Regions.some((r) => r.Region === stored)) return stored;
  return session.Regions[0]?.Region ?? "ap-guangzhou";
}

function Root() {
  const route = useRoute();
  const [lang, setLang] = useState<Lang>(() => initialLang(storedItem(LANG_KEY), navigator.language));
  const [session, setSession] = useState<Session | null | undefined>(cachedSession);
  const [region, setRegion] = useState(() => (session ? pickRegion(session) : ""));
  const [ended, setEnded] = useState(false);
  const t = useCallback((key: Key, vars?: Record<string, string | number>) => translate(lang, key, vars), [lang]);

  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = translate(lang, "brand");
  }, [lang]);

  const start = useCallback((s: Session) => {
    cacheSession(s);
    setSession(s);
    setRegion(pickRegion(s));
    setEnded(false);
  }, []);
  const end = useCallback((expired: boolean) => {
    cacheSession(null);
    setSession(null);
    setEnded(expired);
  }, []);

  // A layout effect: the session check starts at once, not after the first paint.
  useLayoutEffect(() => {
    onSessionEnded(() => end(true));
    currentSession().then((s) => (s ? start(s) : end(false)), () => end(false));
  }, []);

  useEffect(() => {
    if (session === null && route.path !== "/login") {
      const next = route.path + (route.query.toString() ? `?${route.query}` : "");
      navigate(`/login?next=${encodeURIComponent(next)}`, { replace: true });
    }
    if (session && route.path === "/login") navigate(safeNext(route.query.get("next")), { replace: true });
  }, [session, route.path]);

  const app: App | null = useMemo(() => session ? {
    session, region, lang, t,
    call: <R,>(action: string, params: Record<string, unknown> = {}) => apiCall<R>(action, region, lang, params),
  } : null, [session, region, lang, t]);

  const chooseLang = (l: Lang) => {
    setLang(l);
    storeItem(LANG_KEY, l);
  };

  if (session === undefined) return <div class="boot">{t("common.loading")}</div>;
  if (!app || route.path === "/login") {
    return <LoginPage lang={lang} t={t} onLang={chooseLang} ended={ended} onLogin={start} />;
  }
  const page = route.path.startsWith("/instances/")
    ? <InstancePage key={`${region}/${route.path}`} instanceId={decodeURIComponent(route.path.slice("/instances/".length))} route={route} />
    : route.path === "/tasks"
      ? <TasksPage key={region} route={route} />
      : <InstancesPage key={region} route={route} />;
  return (
    <AppContext.Provider value={app}>
      <header class="top">
        <Link href="/instances" class="brand">{t("brand")}</Link>
        <nav class="main-nav">
          <Link href="/instances" class={route.path.startsWith("/instances") ? "active" : ""}>{t("nav.instances")}</Link>
          <Link href="/tasks" class={route.path === "/tasks" ? "active" : ""}>{t("nav.tasks")}</Link>
        </nav>
        <span class="spacer" />
        <label class="inline">
          <span>{t("header.region")}</span>
          <select name="region" value={region} onChange={(e) => {
            const r = (e.target as HTMLSelectElement).value;
            setRegion(r);
            storeItem(REGION_KEY, r);
            if (route.path.startsWith("/instances/")) navigate("/instances");
          }}>
            {session!.Regions.map((r) => <option value={r.Region}>{r.InstanceCount ? `${r.Region} (${r.InstanceCount})` : r.Region}</option>)}
          </select>
        </label>
        <LangSelect lang={lang} onLang={chooseLang} label={t("header.language")} />
        <span class="account" title={session!.SecretId}>{t("header.account", { account: session!.AccountId })}</span>
        <button type="button" class="ghost" data-testid="logout" onClick={() => {
          void logout().finally(() => {
            end(false);
            navigate("/login", { replace: true });
          });
        }}>{t("header.logout")}</button>
      </header>
      <main>{page}</main>
    </AppContext.Provider>
  );
}

/** Only a path inside the console may follow a login (never another site). */
function safeNext(next: string | null): string {
  return next && /^\/[A-Za-z0-9]/.test(next) && !next.startsWith("/login") ? next : "/instances";
}

render(<Root />, document.getElementById("app")!);
