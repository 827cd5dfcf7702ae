// Waiting for a task's end, wherever it runs: in-process runs settle their waiters at once; a task another node
// runs is polled in the catalogue.
import type { Catalog } from "../catalog/catalog";
import type { Task } from "../catalog/types";
import type { QueueClock } from "./clock";
import type { TaskResult } from "./types";

export class Waiters {
  private readonly waiting = new Map<number, Array<(r: TaskResult) => void>>();

  constructor(private readonly catalog: Catalog, private readonly clock: QueueClock) {}

  /** Resolves when the catalogue shows the task ended (or settle() is called for it first). */
  wait(taskId: number, pollMs = 200): Promise<TaskResult> {
    return new Promise<TaskResult>((resolve) => {
      const list = this.waiting.get(taskId) ?? [];
      list.push(resolve);
      this.waiting.set(taskId, list);
      if (list.length > 1) return; // already polled
      void this.poll(taskId, pollMs);
    });
  }

  private async poll(taskId: number, pollMs: number): Promise<void> {
    while (this.waiting.has(taskId)) {
      try {
        const t = await this.catalog.task(taskId);
        if (!t) return this.settle(taskId, { ok: false, task: { taskId } as Task, message: `task ${taskId} no longer exists` });
        if (t.status === "succeed") return this.settle(taskId, { ok: true, task: t });
        if (t.status === "failed") return this.settle(taskId, { ok: false, task: t, message: t.message });
      } catch {
        // The catalogue is briefly unreachable: keep waiting.
      }
      await this.clock.sleep(pollMs);
    }
  }

  settle(taskId: number, r: TaskResult): void {
    const list = this.waiting.get(taskId);
    this.waiting.delete(taskId);
    for (const w of list ?? []) w(r);
  }

  /** Ends every wait (the runner stops). */
  settleAll(message: string): void {
    for (const id of [...this.waiting.keys()]) this.settle(id, { ok: false, task: { taskId: id } as Task, message });
  }
}
