import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { EventFileWriter, readEventDir, type TensorBoardEvent } from "./index.ts";

// Written by TensorBoard's own Python writer parts (fixtures/make-golden.py): the same four events
// as below, so a wrong field number, wire type, length, CRC or mask in ours changes the bytes.
const GOLDEN = readFileSync(new URL("./fixtures/golden.tfevents", import.meta.url));
const GOLDEN_EVENTS: TensorBoardEvent[] = [
  { kind: "file_version", wallTime: 1764504000, step: 0, fileVersion: "brain.Event:2" },
  {
    kind: "scalars",
    wallTime: 1764504001.25,
    step: 1,
    scalars: [
      { tag: "train/reward", value: 0.25 },
      { tag: "train/loss", value: -1.5 },
      { tag: "loracast/staleness", value: 1 },
    ],
  },
  { kind: "session_log", wallTime: 1764504002.5, step: 2, status: "START", msg: "resumed" },
  {
    kind: "scalars",
    wallTime: 1764504003,
    step: 2,
    scalars: [{ tag: "train/grad_norm", value: Number.NaN }],
  },
];

const root = mkdtempSync(join(tmpdir(), "tensorboard-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(root, `d${dirs++}`);

describe("EventFileWriter", () => {
  it("writes the bytes TensorBoard's own writer writes for the same events", () => {
    const dir = freshDir();
    const w = EventFileWriter.create(dir, 1764504000);
    for (const e of GOLDEN_EVENTS.slice(1)) w.write(e);
    w.close();
    assert.match(w.path, /events\.out\.tfevents\.1764504000\.[^/]+\.\d+\.\d+$/);
    assert.deepEqual(readFileSync(w.path), GOLDEN);
  });

  it("opens a new file each time, so a resumed run never rewrites what was written", () => {
    const dir = freshDir();
    EventFileWriter.create(dir, 1764504000).close();
    EventFileWriter.create(dir, 1764504000).close();
    assert.equal(readdirSync(dir).length, 2);
  });

  it("refuses a write after close", () => {
    const w = EventFileWriter.create(freshDir(), 1764504000);
    w.close();
    assert.throws(() => w.write(GOLDEN_EVENTS[1] as TensorBoardEvent), /closed/);
  });
});

describe("readEventDir", () => {
  it("reads TensorBoard's bytes back: the version record, float32 scalars (NaN included), the session log", () => {
    const d = freshDir();
    writeFileSync(EventFileWriter.create(d, 1764503999).path, GOLDEN);
    const r = readEventDir(d);
    if (!r.ok) throw new Error(r.error.message);
    assert.deepEqual(r.value, { events: GOLDEN_EVENTS, partial: [] });
  });

  it("leaves out a cut-off last record as TensorBoard does, and names the file and record of a bad CRC", () => {
    const cut = freshDir();
    const w = EventFileWriter.create(cut, 1764503999);
    writeFileSync(w.path, GOLDEN.subarray(0, GOLDEN.length - 3));
    const partial = readEventDir(cut);
    if (!partial.ok) throw new Error(partial.error.message);
    assert.deepEqual(partial.value, { events: GOLDEN_EVENTS.slice(0, 3), partial: [w.path] });
    writeFileSync(w.path, GOLDEN.subarray(0, 5));
    assert.deepEqual(readEventDir(cut), { ok: true, value: { events: [], partial: [w.path] } });

    const flipped = Buffer.from(GOLDEN);
    flipped[60] = (flipped[60] ?? 0) ^ 1;
    writeFileSync(w.path, flipped);
    const data = readEventDir(cut);
    assert.ok(!data.ok);
    assert.equal(data.error.code, "corrupt");
    assert.equal(data.error.path, w.path);
    assert.match(data.error.message, /record at byte 40: data CRC mismatch$/);
    flipped[60] = (flipped[60] ?? 0) ^ 1;
    flipped[41] = (flipped[41] ?? 0) ^ 1;
    writeFileSync(w.path, flipped);
    const length = readEventDir(cut);
    assert.ok(!length.ok);
    assert.match(length.error.message, /record at byte 40: length CRC mismatch$/);
  });
});
