// Tasks (DescribeTaskList): newest first, paged on the server, polled every second while any shown task is
// waiting or running so progress moves live. A failed task's message is one click away (DescribeTaskInfo).
import { useState } from "preact/hooks";
import { useApp } from "../app";
import { ErrorNote, GridHead, Link, Paged, ResultBadge } from "../components";
import { has } from "../i18n";
import { useInterval, useLoad } from "../hooks";
import { navigate, Route, withQuery } from "../router";
import type { TaskPage, TaskRow } from "../types";

const LIMIT = 20;

export function TasksPage({ route }: { route: Route }) {
  const { t, call } = useApp();
  const page = Math.max(1, Number(route.query.get("page")) || 1);
  const instance = route.query.get("instance") ?? "";
  const list = useLoad(() => call<TaskPage>("DescribeTaskList", { Limit: LIMIT, Offset: (page - 1) * LIMIT, ...(instance ? { InstanceId: instance } : {}) }), [page, instance]);
  const live = list.data?.Tasks.some((x) => x.Result === 0 || x.Result === 1) ?? false;
  useInterval(list.reload, live ? 1000 : 15_000);
  return (
    <section class="page" data-page="tasks" data-ready={list.data && !list.loading ? "1" : "0"}>
      <div class="page-head">
        <h1>{t("tasks.title")}</h1>
        {live ? <span class="live" role="status">{t("tasks.live")}</span> : null}
        {instance ? (
          <span class="filter-chip">
            {t("tasks.filter.instance", { id: instance })}{" "}
            <button type="button" class="small ghost" onClick={() => navigate(withQuery(route, { instance: undefined, page: undefined }))}>{t("tasks.filter.all")}</button>
          </span>
        ) : null}
      </div>
      <Paged list={list} items={(d) => d.Tasks} empty={t("tasks.empty")} route={route} page={page} limit={LIMIT}>
        {(d) => (
          <table class="grid tasks">
            <GridHead prefix="tasks.col" cols={["id", "type", "instance", "start", "end", "progress", "result"]} />
            <tbody>{d.Tasks.map((task) => <TaskLine key={task.TaskId} task={task} />)}</tbody>
          </table>
        )}
      </Paged>
    </section>
  );
}

function TaskLine({ task }: { task: TaskRow }) {
  const { t, call } = useApp();
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const typeKey = `taskType.${task.TaskType}`;
  return (
    <tr data-task={task.TaskId} data-result={task.Result}>
      <td class="num">{task.TaskId}</td>
      <td>{has(typeKey) ? t(typeKey) : task.TaskType}</td>
      <td>
        <Link href={`/instances/${encodeURIComponent(task.InstanceId)}`}>{task.InstanceName}</Link>
        <div class="sub mono">{task.InstanceId}</div>
      </td>
      <td class="nowrap">{task.StartTime}</td>
      <td class="nowrap">{task.EndTime || "—"}</td>
      <td><progress max={100} value={task.Progress} /> <span class="small">{task.Progress}%</span></td>
      <td>
        <ResultBadge result={task.Result} />
        {task.Result === 4 && message === null ? (
          <button type="button" class="small ghost" onClick={() => call<{ TaskMessage: string }>("DescribeTaskInfo", { TaskId: task.TaskId }).then((r) => setMessage(r.TaskMessage), setError)}>{t("common.details")}</button>
        ) : null}
        {message !== null ? <div class="sub error-text">{message}</div> : null}
        <ErrorNote error={error} />
      </td>
    </tr>
  );
}
