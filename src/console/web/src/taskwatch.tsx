// Live progress of one task (a backup or a restore just started): polls DescribeTaskList until the task ends,
// then reports the result; a failed task's message comes from DescribeTaskInfo.
import { useEffect, useRef, useState } from "preact/hooks";
import { useApp } from "./app";
import { ResultBadge } from "./components";
import type { TaskPage } from "./types";

export function TaskWatch({ taskId, instanceId, onDone }: { taskId: number; instanceId: string; onDone?: (result: number) => void }) {
  const { t, call } = useApp();
  const [state, setState] = useState<{ result: number; progress: number; message?: string }>({ result: 0, progress: 0 });
  const doneRef = useRef(onDone);
  doneRef.current = onDone;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const page = await call<TaskPage>("DescribeTaskList", { InstanceId: instanceId, Limit: 50 });
        const task = page.Tasks.find((x) => x.TaskId === taskId);
        if (task && !stopped) {
          let message: string | undefined;
          if (task.Result === 4) message = (await call<{ TaskMessage: string }>("DescribeTaskInfo", { TaskId: taskId })).TaskMessage;
          setState({ result: task.Result, progress: task.Progress, message });
          if (task.Result === 2 || task.Result === 4) {
            doneRef.current?.(task.Result);
            return;
          }
        }
      } catch {
        // Shown again on the next poll; a session that ended sends the app to the login page.
      }
      if (!stopped) timer = setTimeout(poll, 500);
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [taskId, instanceId]);
  return (
    <div class="taskwatch" data-task={taskId} data-result={state.result}>
      <ResultBadge result={state.result} />
      <progress max={100} value={state.progress} />
      <span>{t("task.progress", { id: taskId, state: t(`result.${state.result}` as "result.0"), progress: state.progress })}</span>
      {state.result === 4 ? <p class="error">{t("task.failedWith", { id: taskId, message: state.message ?? "" })}</p> : null}
    </div>
  );
}
