// Cluster discovery must not hand the instance's password to whatever address a cluster node announces.
// A fake Redis (enough RESP for AUTH, INFO and CLUSTER NODES) announces a master on another address, where
// a recorder notes every byte it receives. The cluster restore router likewise: a hostile node answering
// MOVED with a foreign address, or a slot map refreshed after a MOVED naming one, fails the restore precisely
// and that address is never connected to (issue 18).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { CaptureError, discoverShards } from "../src/redis/capture/capture";
import { restoreByCommands } from "../src/redis/restore/commands";
import { CommandRestoreError } from "../src/redis/rdb/command-summary";
import { captureToBuffer } from "./support/rdb-corpus";
import { send } from "./support/dataset";
import { RedisProcess, startRedis } from "./support/redis";
import { hostAllowed } from "../src/redis/client/topology";
import { KEY, startTestServer, TestServer, waitForTask } from "./support/server";
import { SEED } from "./fixtures";

interface FakeRedis {
  port: number;
  commands: string[][];
  close(): Promise<void>;
}

/** A Redis look-alike on 127.0.0.1: every command is recorded and answered by `answer` (raw RESP written to the socket). */
async function fakeRedis(answer: (args: string[], reply: { raw(text: string): void; bulk(text: string): void; port: number }) => void): Promise<FakeRedis> {
  const commands: string[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    let buf = Buffer.alloc(0);
    const reply = {
      raw: (text: string) => void s.write(text),
      bulk: (text: string) => void s.write(`$${Buffer.byteLength(text)}\r\n${text}\r\n`),
      get port() { return (server.address() as net.AddressInfo).port; },
    };
    s.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const parsed = parseCommand(buf);
        if (!parsed) return;
        buf = buf.subarray(parsed.used);
        commands.push(parsed.args);
        answer(parsed.args, reply);
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

/** A Redis look-alike on 127.0.0.1 that claims to be a cluster with a second master at `announce`. */
function fakeClusterNode(announce: () => { host: string; port: number }, o: { authFails?: boolean } = {}): Promise<FakeRedis> {
  return fakeRedis((args, r) => {
    const name = args[0]!.toUpperCase();
    if (name === "AUTH") r.raw(o.authFails ? "-WRONGPASS invalid username-password pair or user is disabled.\r\n" : "+OK\r\n");
    else if (name === "INFO") r.bulk("# Cluster\r\ncluster_enabled:1\r\n");
    else if (name === "CLUSTER") {
      const other = announce();
      // The foreign master serves the first slots, so a backup would go there first.
      r.bulk(`${"a".repeat(40)} ${other.host}:${other.port}@${other.port + 10000} master - 0 0 1 connected 0-8191\n`
        + `${"b".repeat(40)} 127.0.0.1:${r.port}@${r.port + 10000} myself,master - 0 0 2 connected 8192-16383\n`);
    } else r.raw("-ERR unknown command\r\n");
  });
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
      const task = await waitForTask(c, TaskId!, 20_000);
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

/**
 * A hostile restore target on 127.0.0.1: a "cluster" whose node serves every slot itself and answers every
 * write with MOVED to `redirect()`; with `foreignMapAfterFirst`, every CLUSTER NODES after the first names a
 * master at `foreign()` for half the slots (a slot map turned hostile between the first read and a refresh).
 */
function movedNode(o: { redirect: () => string; foreign: () => string; foreignMapAfterFirst?: boolean }): Promise<FakeRedis> {
  let maps = 0;
  return fakeRedis((args, r) => {
    const name = args[0]!.toUpperCase();
    const self = r.port;
    if (name === "AUTH" || name === "SELECT" || name === "ASKING") r.raw("+OK\r\n");
    else if (name === "PING") r.raw("+PONG\r\n");
    else if (name === "INFO") r.bulk("# Server\r\nredis_version:7.2.4\r\n# Replication\r\nrole:master\r\n# Persistence\r\nloading:0\r\n# Cluster\r\ncluster_enabled:1\r\n# Keyspace\r\n");
    else if (name === "CLUSTER") {
      const hostile = o.foreignMapAfterFirst && maps++ > 0;
      const [host, port] = o.foreign().split(":");
      r.bulk(hostile
        ? `${"a".repeat(40)} ${host}:${port}@1 master - 0 0 1 connected 0-8191\n${"b".repeat(40)} 127.0.0.1:${self}@1 myself,master - 0 0 2 connected 8192-16383\n`
        : `${"b".repeat(40)} 127.0.0.1:${self}@1 myself,master - 0 0 2 connected 0-16383\n`);
    } else if (name === "CONFIG") r.raw("-ERR unknown command 'CONFIG'\r\n");
    else if (name === "RESTORE" && args[1] === "crs-backup:restore-probe") r.raw("-ERR DUMP payload version or checksum are wrong\r\n");
    else r.raw(`-MOVED 866 ${o.redirect()}\r\n`);
  });
}

describe("the cluster restore router follows MOVED and refreshes its map only to allowed hosts", () => {
  let rec: Awaited<ReturnType<typeof recorder>>;
  let source: RedisProcess;
  let rdb: Buffer;
  before(async () => {
    rec = await recorder();
    source = await startRedis(["--repl-diskless-sync-delay", "0"]);
    await send(source.endpoint, [["SET", "k1", "v1"], ["RPUSH", "l1", "a", "b"]]);
    rdb = await captureToBuffer(source.endpoint);
  });
  after(async () => {
    source?.kill();
    await rec.close();
  });

  test("a MOVED to a host not allowed fails the restore, naming it; the address is never connected to", async () => {
    const node = await movedNode({ redirect: () => `127.0.0.2:${rec.port}`, foreign: () => `127.0.0.2:${rec.port}` });
    try {
      const err = await restoreByCommands(rdb, { target: { host: "127.0.0.1", port: node.port, password: "s3cret-pw" }, timeoutMs: 5000 }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CommandRestoreError, String(err));
      assert.match(err.message, new RegExp(`the MOVED 866 redirection from the cluster names 127\\.0\\.0\\.2:${rec.port}, a host not allowed \\(not the registered host 127\\.0\\.0\\.1 nor in --cluster-hosts\\)`));
      assert.equal(rec.connections(), 0, "the MOVED address was connected to");
      assert.ok(node.commands.some((a) => a[0] === "SET"), "the fake was written to (and answered MOVED)");
    } finally {
      await node.close();
    }
  });

  test("a slot map refreshed after a MOVED that names a foreign master fails the restore; nothing reaches it", async () => {
    let port = 0;
    const node = await movedNode({ redirect: () => `127.0.0.1:${port}`, foreign: () => `127.0.0.2:${rec.port}`, foreignMapAfterFirst: true });
    port = node.port;
    try {
      const err = await restoreByCommands(rdb, { target: { host: "127.0.0.1", port: node.port, password: "s3cret-pw" }, timeoutMs: 5000 }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CommandRestoreError, String(err));
      assert.match(err.message, new RegExp(`refreshing the slot map after MOVED 866 127\\.0\\.0\\.1:${node.port}: cluster master a{40} is announced at 127\\.0\\.0\\.2:${rec.port}, not on the registered host 127\\.0\\.0\\.1`));
      assert.equal(rec.connections(), 0);
      assert.ok(node.commands.filter((a) => a[0] === "CLUSTER").length >= 2, "the map was refreshed");
    } finally {
      await node.close();
    }
  });

  test("a host the operator allowed is followed (the allow-list, not a refusal of every redirection)", async () => {
    const node = await movedNode({ redirect: () => `127.0.0.2:${rec.port}`, foreign: () => `127.0.0.2:${rec.port}` });
    const before = rec.connections();
    try {
      // The recorder is no Redis: the restore then fails there, but only after connecting as allowed.
      await assert.rejects(restoreByCommands(rdb, { target: { host: "127.0.0.1", port: node.port }, timeoutMs: 5000, allowedHosts: ["127.0.0.0/8"] }), CommandRestoreError);
      assert.ok(rec.connections() > before, "the allowed MOVED address was not followed");
    } finally {
      await node.close();
    }
  });

  test("RestoreInstance into a cluster answering MOVED to a foreign host: the task fails with the address, the password stays home", async () => {
    const fresh = await recorder();
    const node = await movedNode({ redirect: () => `127.0.0.2:${fresh.port}`, foreign: () => `127.0.0.2:${fresh.port}` });
    const ids = { src: "crs-moved001", dst: "crs-moved002" };
    const srv: TestServer = await startTestServer({
      Credentials: [{ SecretId: KEY.secretId, SecretKey: KEY.secretKey, Account: KEY.account }],
      Instances: [
        { InstanceId: ids.src, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://127.0.0.1:${source.port}` },
        { InstanceId: ids.dst, Region: "ap-guangzhou", Account: KEY.account, Redis: `redis://:s3cret-pw@127.0.0.1:${node.port}` },
      ],
    }, { rateLimit: 0 });
    try {
      const c = srv.client({ language: "en-US" });
      const taken = await waitForTask(c, (await c.ManualBackupInstance({ InstanceId: ids.src })).TaskId!);
      assert.equal(taken.Status, "succeed", taken.TaskMessage);
      const { BackupSet } = await c.DescribeInstanceBackups({ InstanceId: ids.src });
      const { TaskId } = await c.RestoreInstance({ InstanceId: ids.dst, BackupId: BackupSet![0]!.BackupId!, Password: "s3cret-pw" });
      const t = await waitForTask(c, TaskId!, 30_000);
      assert.equal(t.Status, "failed");
      assert.match(t.TaskMessage!, new RegExp(`^commands: restore into 127\\.0\\.0\\.1:${node.port} failed .*: the MOVED 866 redirection from the cluster names 127\\.0\\.0\\.2:${fresh.port}, a host not allowed`));
      assert.doesNotMatch(t.TaskMessage!, /s3cret/);
      assert.equal(fresh.connections(), 0);
      assert.equal(fresh.received(), "");
    } finally {
      await srv.close();
      await node.close();
      await fresh.close();
    }
  });
});
