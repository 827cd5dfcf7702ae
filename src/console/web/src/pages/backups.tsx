// An instance's backups: every RedisBackupSet field, Status as badges, the filters DescribeInstanceBackups has
// (statuses, a start-time window), server-side paging, and per backup: download, restore into an instance, delete.
import { useEffect, useState } from "preact/hooks";
import { useApp } from "../app";
import { Badge, ErrorNote, GridHead, Modal, Paged, StatusBadge } from "../components";
import { SizeDurationChart } from "../chart";
import { bytes, duration, fromInput, toInput, wallMs } from "../format";
import { has } from "../i18n";
import { useDebounced, useInterval, useLoad, useSubmit } from "../hooks";
import { navigate, Route, withQuery } from "../router";
import { TaskWatch } from "../taskwatch";
import { BackupOrigin } from "../backup-source";
import type { BackupPage, BackupSet, Overview } from "../types";

const LIMIT = 20;
const STATUSES = [1, 2, 3, 4, -1, -2];
const FINISHED = [2, 3, 4, -1, -2];
const CHART_POINTS = 100;

function secondsBetween(start: string, end: string): number | null {
  const a = wallMs(start);
  const b = wallMs(end);
  return a === undefined || b === undefined ? null : Math.max(0, Math.round((b - a) / 1000));
}

type Dialog = { kind: "download" | "restore" | "delete"; backup: BackupSet } | null;

function statusesOf(route: Route): number[] {
  return (route.query.get("status") ?? "").split(",").filter((s) => s !== "").map(Number).filter((n) => STATUSES.includes(n));
}

export function BackupsSection({ instanceId, route, version, onChanged }: { instanceId: string; route: Route; version: number; onChanged: () => void }) {
  const { t, call } = useApp();
  const statuses = statusesOf(route);
  const begin = route.query.get("begin");
  const end = route.query.get("end");
  const page = Math.max(1, Number(route.query.get("page")) || 1);
  const timeWindow = { ...(begin ? { BeginTime: begin } : {}), ...(end ? { EndTime: end } : {}) };
  const key = [instanceId, statuses.join(","), begin, end, page, version];
  const list = useLoad(() => call<BackupPage>("DescribeInstanceBackups", {
    InstanceId: instanceId, Limit: LIMIT, Offset: (page - 1) * LIMIT, ...timeWindow, ...(statuses.length ? { Status: statuses } : {}),
  }), key);
  const chartStatuses = statuses.length ? FINISHED.filter((s) => statuses.includes(s)) : FINISHED;
  const chart = useLoad(() => chartStatuses.length
    ? call<BackupPage>("DescribeInstanceBackups", { InstanceId: instanceId, Limit: CHART_POINTS, ...timeWindow, Status: chartStatuses })
    : Promise.resolve({ TotalCount: 0, BackupSet: [] }), key);
  // Live while a backup is being taken or exported.
  const busy = list.data?.BackupSet.some((b) => b.Status === 1 || b.Status === 3) ?? false;
  useInterval(() => {
    list.reload();
    chart.reload();
  }, busy ? 1000 : null);
  const [dialog, setDialog] = useState<Dialog>(null);
  const [open, setOpen] = useState<string | null>(null);

  return (
    <>
      <div class="card">
        <h2>{t("chart.title")}</h2>
        <ErrorNote error={chart.error} />
        {chart.data ? <SizeDurationChart backups={chart.data.BackupSet} /> : <p class="muted">{t("common.loading")}</p>}
      </div>
      <div class="card" data-testid="backups" data-ready={list.data && !list.loading ? "1" : "0"}>
        <h2>{t("backups.title")}</h2>
        <Filters route={route} statuses={statuses} begin={begin} end={end} />
        <Paged list={list} items={(d) => d.BackupSet} empty={t("backups.empty")} route={route} page={page} limit={LIMIT}>
          {(d) => (
            <div class="table-scroll">
              <table class="grid backups">
                <GridHead
                  prefix="backups.col"
                  cols={["start", "id", "type", "status", "size", "duration", "fileType", "expire", "remark", "actions"]}
                  num={["size", "duration"]}
                />
                <tbody>
                  {d.BackupSet.map((b) => (
                    <BackupRow key={b.BackupId} b={b} open={open === b.BackupId} onToggle={() => setOpen(open === b.BackupId ? null : b.BackupId)} onAction={(kind) => setDialog({ kind, backup: b })} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Paged>
      </div>
      {dialog?.kind === "download" ? <DownloadDialog backup={dialog.backup} onClose={() => { setDialog(null); onChanged(); }} /> : null}
      {dialog?.kind === "restore" ? <RestoreDialog backup={dialog.backup} onClose={() => setDialog(null)} /> : null}
      {dialog?.kind === "delete" ? <DeleteDialog backup={dialog.backup} onClose={() => setDialog(null)} onDeleted={() => { setDialog(null); onChanged(); }} /> : null}
    </>
  );
}

function Filters({ route, statuses, begin, end }: { route: Route; statuses: number[]; begin: string | null; end: string | null }) {
  const { t } = useApp();
  const [picked, setPicked] = useState(statuses);
  const [from, setFrom] = useState(toInput(begin));
  const [to, setTo] = useState(toInput(end));
  useEffect(() => {
    setPicked(statuses);
    setFrom(toInput(begin));
    setTo(toInput(end));
  }, [statuses.join(","), begin, end]);
  return (
    <form class="filters" data-testid="filters" onSubmit={(e) => {
      e.preventDefault();
      navigate(withQuery(route, { status: [...picked].sort((a, b) => a - b).join(","), begin: fromInput(from), end: fromInput(to), page: undefined }));
    }}>
      <fieldset class="statuses">
        <legend>{t("backups.filter.status")}</legend>
        {STATUSES.map((s) => (
          <label class="check">
            <input type="checkbox" name={`status-${s}`} checked={picked.includes(s)}
              onChange={(e) => setPicked((cur) => ((e.target as HTMLInputElement).checked ? [...cur, s] : cur.filter((x) => x !== s)))} />
            <StatusBadge status={s} />
          </label>
        ))}
      </fieldset>
      <label>
        <span>{t("backups.filter.begin")}</span>
        <input type="datetime-local" name="begin" step={1} value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        <span>{t("backups.filter.end")}</span>
        <input type="datetime-local" name="end" step={1} value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
      </label>
      <button type="submit" class="primary">{t("common.apply")}</button>
      <button type="button" onClick={() => navigate(withQuery(route, { status: undefined, begin: undefined, end: undefined, page: undefined }))}>{t("common.reset")}</button>
    </form>
  );
}

function BackupRow({ b, open, onToggle, onAction }: { b: BackupSet; open: boolean; onToggle: () => void; onAction: (kind: "download" | "restore" | "delete") => void }) {
  const { t } = useApp();
  const typeKey = `backupType.${b.BackupType}`;
  const kept = b.Status === 2 || b.Status === 4;
  return (
    <>
      <tr data-backup={b.BackupId} data-status={b.Status}>
        <td class="nowrap" title={b.EndTime ? `${t("backups.col.end")}: ${b.EndTime}` : undefined}>{b.StartTime}</td>
        <td class="nowrap">
          <button type="button" class="link mono small" title={`${b.BackupId} · ${t("common.details")}`} aria-expanded={open} onClick={onToggle}>
            {b.BackupId.length > 13 ? `${b.BackupId.slice(0, 13)}…` : b.BackupId}
          </button>
        </td>
        <td>{has(typeKey) ? t(typeKey) : b.BackupType}</td>
        <td>
          <div class="flags">
            <StatusBadge status={b.Status} />
            {b.Locked ? <Badge kind="busy">{t("flag.locked")}</Badge> : null}
            {b.Encrypted ? <Badge kind="info">{t("flag.encrypted")}</Badge> : null}
            {b.FullBackup ? <Badge kind="info">{t("flag.full")}</Badge> : null}
          </div>
        </td>
        <td class="num nowrap">{b.Status === 1 ? "—" : bytes(b.BackupSize)}</td>
        <td class="num nowrap">{b.EndTime ? duration(secondsBetween(b.StartTime, b.EndTime)) : "—"}</td>
        <td class="nowrap">{b.FileType || "—"}</td>
        <td class="nowrap">{b.ExpireTime || "—"}</td>
        <td class="remark">{b.Remark}</td>
        <td>
          <div class="actions">
            <button type="button" class="small" disabled={!(kept || b.Status === 3)} onClick={() => onAction("download")}>{t("backups.download")}</button>
            <button type="button" class="small" disabled={!kept || b.Locked === 1} onClick={() => onAction("restore")}>{t("backups.restore")}</button>
            <button type="button" class="small danger" disabled={!kept || b.Locked === 1} onClick={() => onAction("delete")}>{t("backups.delete")}</button>
          </div>
        </td>
      </tr>
      {open ? (
        <tr class="details">
          <td colSpan={10}>
            <dl class="fields">
              {(Object.keys(b) as Array<keyof BackupSet>).map((k) => (
                <div><dt>{k}</dt><dd class="mono">{String(b[k])}</dd></div>
              ))}
              <BackupOrigin instanceId={b.InstanceId} backupId={b.BackupId} />
            </dl>
          </td>
        </tr>
      ) : null}
    </>
  );
}

interface BackupUrl {
  BackupInfos: Array<{ FileName: string; FileSize: number; DownloadUrl: string }>;
}

/** Only http(s) links on this page's own origin become hrefs. */
function safeHref(url: string): string | undefined {
  try {
    const u = new URL(url, location.href);
    return (u.protocol === "http:" || u.protocol === "https:") && u.origin === location.origin ? u.href : undefined;
  } catch {
    return undefined;
  }
}

function DownloadDialog({ backup, onClose }: { backup: BackupSet; onClose: () => void }) {
  const { t, call } = useApp();
  const urls = useLoad(() => call<BackupUrl>("DescribeBackupUrl", { InstanceId: backup.InstanceId, BackupId: backup.BackupId }), [backup.BackupId]);
  return (
    <Modal title={t("download.title", { id: backup.BackupId })} onClose={onClose}>
      <ErrorNote error={urls.error} />
      {urls.data ? (
        <>
          <ul class="files" data-testid="download-links">
            {urls.data.BackupInfos.map((f) => {
              const href = safeHref(f.DownloadUrl);
              return <li>{href ? <a href={href} download={f.FileName}>{f.FileName}</a> : <span>{f.FileName}</span>} <span class="muted">{bytes(f.FileSize)}</span></li>;
            })}
          </ul>
          <p class="sub">{t("download.note")}</p>
        </>
      ) : urls.loading ? <p class="muted">{t("download.preparing")}</p> : null}
      <div class="row end"><button type="button" onClick={onClose}>{t("common.close")}</button></div>
    </Modal>
  );
}

function RestoreDialog({ backup, onClose }: { backup: BackupSet; onClose: () => void }) {
  const { t, call } = useApp();
  const [target, setTarget] = useState("");
  const [password, setPassword] = useState("");
  const [started, setStarted] = useState<{ taskId: number; target: string } | null>(null);
  const search = useDebounced(target.trim(), 250);
  const candidates = useLoad(() => call<Overview>("DescribeInstanceOverview", { Limit: 100, ...(search ? { SearchKey: search } : {}) }), [search]);
  const { busy, error, submit } = useSubmit(async () => {
    const r = await call<{ TaskId: number }>("RestoreInstance", { InstanceId: target.trim(), BackupId: backup.BackupId, Password: password });
    setPassword("");
    setStarted({ taskId: r.TaskId, target: target.trim() });
  });
  return (
    <Modal title={t("restore.title", { id: backup.BackupId })} onClose={onClose}>
      {started ? (
        <>
          <p>{t("restore.started", { id: started.taskId })}</p>
          <TaskWatch taskId={started.taskId} instanceId={started.target} />
        </>
      ) : (
        <form onSubmit={submit} class="stack">
          <p class="warning">{t("restore.warning")}</p>
          <label>
            <span>{t("restore.target")}</span>
            <input name="target" list="restore-targets" value={target} required spellcheck={false} onInput={(e) => setTarget((e.target as HTMLInputElement).value)} />
            <datalist id="restore-targets">
              {(candidates.data?.InstanceSet ?? []).filter((i) => i.Registered).map((i) => <option value={i.InstanceId}>{i.InstanceName}</option>)}
            </datalist>
          </label>
          <label>
            <span>{t("restore.password")}</span>
            <input name="password" type="password" value={password} autocomplete="off" onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
          </label>
          <ErrorNote error={error} />
          <div class="row end">
            <button type="button" onClick={onClose}>{t("common.cancel")}</button>
            <button type="submit" class="primary" disabled={busy || !target.trim()}>{t("restore.submit")}</button>
          </div>
        </form>
      )}
      {started ? <div class="row end"><button type="button" onClick={onClose}>{t("common.close")}</button></div> : null}
    </Modal>
  );
}

function DeleteDialog({ backup, onClose, onDeleted }: { backup: BackupSet; onClose: () => void; onDeleted: () => void }) {
  const { t, call } = useApp();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await call("DeleteInstanceBackup", { InstanceId: backup.InstanceId, BackupId: backup.BackupId });
      onDeleted();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title={t("delete.title", { id: backup.BackupId })} onClose={onClose}>
      <p class="warning">{t("delete.warning")}</p>
      <ErrorNote error={error} />
      <div class="row end">
        <button type="button" onClick={onClose}>{t("common.cancel")}</button>
        <button type="button" class="danger" disabled={busy} onClick={remove}>{t("delete.submit")}</button>
      </div>
    </Modal>
  );
}
