// A clock the test moves: now() stands still until advance(), and sleep() resolves when the clock passes its
// due time — so everything that waits through the Clock (the task queue's backoff, polls and lease renewals)
// runs on the test's time, not the wall's.
import type { Clock } from "../../src/config";

interface Sleeper {
  due: number;
  seq: number;
  wake: () => void;
}

/** Lets the promise chains woken so far run to their next wait (the SQLite catalogue answers synchronously). */
export async function settle(turns = 30): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

export class FakeClock implements Clock {
  private sleepers: Sleeper[] = [];
  private seq = 0;

  constructor(public t = Date.UTC(2024, 5, 3, 0, 0, 0)) {}

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((wake) => this.sleepers.push({ due: this.t + Math.max(0, ms), seq: this.seq++, wake }));
  }

  /** Moves time forward by `ms`, waking each sleeper at its due time in order and letting it run before the next. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      this.sleepers.sort((a, b) => a.due - b.due || a.seq - b.seq);
      const next = this.sleepers[0];
      if (!next || next.due > end) break;
      this.sleepers.shift();
      this.t = Math.max(this.t, next.due);
      next.wake();
    }
    this.t = end;
    await settle();
  }

  /** Sleeps not yet due. */
  get waiting(): number {
    return this.sleepers.length;
  }
}
