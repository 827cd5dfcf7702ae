// The task queue (src/queue/) on its own: runners over the real SQLite catalogue held in memory (the engine the
// embedded server uses, so claims, leases and transactions are the real ones, not a stand-in) and a fake clock
// that every wait of the queue goes through — leases lapse, backoff runs and polls fire when the test says so.
// Job kinds here are small test kinds whose runs the test releases; the catalogue's refusals are injected at its
// transaction() (a full disk and a lost PostgreSQL are exercised for real in hardening-disk and multinode).
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Catalog, CatalogTx, CatalogUnavailableError } from "../src/catalog/catalog";
import { openCatalog } from "../src/catalog/open";
import type { Task } from "../src/catalog/types";
import { silentLogger } from "../src/log";
import { canTransition, JobContext, JobKind, JobSuccess, TaskRunner, TRANSITIONS, Undone } from "../src/queue";
import { BACKOFF, inlineFailureBudget, nextDelay } from "../src/queue/retry";
import { FakeClock, settle } from "./support/clock";
import { freshDatabase } from "./support/postgres";
import pg from "pg";

/** Polls (real time) until `ok` holds; fails with `what` after `ms`. */
async function waitUntil(ok: () => boolean | Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > until) assert.fail(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const LEASE_MS = 3_000;
const POLL_MS = 1_000;

/** A job whose runs wait until the test releases them, and which records what the queue asked of it. */
class TestKind implements JobKind {
  readonly pool = "redis" as const;
  readonly runs: Array<{ task: Task; signal: AbortSignal; release(r?: JobSuccess): void; fail(e: Error): void }> = [];
  readonly undone: Array<{ taskId: number; why: string }> = [];
  readonly failedInTx: number[] = [];
  readonly recoveredInTx: number[] = [];
  /** What undo reports (a recovery that finds the work done says succeed). */
  undoResult: Undone = {};
  undoError: Error | undefined;

  constructor(readonly taskTypes: readonly string[] = ["900"]) {}

  run(ctx: JobContext): Promise<JobSuccess> {
    return new Promise((resolve, reject) => {
      ctx.signal.addEventListener("abort", () => reject(new Error("aborted by the signal")), { once: true });
      this.runs.push({ task: ctx.task, signal: ctx.signal, release: (r = {}) => resolve(r), fail: reject });
    });
  }

  async undo(task: Task, why: "failed" | "interrupted"): Promise<Undone> {
    this.undone.push({ taskId: task.taskId, why });
    if (this.undoError) throw this.undoError;
    return this.undoResult;
  }

  async failed(tx: CatalogTx, task: Task): Promise<void> {
    this.failedInTx.push(task.taskId);
    await tx.putSetting(`failed-${task.taskId}`, "1");
  }

  async recovered(tx: CatalogTx, task: Task): Promise<void> {
    this.recoveredInTx.push(task.taskId);
    await tx.putSetting(`recovered-${task.taskId}`, "1");
  }
}

/** The catalogue, with transaction() refusing while `refusing` > 0 (counting every attempt). */
function refusable(catalog: Catalog): Catalog & { refusing: number; attempts: number[] } {
  const state = { refusing: 0, attempts: [] as number[] };
  return new Proxy(catalog, {
    get(target, prop, receiver) {
      if (prop === "refusing" || prop === "attempts") return state[prop];
      if (prop === "transaction") {
        return async (fn: (tx: CatalogTx) => Promise<unknown>) => {
          state.attempts.push(clock.now());
          if (state.refusing > 0) {
            state.refusing--;
            throw new CatalogUnavailableError("the catalogue is away (injected)");
          }
          return target.transaction(fn);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
    set(_target, prop, value) {
      if (prop === "refusing") state.refusing = value as number;
      return true;
    },
  }) as Catalog & { refusing: number; attempts: number[] };
}

let clock: FakeClock;
let catalog: Catalog;
let runners: TaskRunner[];

function runner(nodeId: string, kinds: JobKind[], over: Partial<ConstructorParameters<typeof TaskRunner>[0]> = {}): TaskRunner {
  const r = new TaskRunner({
    catalog, clock, logger: silentLogger, nodeId, leaseMs: LEASE_MS, pollMs: POLL_MS, concurrency: { redis: 1, files: 2 }, takeQueued: true, ...over,
  });
  for (const k of kinds) r.register(k);
  runners.push(r);
  return r;
}

async function enqueue(taskType = "900", fields: Partial<Task> = {}): Promise<number> {
  return catalog.insertTask({ instanceId: "crs-queue", accountId: "1", taskType, status: "preparing", progress: 0, startTime: clock.now(), message: "", ...fields });
}

async function status(taskId: number): Promise<Task> {
  const t = await catalog.task(taskId);
  assert.ok(t, `task ${taskId} exists`);
  return t;
}

/** One task queued and claimed on node serve:a; its run is kind.runs[0], waiting to be finished. */
async function runningOnA(): Promise<{ kind: TestKind; a: TaskRunner; id: number }> {
  const kind = new TestKind();
  const a = runner("serve:a", [kind]);
  const id = await enqueue();
  a.kick();
  await settle();
  return { kind, a, id };
}

/** One task running on node serve:a, over a catalogue that from now on refuses writes (refusing = 1000). */
async function runningOnRefusingCatalogue(): Promise<{ refusing: ReturnType<typeof refusable>; kind: TestKind; a: TaskRunner; id: number }> {
  const refusing = refusable(catalog);
  catalog = refusing;
  const running = await runningOnA();
  refusing.refusing = 1_000;
  return { refusing, ...running };
}

beforeEach(async () => {
  clock = new FakeClock();
  catalog = await openCatalog("sqlite::memory:");
  runners = [];
});

afterEach(async () => {
  for (const r of runners) {
    const stopping = r.stop("the test ended");
    await clock.advance(10 * LEASE_MS); // lets any backoff under way run out
    await stopping;
  }
  await catalog.close();
});

describe("the state machine", () => {
  test("the table names every transition the runner makes, and no way out of an end", () => {
    assert.ok(canTransition("new", "preparing"));
    assert.ok(canTransition("preparing", "running"));
    assert.ok(canTransition("running", "succeed"));
    assert.ok(canTransition("running", "failed"));
    assert.ok(!canTransition("preparing", "succeed"), "a task is claimed before it ends");
    for (const end of ["succeed", "failed"] as const) assert.equal(TRANSITIONS.filter((t) => t.from === end).length, 0, `${end} is final`);
  });
});

describe("claiming and running", () => {
  test("a queued task is claimed, run once, and its commit is written with its success", async () => {
    const { kind, a, id } = await runningOnA();
    assert.equal(kind.runs.length, 1);
    const running = await status(id);
    assert.equal(running.status, "running");
    assert.equal(running.owner, "serve:a");
    assert.equal(running.leaseUntil, clock.now() + LEASE_MS);
    const waited = a.waitFor(id);
    kind.runs[0]!.release({ message: "done", result: 42, commit: (tx) => tx.putSetting("committed", String(id)) });
    const r = await waited;
    assert.deepEqual([r.ok, r.ok && r.result], [true, 42]);
    const t = await status(id);
    assert.deepEqual([t.status, t.progress, t.message, t.leaseUntil], ["succeed", 100, "done", undefined]);
    assert.equal(await catalog.setting("committed"), String(id));
  });

  test("a pool runs at most its concurrency; the next task starts when one ends", async () => {
    const kind = new TestKind();
    const a = runner("serve:a", [kind]);
    const ids = [await enqueue(), await enqueue()];
    a.kick();
    await settle();
    assert.equal(kind.runs.length, 1, "concurrency 1");
    assert.equal((await status(ids[1]!)).status, "preparing");
    kind.runs[0]!.release();
    await settle();
    assert.equal(kind.runs.length, 2, "the second starts once the first ended");
    assert.equal(kind.runs[1]!.task.taskId, ids[1]);
  });

  test("two nodes on one catalogue run each task exactly once", async () => {
    const kinds = [new TestKind(), new TestKind()];
    const nodes = [runner("serve:a", [kinds[0]!], { concurrency: { redis: 5, files: 2 } }), runner("serve:b", [kinds[1]!], { concurrency: { redis: 5, files: 2 } })];
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) ids.push(await enqueue());
    for (const n of nodes) n.kick();
    await settle();
    const ran = [...kinds[0]!.runs, ...kinds[1]!.runs].map((r) => r.task.taskId).sort((x, y) => x - y);
    assert.deepEqual(ran, [...ids].sort((x, y) => x - y), "every task once, none twice");
    assert.ok(kinds[0]!.runs.length === 5 && kinds[1]!.runs.length === 1 || kinds[0]!.runs.length + kinds[1]!.runs.length === 6);
    for (const k of kinds) for (const r of k.runs) r.release();
    await settle();
    for (const id of ids) assert.equal((await status(id)).status, "succeed");
  });

  test("without a kick, the poll finds queued work after pollMs of the clock", async () => {
    const kind = new TestKind();
    const a = runner("serve:a", [kind]);
    a.start();
    await settle();
    await enqueue();
    await clock.advance(POLL_MS - 1);
    assert.equal(kind.runs.length, 0, "not before the poll");
    await clock.advance(1);
    assert.equal(kind.runs.length, 1);
  });

  test("on PostgreSQL, work another node queues wakes this one at its commit, with no poll; again after the LISTEN connection is lost", async () => {
    const db = await freshDatabase("wake");
    const sqlite = catalog;
    const here = await openCatalog(db.url);
    const there = await openCatalog(db.url); // another node's catalogue: its inserts never kick `a`
    catalog = here;
    const kind = new TestKind();
    const a = runner("serve:a", [kind], { concurrency: { redis: 5, files: 2 } });
    try {
      a.start();
      await settle();
      const queue = (): Promise<number> => there.insertTask({ instanceId: "crs-queue", accountId: "1", taskType: "900", status: "preparing", progress: 0, startTime: clock.now(), message: "", params: {} });
      // The fake clock never moves: the poll cannot be what finds it. In a transaction, it is seen at the commit.
      const first = await there.transaction((tx) => tx.insertTask({ instanceId: "crs-queue", accountId: "1", taskType: "900", status: "preparing", progress: 0, startTime: clock.now(), message: "" }));
      await waitUntil(() => kind.runs.some((r) => r.task.taskId === first), "the task queued by the other node runs here");
      assert.equal((await status(first)).owner, "serve:a");
      // The listening connection dies (a PostgreSQL restart, a proxy's idle cut): it is opened again by itself.
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        const killed = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'");
        assert.equal(killed.rowCount, 1, "one LISTEN connection");
      } finally {
        await admin.end();
      }
      const second = await queue();
      await waitUntil(() => kind.runs.some((r) => r.task.taskId === second), "a task queued while (or after) the connection was down runs too", 10_000);
      assert.equal(kind.runs.length, 2, "each once");
      for (const r of kind.runs) r.release();
      await waitUntil(async () => (await status(second)).status === "succeed", "the second succeeds");
    } finally {
      runners.splice(runners.indexOf(a), 1);
      const stopping = a.stop("the test ended");
      await clock.advance(10 * LEASE_MS);
      await stopping;
      await here.close();
      await there.close();
      await db.drop();
      catalog = sqlite;
    }
  });

  test("a node that cannot run a task type marks it failed, naming the type", async () => {
    const a = runner("cli:a", [new TestKind(["900"])], { takeQueued: false });
    const id = await enqueue("901");
    const r = await a.runHere(id);
    assert.equal(r.ok, false);
    const t = await status(id);
    assert.deepEqual([t.status, t.message], ["failed", "this node cannot run tasks of type 901"]);
  });
});

describe("failures", () => {
  test("a run that throws: undo, the kind's rollback and the task's end, in that order", async () => {
    const { kind, a, id } = await runningOnA();
    const waited = a.waitFor(id);
    kind.runs[0]!.fail(new Error("the Redis went away"));
    const r = await waited;
    assert.equal(r.ok, false);
    assert.deepEqual(kind.undone, [{ taskId: id, why: "failed" }]);
    assert.deepEqual(kind.failedInTx, [id]);
    const t = await status(id);
    assert.deepEqual([t.status, t.message], ["failed", "the Redis went away"]);
    assert.equal(await catalog.setting(`failed-${id}`), "1");
  });

  test("retry policy: a refused failure is retried with backoff for its budget, reported from memory, then written by a pass", async () => {
    const { refusing, kind, a, id } = await runningOnRefusingCatalogue();
    const failedAt = clock.now();
    kind.runs[0]!.fail(new Error("boom"));
    await clock.advance(inlineFailureBudget(LEASE_MS));
    // Attempts at 0, +100, +300, +700, +1500: the next wait (1600 ms) would pass the 2 s budget.
    const expected: number[] = [];
    for (let at = 0, d: number = BACKOFF.firstMs; at <= inlineFailureBudget(LEASE_MS); at += d, d = nextDelay(d)) expected.push(failedAt + at);
    assert.deepEqual(refusing.attempts.slice(0, expected.length), expected, "the run's own attempts");
    assert.ok(refusing.attempts.slice(expected.length).every((t) => t >= expected[expected.length - 1]!), "then only the passes retry");
    assert.equal((await status(id)).status, "running", "the catalogue does not have it");
    assert.deepEqual(a.outcomeOf(id), { status: "failed", message: "boom", endTime: failedAt }, "the API reports it from memory");
    assert.equal(a.pendingFailures().length, 1);
    refusing.refusing = 0;
    a.kick();
    await settle();
    const t = await status(id);
    assert.deepEqual([t.status, t.message, t.endTime], ["failed", "boom", failedAt], "written with the time it failed");
    assert.equal(a.outcomeOf(id), undefined);
    assert.equal(await catalog.setting(`failed-${id}`), "1", "the kind's rollback is written in the same transaction");
  });

  test("a success whose commit cannot be written within the lease is undone and reported failed", async () => {
    const { refusing, kind, a, id } = await runningOnRefusingCatalogue();
    const waited = a.waitFor(id);
    kind.runs[0]!.release({ commit: (tx) => tx.putSetting("committed", "1") });
    await clock.advance(LEASE_MS + 1);
    const r = await waited;
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.message, /refused to record it until the task's lease lapsed, so it was undone/);
    assert.deepEqual(kind.undone, [{ taskId: id, why: "interrupted" }]);
    refusing.refusing = 0;
    assert.equal(await catalog.setting("committed"), undefined, "the commit never happened");
  });
});

describe("leases and recovery", () => {
  test("a running task's lease is renewed on the clock; a lapsed one is recovered by another node as interrupted", async () => {
    const { kind, id } = await runningOnA();
    await clock.advance(3 * LEASE_MS);
    assert.ok((await status(id)).leaseUntil! > clock.now(), "renewed while it runs");
    const b = runner("serve:b", [new TestKind()]);
    assert.equal(await b.recoverLapsed(), 0, "a live lease is left alone");

    // A node that died: its task stays running under a lease nobody renews.
    const deadKind = new TestKind();
    const c = runner("serve:c", [deadKind]);
    const orphan = await catalog.insertTask({ instanceId: "crs-queue", accountId: "1", taskType: "900", status: "running", progress: 10, startTime: clock.now(), message: "", owner: "serve:dead", leaseUntil: clock.now() + LEASE_MS });
    assert.equal(await c.recoverLapsed(), 0, "not before the lease lapses");
    await clock.advance(LEASE_MS + 1);
    assert.equal(await c.recoverLapsed(), 1);
    assert.deepEqual(deadKind.undone, [{ taskId: orphan, why: "interrupted" }]);
    assert.deepEqual(deadKind.failedInTx, [orphan]);
    const t = await status(orphan);
    assert.equal(t.status, "failed");
    assert.match(t.message, /^interrupted: the node running it \(serve:dead, whose lease lapsed\) stopped/);
    kind.runs[0]!.release();
  });

  test("a recovery whose undo finds the work done records success; a failing undo is retried later", async () => {
    const kind = new TestKind();
    const r = runner("serve:r", [kind]);
    const lapsed = { status: "running" as const, owner: "serve:dead", leaseUntil: clock.now() - 1 };
    const done = await enqueue("900", lapsed);
    kind.undoResult = { outcome: "succeed", note: "it had loaded everything" };
    assert.equal(await r.recoverLapsed(), 1);
    assert.deepEqual(kind.recoveredInTx, [done]);
    assert.equal((await status(done)).status, "succeed");
    assert.match((await status(done)).message, /it had loaded everything/);

    const stuck = await enqueue("900", { ...lapsed, leaseUntil: clock.now() - 1 });
    kind.undoError = new Error("target unreachable");
    assert.equal(await r.recoverLapsed(), 0);
    assert.equal((await status(stuck)).status, "running", "left for a later pass");
    kind.undoError = undefined;
    kind.undoResult = {};
    await clock.advance(LEASE_MS + 1); // the lease the failed recovery took lapses
    assert.equal(await r.recoverLapsed(), 1);
    assert.equal((await status(stuck)).status, "failed");
  });

  test("a job whose lease was taken over is aborted at its next renewal, and its outcome is not written", async () => {
    const { kind, a, id } = await runningOnA();
    const waited = a.waitFor(id);
    // Another node takes it over (as if serve:a were known dead).
    assert.equal(await catalog.takeOver(id, "serve:a", "serve:b", clock.now() + LEASE_MS, clock.now(), "serve:a"), true);
    await clock.advance(LEASE_MS);
    assert.equal(kind.runs[0]!.signal.aborted, true);
    const r = await waited;
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.message, /the task's lease was lost/);
    const t = await status(id);
    assert.deepEqual([t.status, t.owner], ["running", "serve:b"], "the new owner's to finish");
  });

  test("stop() cancels running jobs and records them failed; waiting on another node's task polls the catalogue", async () => {
    const kind = new TestKind();
    const a = runner("serve:a", [kind]);
    const watcher = runner("cli:w", [], { takeQueued: false });
    const id = await enqueue();
    a.kick();
    await settle();
    const watched = watcher.waitFor(id);
    await a.stop("the test stops it");
    await clock.advance(200); // the watcher's next poll
    const r = await watched;
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.message, /^cancelled: the test stops it/);
    assert.equal((await status(id)).status, "failed");
  });
});

describe("work done in line (retirements)", () => {
  test("finishInline keeps the lease while the work runs and marks the task succeeded; a throw leaves it to recovery", async () => {
    const a = runner("serve:a", []);
    const now = clock.now();
    const fields = { instanceId: "crs-queue", accountId: "1", taskType: "046", progress: 0, startTime: now, message: "", ...a.claimedAtInsert(now) };
    const task = { ...fields, taskId: await catalog.insertTask(fields) };
    let finish!: () => void;
    const inline = a.finishInline(task, () => new Promise<void>((r) => (finish = r)));
    await clock.advance(2 * LEASE_MS);
    assert.ok((await status(task.taskId)).leaseUntil! > clock.now(), "renewed while the work runs");
    finish();
    await inline;
    assert.equal((await status(task.taskId)).status, "succeed");

    const t2 = { ...fields, taskId: await catalog.insertTask({ ...fields, ...a.claimedAtInsert(clock.now()) }) };
    await assert.rejects(a.finishInline(t2, async () => {
      throw new Error("the store refused");
    }), /the store refused/);
    assert.equal((await status(t2.taskId)).status, "running", "recovered once its lease lapses");
  });
});
