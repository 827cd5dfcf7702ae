// The queue's time: every timestamp (leases, end times, durations, throttles) and every wait (backoff, polls,
// lease renewals) goes through the process Clock, so a test that advances a fake clock drives the whole queue.
import type { Clock } from "../config";

export interface QueueClock {
  now(): number;
  /** Waits `ms` (keeps the process alive meanwhile: an outcome being written must not be cut short). */
  sleep(ms: number): Promise<void>;
  /** Calls `fn` every `ms` in the background (never keeps the process alive) until stopped. */
  every(ms: number, fn: () => void): { stop(): void };
}

/** The queue's view of a Clock: its own waits when it has them (a test's clock), real timers otherwise. */
export function queueClock(clock: Clock): QueueClock {
  const own = clock.sleep?.bind(clock);
  if (!own) {
    return {
      now: () => clock.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      every: (ms, fn) => {
        const timer = setInterval(fn, ms);
        timer.unref();
        return { stop: () => clearInterval(timer) };
      },
    };
  }
  return {
    now: () => clock.now(),
    sleep: own,
    every: (ms, fn) => {
      let on = true;
      void (async () => {
        while (on) {
          await own(ms);
          if (on) fn();
        }
      })();
      return { stop: () => void (on = false) };
    },
  };
}
