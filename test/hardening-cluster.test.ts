// Cluster discovery must not hand the instance's password to whatever address a cluster node announces.
// A fake Redis (enough RESP for AUTH, INFO and CLUSTER NODES) announces a master on another address, where
// a recorder notes every byte it receives.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { CaptureError, discoverShards, hostAllowed } from "../src/redis/capture/capture";
import { KEY, startTestServer, TestServer } from "./support/server";
import { waitFor } from "./support/redis";
import { SEED } from "./fixtures";

interface FakeRedis {
  port: number;
  commands: string[][];
  close(): Promise<void>;
}

/** A Redis look-alike on 127.0.0.1 that claims to be a cluster with a second master at `announce`. */
async function fakeClusterNode(announce: () => { host: string; port: number }, o: { authFails?: boolean } = {}): Promise<FakeRedis> {
  const commands: string[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    let buf = Buffer.alloc(0);
    s.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const parsed = parseCommand(buf);
        if (!parsed) return;
        buf = buf.subarray(parsed.used);
        const args = parsed.args;
        commands.push(args);
        const name = args[0]!.toUpperCase();
        const bulk = (text: string) => s.write(`$${Buffer.byteLength(text)}\r\n${text}\r\n`);
        if (name === "AUTH") s.write(o.authFails ? "-WRONGPASS invalid username-password pair or user is disabled.\r\n" : "+OK\r\n");
        else if (name === "INFO") bulk("# Cluster\r\ncluster_enabled:1\r\n");
        else if (name === "CLUSTER") {
          const other = announce();
          const self = server.address() as net.AddressInfo;
          // The foreign master serves the first slots, so a backup would go there first.
          bulk(`${"a".repeat(40)} ${other.host}:${other.port}@${other.port + 10000} master - 0 0 1 connected 0-8191\n`
            + `${"b".repeat(40)} 127.0.0.1:${self.port}@${self.port + 10000} myself,master - 0 0 2 connected 8192-16383\n`);
        } else s.write("-ERR unknown command\r\n");
      }
    });
    s.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    commands,
    close: () => new Promise<void>((resolve) => {
      sockets.forEach((s) => s.destroy());
      server.close(() => resolve());
    }),
  };
}

function parseCommand(buf: Buffer): { args: string[]; used: number } | undefined {
  const text = buf.toString("latin1");
  const head = /^\*(\d+)\r\n/.exec(text);
  if (!head) return undefined;
  let at = head[0].length;
  const args: string[] = [];
  for (let i = 0; i < Number(head[1]); i++) {
    const m = /^\$(\d+)\r\n/.exec(text.slice(at));
    if (!m) return undefined;
    at += m[0].length;
    const len = Number(m[1]);
    if (text.length < at + len + 2) return undefined;
    args.push(text.slice(at, at + len));
    at += len + 2;
  }
  return { args, used: at };
}

/** Listens on 127.0.0.2 and records everything it is sent. */
async function recorder(): Promise<{ port: number; received: () => string; connections: () => number; close(): Promise<void> }> {
  let data = "";
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on("data", (c: Buffer) => {
      data += c.toString("latin1");
      s.end("-ERR not a real node\r\n");
    });
    s.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.2", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => data,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => {
      sockets.forEach((s) => s.destroy());
      server.close(() => resolve());
    }),
  };
}

describe("cluster discovery and the instance's password", () => {
  let rec: Awaited<ReturnType<typeof recorder>>;
  let fake: FakeRedis;
  before(async () => {
    rec = await recorder();
    fake = await fakeClusterNode(() => ({ host: "127.0.0.2", port: rec.port }));
  });
  after(async () => {
    await fake.close();
    await rec.close();
  });

  test("a backup of an instance whose cluster announces a master elsewhere fails, and nothing reaches that address", async () => {
    // Its own pair, so what it records is this backup's doing only.
    const rec = await recorder();
    const fake = await fakeClusterNode(() => ({ host: "127.0.0.2", port: rec.port }));
    const id = "crs-fake0001";
    const seed = { ...SEED, Instances: [...SEED.Instances, { InstanceId: id, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:s3cret-pw@127.0.0.1:${fake.port}` }] };
    const srv: TestServer = await startTestServer(seed, { rateLimit: 0 });
    try {
      const c = srv.client();
      const { TaskId } = await c.ManualBackupInstance({ InstanceId: id });
      const task = await waitFor("the backup task to end", async () => {
        const t = await c.DescribeTaskInfo({ TaskId: TaskId! });
        return t.Status === "preparing" || t.Status === "running" ? undefined : t;
      }, 20_000, 50);
      // The registered node was asked (and authenticated with), the announced one never contacted.
      assert.ok(fake.commands.some((a) => a[0] === "AUTH" && a[1] === "s3cret-pw"));
      assert.equal(rec.received(), "", "the announced address was sent the password");
      assert.equal(rec.connections(), 0);
      assert.equal(task.Status, "failed");
      assert.match(task.TaskMessage!, new RegExp(`announced at 127\\.0\\.0\\.2:${rec.port}, not on the registered host 127\\.0\\.0\\.1`));
      assert.doesNotMatch(task.TaskMessage!, /s3cret/);
    } finally {
      await srv.close();
      await fake.close();
      await rec.close();
    }
  });

  test("other hosts are followed only when the operator allows them (address, CIDR or *)", async () => {
    const ep = { host: "127.0.0.1", port: fake.port, password: "pw" };
    await assert.rejects(discoverShards(ep, 2000), (e: unknown) => e instanceof CaptureError && e.code === "NODE_NOT_ALLOWED");
    await assert.rejects(discoverShards(ep, 2000, { allowedHosts: ["10.0.0.0/8", "127.0.0.3", "redis.example"] }), /not on the registered host/);
    for (const allowed of [["127.0.0.2"], ["127.0.0.0/8"], ["*"]]) {
      const topo = await discoverShards(ep, 2000, { allowedHosts: allowed });
      assert.deepEqual(topo.masters.map((m) => `${m.host}:${m.port}`), [`127.0.0.2:${rec.port}`, `127.0.0.1:${fake.port}`]);
      assert.ok(topo.masters.every((m) => m.password === "pw"));
    }
    // Discovery itself only talks to the registered node.
    assert.equal(rec.connections(), 0);
  });

  test("after a failed AUTH nothing is followed, whatever the node then says", async () => {
    const liar = await fakeClusterNode(() => ({ host: "127.0.0.2", port: rec.port }), { authFails: true });
    try {
      const err = await discoverShards({ host: "127.0.0.1", port: liar.port, password: "wrong" }, 2000, { allowedHosts: ["*"] }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CaptureError && err.code === "AUTH", String(err));
      assert.deepEqual(liar.commands.map((a) => a[0]), ["AUTH"]);
      assert.equal(rec.connections(), 0);
    } finally {
      await liar.close();
    }
  });

  test("hostAllowed: the registered host in any case, exact names and addresses, CIDR ranges of the same family", () => {
    assert.equal(hostAllowed("LOCALHOST", "localhost"), true);
    assert.equal(hostAllowed("10.0.0.2", "10.0.0.1"), false);
    assert.equal(hostAllowed("10.0.0.2", "10.0.0.1", ["10.0.0.0/24"]), true);
    assert.equal(hostAllowed("10.0.1.2", "10.0.0.1", ["10.0.0.0/24"]), false);
    assert.equal(hostAllowed("fd00::5", "fd00::1", ["fd00::/8"]), true);
    assert.equal(hostAllowed("fd00::5", "fd00::1", ["10.0.0.0/8"]), false);
    assert.equal(hostAllowed("node-2.redis", "node-1.redis", ["Node-2.Redis"]), true);
    assert.equal(hostAllowed("node-3.redis", "node-1.redis", ["node-2.redis", "10.0.0.0/bad"]), false);
    assert.equal(hostAllowed("anything", "node-1.redis", ["*"]), true);
  });
});
