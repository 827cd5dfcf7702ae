// Small shared pieces: badges, pager, sparkline, dialog, error notes. Every value is rendered as text.
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { ApiFailure } from "./api";
import { useApp } from "./app";
import { has, Key, Lang, LANGS } from "./i18n";
import type { Loaded } from "./hooks";
import { linkClick, navigate, Route, withQuery } from "./router";

const STATUS_CLASS: Record<string, string> = { "1": "busy", "2": "ok", "3": "busy", "4": "ok", "-1": "muted", "-2": "bad" };

export function StatusBadge({ status }: { status: number }) {
  const { t } = useApp();
  const key = `status.${status}`;
  return <span class={`badge badge-${STATUS_CLASS[String(status)] ?? "muted"}`} data-status={status}>{has(key) ? t(key) : String(status)}</span>;
}

const RESULT_CLASS: Record<string, string> = { "0": "muted", "1": "busy", "2": "ok", "4": "bad" };

export function ResultBadge({ result }: { result: number }) {
  const { t } = useApp();
  const key = `result.${result}`;
  return <span class={`badge badge-${RESULT_CLASS[String(result)] ?? "muted"}`} data-result={result}>{has(key) ? t(key) : String(result)}</span>;
}

export function Badge({ kind, children, title }: { kind: "ok" | "busy" | "bad" | "muted" | "info"; children: ComponentChildren; title?: string }) {
  return <span class={`badge badge-${kind}`} title={title}>{children}</span>;
}

/** The part after `prefix.` of each i18n key that has it. */
type KeysUnder<K, P extends string> = K extends `${P}.${infer C}` ? C : never;

/** A grid table's header row: a column for each key `prefix.col`; those in `num` are right-aligned numbers. */
export function GridHead<P extends string>({ prefix, cols, num = [] }: { prefix: P; cols: Array<KeysUnder<Key, P>>; num?: Array<KeysUnder<Key, P>> }) {
  const { t } = useApp();
  return (
    <thead>
      <tr>
        {cols.map((c) => <th class={num.includes(c) ? "num" : undefined}>{t(`${prefix}.${c}` as Key)}</th>)}
      </tr>
    </thead>
  );
}

export function Link({ href, children, class: cls }: { href: string; children: ComponentChildren; class?: string }) {
  return <a href={`/console${href}`} class={cls} onClick={(e) => linkClick(e as MouseEvent, href)}>{children}</a>;
}

export function Pager({ total, page, limit, onPage }: { total: number; page: number; limit: number; onPage: (page: number) => void }) {
  const { t } = useApp();
  const pages = Math.max(1, Math.ceil(total / limit));
  return (
    <nav class="pager" aria-label="pages">
      <button type="button" disabled={page <= 1} onClick={() => onPage(1)}>{t("pager.first")}</button>
      <button type="button" disabled={page <= 1} onClick={() => onPage(page - 1)} data-testid="prev">{t("pager.prev")}</button>
      <span class="pager-summary">{t("pager.summary", { total, page, pages })}</span>
      <button type="button" disabled={page >= pages} onClick={() => onPage(page + 1)} data-testid="next">{t("pager.next")}</button>
      <button type="button" disabled={page >= pages} onClick={() => onPage(pages)}>{t("pager.last")}</button>
    </nav>
  );
}

/**
 * One page of a listing: its error, "loading" until the first answer, then the table (children), a note when the
 * page has no items and the pager, which moves the route's `page`.
 */
export function Paged<D extends { TotalCount: number }>({ list, items, empty, route, page, limit, children }: {
  list: Loaded<D>;
  items: (data: D) => unknown[];
  empty: string;
  route: Route;
  page: number;
  limit: number;
  children: (data: D) => ComponentChildren;
}) {
  const { t } = useApp();
  return (
    <>
      <ErrorNote error={list.error} />
      {list.data ? (
        <>
          {children(list.data)}
          {items(list.data).length === 0 ? <p class="empty">{empty}</p> : null}
          <Pager total={list.data.TotalCount} page={page} limit={limit} onPage={(p) => navigate(withQuery(route, { page: p === 1 ? undefined : p }))} />
        </>
      ) : list.loading ? <p class="muted">{t("common.loading")}</p> : null}
    </>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  const { t } = useApp();
  if (!error) return null;
  const message = error instanceof ApiFailure ? `${error.message} (${error.code})` : error instanceof Error ? error.message : String(error);
  return <p class="error" role="alert">{t("common.error", { message })}</p>;
}

/** A size sparkline: one point per backup, oldest on the left; each point's title names it. */
export function Sparkline({ points }: { points: Array<{ value: number; label: string }> }) {
  if (points.length === 0) return <span class="muted">—</span>;
  const w = 120;
  const h = 28;
  const max = Math.max(...points.map((p) => p.value), 1);
  const min = Math.min(...points.map((p) => p.value));
  const span = max - min || 1;
  const x = (i: number) => (points.length === 1 ? w / 2 : 3 + (i * (w - 6)) / (points.length - 1));
  const y = (v: number) => h - 3 - ((v - min) / span) * (h - 6);
  const line = points.map((p, i) => `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
  return (
    <svg class="sparkline" width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img">
      <polyline points={line} fill="none" />
      {points.map((p, i) => (
        <circle cx={x(i)} cy={y(p.value)} r={2}>
          <title>{p.label}</title>
        </circle>
      ))}
    </svg>
  );
}

export function Modal({ title, onClose, children }: { title: string; onClose: () => void; children: ComponentChildren }) {
  const { t } = useApp();
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const key = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", key);
    ref.current?.querySelector<HTMLElement>("input, button.primary, button")?.focus();
    return () => window.removeEventListener("keydown", key);
  }, []);
  return (
    <div class="modal-backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={title} ref={ref}>
        <header>
          <h2>{title}</h2>
          <button type="button" class="ghost" aria-label={t("common.close")} onClick={onClose}>×</button>
        </header>
        {children}
      </div>
    </div>
  );
}

export function LangSelect({ lang, onLang, label }: { lang: Lang; onLang: (l: Lang) => void; label: string }) {
  return (
    <label class="inline">
      <span>{label}</span>
      <select name="language" value={lang} onChange={(e) => onLang((e.target as HTMLSelectElement).value as Lang)}>
        {LANGS.map((l) => <option value={l.value}>{l.label}</option>)}
      </select>
    </label>
  );
}
