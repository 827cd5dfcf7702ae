// One instance: its registration and next window, "back up now", the backup source, the automatic-backup settings, the size and
// duration chart, and its backups (server-side paging, status and time filters) with download, restore and delete.
import { useState } from "preact/hooks";
import { useApp } from "../app";
import { Badge, ErrorNote, Link } from "../components";
import { until } from "../format";
import { useLoad, useSubmit } from "../hooks";
import type { Route } from "../router";
import { ScheduleForm } from "../schedule";
import { BackupSourceForm, sourceLabel } from "../backup-source";
import { TaskWatch } from "../taskwatch";
import type { Overview } from "../types";
import { BackupsSection } from "./backups";
import { PitrSection } from "../pitr";

export function InstancePage({ instanceId, route }: { instanceId: string; route: Route }) {
  const { t, call } = useApp();
  // Bumped whenever something changed the backups (a backup finished, one was deleted), to reload views.
  const [version, setVersion] = useState(0);
  const bump = () => setVersion((v) => v + 1);
  const overview = useLoad(() => call<Overview>("DescribeInstanceOverview", { InstanceId: instanceId }), [instanceId, version]);
  const inst = overview.data?.InstanceSet.find((i) => i.InstanceId === instanceId);

  if (overview.error) return <section class="page"><ErrorNote error={overview.error} /></section>;
  if (overview.data && !inst) {
    return (
      <section class="page" data-page="instance">
        <Link href="/instances">{t("detail.back")}</Link>
        <p class="empty">{t("detail.notFound", { id: instanceId })}</p>
      </section>
    );
  }
  // The schedule and the backups need only the id, so they load alongside the overview rather than after it:
  // a full load of this page costs one round trip, not two.
  return (
    <section class="page" data-page="instance" data-instance={instanceId}>
      <Link href="/instances" class="back">{t("detail.back")}</Link>
      {inst ? (
        <>
          <div class="page-head">
            <h1>{inst.InstanceName} <span class="sub mono">{inst.InstanceId}</span></h1>
            {inst.Registered ? <Badge kind="ok">{t("instance.state.running")}</Badge> : <Badge kind="muted" title={t("instance.state.catalogue.hint")}>{t("instance.state.catalogue")}</Badge>}
          </div>
          <dl class="facts">
            <div><dt>{t("detail.endpoint")}</dt><dd class="mono">{inst.WanIp ? `${inst.WanIp}:${inst.Port}` : t("common.none")}</dd></div>
            <div><dt>{t("detail.version")}</dt><dd>{inst.RedisVersion || t("common.none")}</dd></div>
            <div><dt>{t("detail.type")}</dt><dd>{inst.Type}</dd></div>
            <div><dt>{t("detail.shards")}</dt><dd>{inst.ShardNum}</dd></div>
            <div><dt>{t("detail.backupSource")}</dt><dd data-testid="backup-source-shown">{sourceLabel(t, inst.BackupSource)}</dd></div>
            <div><dt>{t("nav.tasks")}</dt><dd><Link href={`/tasks?instance=${encodeURIComponent(inst.InstanceId)}`}>{t("detail.tasks")}</Link></dd></div>
            <div><dt>{t("detail.nextWindow")}</dt><dd data-testid="next-window">{inst.NextWindow ? `${inst.NextWindow.StartTime} (${until(inst.NextWindow.InSeconds, t)})` : t("instance.noSchedule")}</dd></div>
          </dl>
        </>
      ) : (
        <div class="page-head"><h1><span class="sub mono">{instanceId}</span></h1><p class="muted">{t("common.loading")}</p></div>
      )}
      <div class="cards">
        <div>
          <div class="card">
            <h2>{t("backupNow.title")}</h2>
            {inst ? <BackupNow instanceId={inst.InstanceId} disabled={!inst.Registered} onStarted={bump} onDone={bump} /> : null}
          </div>
          <div class="card">
            <h2>{t("source.title")}</h2>
            {inst ? <BackupSourceForm instanceId={inst.InstanceId} current={inst.BackupSource} registered={inst.Registered} onSaved={bump} /> : <p class="muted">{t("common.loading")}</p>}
          </div>
        </div>
        <div class="card">
          <h2>{t("schedule.title")}</h2>
          <ScheduleForm instanceId={instanceId} onSaved={bump} />
        </div>
      </div>
      {inst?.Registered ? <PitrSection instanceId={instanceId} /> : null}
      <BackupsSection instanceId={instanceId} route={route} version={version} onChanged={bump} />
    </section>
  );
}

function BackupNow({ instanceId, disabled, onStarted, onDone }: { instanceId: string; disabled: boolean; onStarted: () => void; onDone: () => void }) {
  const { t, call } = useApp();
  const [remark, setRemark] = useState("");
  const [taskId, setTaskId] = useState<number | null>(null);
  const { busy, error, submit: start } = useSubmit(async () => {
    const r = await call<{ TaskId: number }>("ManualBackupInstance", { InstanceId: instanceId, ...(remark ? { Remark: remark } : {}) });
    setTaskId(r.TaskId);
    setRemark("");
    onStarted();
  });
  return (
    <form class="backup-now" onSubmit={start}>
      <label>
        <span>{t("backupNow.remark")}</span>
        <input name="remark" maxLength={256} value={remark} onInput={(e) => setRemark((e.target as HTMLInputElement).value)} disabled={disabled} />
      </label>
      <button type="submit" class="primary" disabled={disabled || busy} data-testid="backup-now">{t("backupNow.submit")}</button>
      {disabled ? <p class="sub">{t("instance.state.catalogue.hint")}</p> : null}
      <ErrorNote error={error} />
      {taskId !== null ? <TaskWatch key={taskId} taskId={taskId} instanceId={instanceId} onDone={onDone} /> : null}
    </form>
  );
}
