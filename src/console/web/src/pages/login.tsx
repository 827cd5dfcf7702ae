// Log in with a SecretId/SecretKey (and the Token of a temporary credential): exchanged once for a session cookie.
import { useState } from "preact/hooks";
import { ApiFailure, login, Session } from "../api";
import { LangSelect } from "../components";
import type { Lang, T } from "../i18n";

export function LoginPage({ lang, t, onLang, ended, onLogin }: { lang: Lang; t: T; onLang: (l: Lang) => void; ended: boolean; onLogin: (s: Session) => void }) {
  const [secretId, setSecretId] = useState("");
  const [secretKey, setSecretKey] = useState("");
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await login(secretId.trim(), secretKey, token.trim(), lang);
      setSecretKey("");
      onLogin(s);
    } catch (err) {
      const code = err instanceof ApiFailure ? err.code : "";
      setError(code === "AuthFailure.TokenFailure" ? t("login.token.failed")
        : code === "RequestLimitExceeded" ? t("login.limited")
          : code.startsWith("AuthFailure") ? t("login.failed")
            : err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="login-wrap">
      <form class="login card" onSubmit={submit} autocomplete="off">
        <div class="login-head">
          <h1>{t("brand")}</h1>
          <LangSelect lang={lang} onLang={onLang} label="" />
        </div>
        <h2>{t("login.title")}</h2>
        <p class="muted">{t("login.intro")}</p>
        {ended && !error ? <p class="note">{t("session.expired")}</p> : null}
        <label>
          <span>{t("login.secretId")}</span>
          <input name="secretId" value={secretId} onInput={(e) => setSecretId((e.target as HTMLInputElement).value)} required spellcheck={false} autocomplete="username" />
        </label>
        <label>
          <span>{t("login.secretKey")}</span>
          <input name="secretKey" type="password" value={secretKey} onInput={(e) => setSecretKey((e.target as HTMLInputElement).value)} required autocomplete="current-password" />
        </label>
        <label>
          <span>{t("login.token")}</span>
          <input name="token" type="password" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} autocomplete="off" />
        </label>
        {error ? <p class="error" role="alert">{error}</p> : null}
        <button type="submit" class="primary" disabled={busy}>{busy ? t("login.busy") : t("login.submit")}</button>
      </form>
    </div>
  );
}
