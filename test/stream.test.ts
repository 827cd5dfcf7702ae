// The stream's pieces on their own: the command-boundary parser (fed byte by byte, a MULTI/EXEC never split,
// SELECT tracked, keep-alives as empty units), the segment format, the time cut and the missing ranges.
import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeCommand } from "../src/redis/client/resp";
import { CommandStreamParser, splitCommands, StreamUnit } from "../src/redis/stream/parser";
import { decodeSegment, segmentPieces } from "../src/redis/stream/segments";
import { missingRanges, sampleBounds, unitsBefore } from "../src/redis/stream/timeline";

const cmds = [["SELECT", "0"], ["SET", "a", "1"], ["PING"], ["MULTI"], ["SET", "b", "2"], ["INCR", "n"], ["EXEC"], ["SELECT", "3"], ["DEL", "a"], ["REPLCONF", "GETACK", "*"]];
const bytes = Buffer.concat(cmds.map((c) => encodeCommand(c)));

function feed(p: CommandStreamParser, chunks: Buffer[]): StreamUnit[] {
  return chunks.flatMap((c) => p.push(c));
}

test("units are the same whatever the chunking; offsets add up; MULTI/EXEC is one unit; SELECT sets the db", () => {
  const whole = feed(new CommandStreamParser(1000, 0), [bytes]);
  const bytewise = feed(new CommandStreamParser(1000, 0), [...bytes].map((b) => Buffer.from([b])));
  assert.deepEqual(bytewise, whole);
  assert.equal(whole.length, 7);
  assert.equal(whole[0]!.start, 1000);
  assert.equal(whole[whole.length - 1]!.end, 1000 + bytes.length);
  for (let i = 1; i < whole.length; i++) assert.equal(whole[i]!.start, whole[i - 1]!.end);
  const tx = whole[3]!;
  assert.equal(tx.commands, 4);
  assert.deepEqual(splitCommands(tx.raw).map((c) => c.toString()), cmds.slice(3, 7).map((c) => encodeCommand(c).toString()));
  assert.equal(whole[2]!.raw.length, 0, "PING advances the offset but stores nothing");
  assert.equal(whole[6]!.raw.length, 0, "REPLCONF GETACK too");
  assert.equal(whole[5]!.db, 3, "DEL runs in db 3");
  assert.equal(whole[4]!.dbAfter, 3);
});

test("a transaction cut by the chunking waits whole; received counts its bytes", () => {
  const p = new CommandStreamParser(0, 0);
  const cut = bytes.indexOf(encodeCommand(["INCR", "n"]));
  const first = p.push(bytes.subarray(0, cut));
  assert.equal(first.length, 3, "SELECT, SET, PING; the MULTI is held back");
  assert.equal(p.offset, first[2]!.end);
  assert.equal(p.received, cut);
  assert.equal(p.push(bytes.subarray(cut)).length, 4);
});

test("keys moving between masters are marked: RESTORE-ASKING, CLUSTER SYNCSLOTS (Valkey 9, Redis 8.4+), TRIMSLOTS; in a transaction too; other CLUSTER commands are not", () => {
  const cmds = [
    ["SET", "a", "1"],
    ["RESTORE-ASKING", "k", "0", "x"],
    ["CLUSTER", "SYNCSLOTS", "ESTABLISH", "SOURCE", "abc", "NAME", "job", "SLOTSRANGE", "1", "1"],
    ["cluster", "syncslots", "CONF", "ASM-TASK", "t:a:b:import:connecting:1-1"],
    ["TRIMSLOTS", "RANGES", "1", "1", "1"],
    ["CLUSTER", "SETSLOT", "1", "STABLE"],
    ["UNLINK", "k"],
    ["MULTI"], ["SET", "b", "2"], ["CLUSTER", "SYNCSLOTS", "FINISH", "STATE", "SUCCESS"], ["EXEC"],
    ["MULTI"], ["SET", "c", "3"], ["EXEC"],
  ];
  const units = feed(new CommandStreamParser(0, 0), [Buffer.concat(cmds.map((c) => encodeCommand(c)))]);
  assert.deepEqual(units.map((u) => u.keyMove === true), [false, true, true, true, true, false, false, true, false]);
});

test("a malformed stream is refused, not misread", () => {
  assert.throws(() => new CommandStreamParser(0, 0).push(Buffer.from("+OK\r\n")), /command boundary/);
});

test("segment records round-trip", () => {
  const units = feed(new CommandStreamParser(5, 2), [bytes]).filter((u) => u.raw.length);
  const blob = Buffer.concat([...segmentPieces(units.map((unit, i) => ({ unit, arrival: 100 + i })))]);
  const back = decodeSegment(blob);
  assert.deepEqual(back.map((u) => [u.end, u.arrival, u.db, u.commands, u.raw.toString()]), units.map((u, i) => [u.end, 100 + i, u.db, u.commands, u.raw.toString()]));
  assert.throws(() => decodeSegment(blob.subarray(0, blob.length - 3)), /truncated/);
  assert.deepEqual(decodeSegment(Buffer.concat([...segmentPieces([])])), []);
});

test("a segment larger than a piece is written in pieces that join into the same bytes", () => {
  const value = "v".repeat(50_000);
  const cmd = Buffer.from(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${value.length}\r\n${value}\r\n`);
  const units = feed(new CommandStreamParser(0, 0), [Buffer.concat(Array.from({ length: 60 }, () => cmd))]);
  const pieces = [...segmentPieces(units.map((unit) => ({ unit, arrival: 7 })))];
  assert.ok(pieces.length >= 2, `3 MB of units in ${pieces.length} piece(s)`);
  const back = decodeSegment(Buffer.concat(pieces));
  assert.equal(back.length, 60);
  assert.deepEqual(back.map((u) => u.end), units.map((u) => u.end));
  assert.ok(back.every((u) => u.raw.equals(cmd) && u.arrival === 7));
});

test("the cut: sure below the last sample before, never above the first after, arrival in between, a prefix", () => {
  const samples: Array<[number, number]> = [[10, 1000], [20, 1900], [30, 2100]];
  const b = sampleBounds(samples, 2000);
  assert.deepEqual(b, { sure: 20, never: 30 });
  const units = [{ end: 5, arrival: 5000 }, { end: 20, arrival: 5000 }, { end: 25, arrival: 1990 }, { end: 28, arrival: 2005 }, { end: 29, arrival: 1995 }, { end: 31, arrival: 1000 }];
  assert.equal(unitsBefore(units, b, 2000), 3, "late arrivals below `sure` count; the first unit out ends the cut");
});

test("missing ranges: the holes between covered ranges, in whole seconds", () => {
  const ranges = [{ fromMs: 10_000, toMs: 20_000 }, { fromMs: 20_400, toMs: 30_000 }, { fromMs: 45_000, toMs: 50_000 }];
  assert.deepEqual(missingRanges(ranges, 10_000, 50_500), [{ start: 30, end: 44 }]);
  assert.deepEqual(missingRanges(ranges, 10_000, 60_000), [{ start: 30, end: 44 }, { start: 50, end: 59 }]);
});
