// The slot plan of a cluster-shaped clone (src/instances/cluster.ts): which node serves which slot, from the
// slots each node holds keys for, the source's recorded ranges, or the nearest slot with keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CLUSTER_SLOTS, ownSlotsOf, planSlots, rangesOf } from "../src/instances/cluster";

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

test("recorded ranges give every empty slot its shard; the keys win over a map read a moment too early", () => {
  const recorded: Array<Array<[number, number]>> = [[[0, 5460]], [[5461, 10922]], [[10923, 16383]]];
  const owner = planSlots([[1, 100], [6000], [16000, 10923]], recorded);
  assert.deepEqual([0, 1, 2].map((s) => rangesOf(owner, s)), recorded);
  // Slot 5461 moved to shard 0 after the map was read: its keys are in shard 0, so shard 0 serves it.
  const moved = planSlots([[5461], [6000], []], recorded);
  assert.deepEqual(rangesOf(moved, 0), [[0, 5461]]);
  assert.deepEqual(rangesOf(moved, 1), [[5462, 10922]]);
});

test("without recorded ranges: each empty slot goes to the shard of the nearest slot with keys before it", () => {
  const owner = planSlots([[10, 20], [6000, 7000], [12000]], [[[0, 5460]], undefined, [[10923, 16383]]]);
  assert.deepEqual(rangesOf(owner, 0), [[0, 5999]]);
  assert.deepEqual(rangesOf(owner, 1), [[6000, 11999]]);
  assert.deepEqual(rangesOf(owner, 2), [[12000, 16383]]);
  // No keys anywhere: even ranges, as redis-cli --cluster create makes them.
  const even = planSlots([[], [], []], [undefined, undefined, undefined]);
  assert.deepEqual([0, 1, 2].map((s) => rangesOf(even, s)), [[[0, 5461]], [[5462, 10922]], [[10923, 16383]]]);
  assert.equal(even.length, CLUSTER_SLOTS);
});

test("two shards holding keys of one slot (a backup taken mid-migration) are refused with the slot named", () => {
  assert.throws(() => planSlots([range(0, 3), [3]], [undefined, undefined]), /slot 3 holds keys in shard 0 and in shard 1/);
});

test("a node's own slots from CLUSTER NODES: ranges, single slots, migration marks skipped, other nodes ignored", () => {
  const text = [
    "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected",
    "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-3 7 [8->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]",
    "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383",
  ].join("\n");
  const via = { host: "127.0.0.1", port: 30001 };
  assert.deepEqual(ownSlotsOf(text, via), [0, 1, 2, 3, 7]);
  assert.deepEqual(ownSlotsOf("abc 127.0.0.1:1@2 myself,master - 0 0 0 connected\n", via), []);
});
