// The instances page: one page of the region's instances at a time (server-side paging and search), each with
// its state, last backup and its age, the next scheduled window and a sparkline of recent backup sizes.
import { useEffect, useState } from "preact/hooks";
import { useApp } from "../app";
import { Badge, GridHead, Link, Paged, Sparkline, StatusBadge } from "../components";
import { age, bytes, until } from "../format";
import { useInterval, useLoad } from "../hooks";
import { navigate, Route, withQuery } from "../router";
import type { Overview, OverviewInstance } from "../types";

const LIMIT = 20;

export function InstancesPage({ route }: { route: Route }) {
  const { t, call } = useApp();
  const q = route.query.get("q") ?? "";
  const page = Math.max(1, Number(route.query.get("page")) || 1);
  const [search, setSearch] = useState(q);
  useEffect(() => setSearch(q), [q]);
  const list = useLoad(() => call<Overview>("DescribeInstanceOverview", { Limit: LIMIT, Offset: (page - 1) * LIMIT, ...(q ? { SearchKey: q } : {}) }), [q, page]);
  const busy = list.data?.InstanceSet.some((i) => i.LastBackup?.Status === 1 || i.LastBackup?.Status === 3) ?? false;
  useInterval(list.reload, busy ? 2000 : 30_000);

  return (
    <section class="page" data-page="instances" data-ready={list.data && !list.loading ? "1" : "0"}>
      <div class="page-head">
        <h1>{t("instances.title")}</h1>
        <form class="search" role="search" onSubmit={(e) => {
          e.preventDefault();
          navigate(withQuery(route, { q: search.trim(), page: undefined }));
        }}>
          <input type="search" name="q" value={search} placeholder={t("instances.search")} aria-label={t("instances.search")}
            onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
          <button type="submit">{t("common.search")}</button>
        </form>
      </div>
      <Paged list={list} items={(d) => d.InstanceSet} empty={t("instances.empty")} route={route} page={page} limit={LIMIT}>
        {(d) => (
          <table class="grid instances">
            <GridHead prefix="instances.col" cols={["instance", "status", "version", "lastBackup", "nextWindow", "backups", "trend"]} num={["backups"]} />
            <tbody>
              {d.InstanceSet.map((i) => <InstanceRow key={i.InstanceId} i={i} />)}
            </tbody>
          </table>
        )}
      </Paged>
    </section>
  );
}

function InstanceRow({ i }: { i: OverviewInstance }) {
  const { t } = useApp();
  const last = i.LastBackup;
  return (
    <tr data-instance={i.InstanceId}>
      <td>
        <Link href={`/instances/${encodeURIComponent(i.InstanceId)}`} class="strong">{i.InstanceName}</Link>
        <div class="sub mono"><Link href={`/instances/${encodeURIComponent(i.InstanceId)}`} class="instance-id">{i.InstanceId}</Link></div>
      </td>
      <td>
        {i.Registered
          ? <Badge kind="ok">{t("instance.state.running")}</Badge>
          : <Badge kind="muted" title={t("instance.state.catalogue.hint")}>{t("instance.state.catalogue")}</Badge>}
      </td>
      <td>{i.RedisVersion || t("common.none")}</td>
      <td>
        {i.BackupCount === null ? <span class="muted">{t("instance.hidden")}</span>
          : last ? (
            <>
              <span title={last.StartTime}>{age(last.AgeSeconds, t)}</span> <StatusBadge status={last.Status} />
              <div class="sub">{last.Status === 1 ? "" : bytes(last.BackupSize)}</div>
            </>
          ) : <span class="muted">{t("instance.noBackups")}</span>}
      </td>
      <td>
        {i.NextWindow
          ? <><span>{until(i.NextWindow.InSeconds, t)}</span><div class="sub">{i.NextWindow.StartTime}</div></>
          : <span class="muted">{i.AutoBackup === null ? t("instance.hidden") : t("instance.noSchedule")}</span>}
      </td>
      <td class="num">{i.BackupCount ?? "—"}</td>
      <td>
        <Sparkline points={(i.Trend ?? []).map((b) => ({ value: b.BackupSize, label: `${b.StartTime} · ${bytes(b.BackupSize)}` }))} />
      </td>
    </tr>
  );
}
