import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { buildArtifacts, type DecoderAttention } from "../model-builder/index.ts";
import { createRng } from "../random/index.ts";
import { toGqaStep } from "./gqa-step.ts";
import { baseFeeds, DecoderSession, Engine, GREEDY, type StepInput } from "./index.ts";

const ids = (xs: readonly number[]) => BigInt64Array.from(xs.map(BigInt));

/** A left-padded prefill of `rows` as the engine makes it, logits at every position. */
function prefill(rows: number[][]): StepInput {
  const seq = Math.max(...rows.map((r) => r.length));
  const cells = (f: (r: number[], j: number, pad: number) => number) =>
    ids(rows.flatMap((r) => Array.from({ length: seq }, (_, j) => f(r, j, seq - r.length))));
  return {
    batch: rows.length,
    seq,
    inputIds: cells((r, j, pad) => (j < pad ? 0 : (r[j - pad] ?? 0))),
    attentionMask: cells((_, j, pad) => (j < pad ? 0 : 1)),
    positionIds: cells((_, j, pad) => Math.max(0, j - pad)),
    logitsPositions: cells((_, j) => j),
    logitsCount: seq,
    past: null,
  };
}

describe("toGqaStep", () => {
  it("moves each left-padded row's tokens, and the logits positions with them, to column 0", () => {
    const step = toGqaStep(prefill([[11, 12, 13], [21]]), 0);
    assert.deepEqual([...step.inputIds], [11n, 12n, 13n, 21n, 0n, 0n]);
    assert.deepEqual([...step.logitsPositions], [0n, 1n, 2n, 1n, 2n, 0n]);
    assert.deepEqual([...step.seqlensK], [2, 0]);
    assert.deepEqual([step.total, step.pastRows], [3, [0, 0]]);
  });

  it("decodes one token per row after each row's own keys", () => {
    const step = toGqaStep(
      {
        batch: 2,
        seq: 1,
        inputIds: ids([7, 8]),
        attentionMask: ids([1, 1, 1, 1, 0, 0, 1, 1]),
        positionIds: ids([3, 1]),
        logitsPositions: ids([0, 0]),
        logitsCount: 1,
        past: null,
      },
      3,
    );
    assert.deepEqual([...step.seqlensK], [3, 1]);
    assert.deepEqual([step.total, step.pastRows], [4, [3, 1]]);
    assert.deepEqual([...step.inputIds], [7n, 8n]);
  });

  it("refuses what GroupQueryAttention would compute differently, naming the row", () => {
    const decode = (mask: number[], positions: number[], seq = 1, batch = 2): StepInput => ({
      batch,
      seq,
      inputIds: new BigInt64Array(batch * seq),
      attentionMask: ids(mask),
      positionIds: ids(positions),
      logitsPositions: new BigInt64Array(batch),
      logitsCount: 1,
      past: null,
    });
    // A hole in a mask (not left padding).
    assert.throws(() => toGqaStep(decode([1, 0, 1, 1, 1, 1], [1, 2]), 2), /row 0: .*zeros then ones/);
    // A row with no token at all.
    assert.throws(() => toGqaStep(decode([1, 1, 1, 0, 0, 0], [2, 0]), 2), /row 1: .*zeros then ones/);
    // A position other than the count of the row's tokens before it.
    assert.throws(() => toGqaStep(decode([1, 1, 1, 0, 1, 1], [2, 5]), 2), /row 1: position 5 .* puts 1/);
    // Several new tokens over a past, batched: ORT's kernel refuses it.
    assert.throws(() => toGqaStep(decode(Array(8).fill(1), [2, 3, 2, 3], 2), 2), /one row only/);
    // One row may: its tokens go after its keys.
    const one = toGqaStep(decode([1, 1, 1, 1], [2, 3], 2, 1), 2);
    assert.deepEqual([one.pastRows, [...one.seqlensK]], [[2], [3]]);
  });
});

/**
 * qwen2-tiny (head size 16) with a sliding window of 4 on layers 1 and 2, built with both
 * attentions: GQA's `local_window_size` must keep exactly the keys the ops graph's window mask keeps.
 */
describe("GroupQueryAttention against the ops decoder on qwen2-tiny with a sliding window", () => {
  const work = mkdtempSync(join(tmpdir(), "loracast-gqa-window-"));
  const sessions = new Map<DecoderAttention, DecoderSession>();
  const prompts = [
    [5, 9, 200, 17, 3, 44, 8, 90, 31],
    [7, 7],
    [100, 3, 250, 12, 61, 4],
  ];

  before(async () => {
    const checkpoint = join(work, "checkpoint");
    cpSync(join(fixture("qwen2-tiny"), "base"), checkpoint, { recursive: true });
    const config = JSON.parse(readFileSync(join(checkpoint, "config.json"), "utf8"));
    Object.assign(config, {
      use_sliding_window: true,
      sliding_window: 4,
      layer_types: ["full_attention", "sliding_attention", "sliding_attention"],
    });
    writeFileSync(join(checkpoint, "config.json"), JSON.stringify(config));
    for (const attention of ["ops", "gqa"] as const) {
      const outDir = join(work, attention);
      const built = await buildArtifacts({
        checkpointDir: checkpoint,
        outDir,
        quant: { kind: "fp32" },
        attention,
      });
      assert.ok(built.ok);
      const loaded = await DecoderSession.load(outDir);
      assert.ok(loaded.ok);
      sessions.set(attention, loaded.value);
    }
  });
  after(async () => {
    for (const s of sessions.values()) await s.release();
    rmSync(work, { recursive: true, force: true });
  });
  const session = (a: DecoderAttention) => sessions.get(a) as DecoderSession;

  it("gives the ops graph's logits at every real token of a left-padded prefill", async () => {
    const input = prefill(prompts);
    const feeds = baseFeeds(session("ops").spec);
    const [ops, gqa] = await Promise.all([
      session("ops").step(input, feeds),
      session("gqa").step(input, feeds),
    ]);
    const vocab = session("ops").manifest.dims.vocabSize;
    let worst = 0;
    let compared = 0;
    for (let i = 0; i < input.batch * input.seq; i++) {
      if (input.attentionMask[i] !== 1n) continue;
      compared++;
      for (let v = i * vocab; v < (i + 1) * vocab; v++)
        worst = Math.max(worst, Math.abs((ops.logits[v] ?? 0) - (gqa.logits[v] ?? Number.NaN)));
    }
    assert.equal(compared, prompts.flat().length);
    assert.ok(worst < 1e-5, `GQA logits differ from ops by ${worst}`);
  });

  it("batched generation past the window gives the ops graph's tokens and logprobs", async () => {
    const generate = async (a: DecoderAttention) => {
      const engine = new Engine(session(a));
      const feeds = baseFeeds(session(a).spec);
      return Promise.all(
        prompts.map((prompt) =>
          engine.generate({
            prompt,
            adapter: { key: "base", feeds },
            sampling: GREEDY,
            maxTokens: 12,
            stopTokens: new Set(),
            logprobs: 0,
            rng: createRng(0),
          }),
        ),
      );
    };
    const [ops, gqa] = [await generate("ops"), await generate("gqa")];
    assert.deepEqual(
      gqa.map((r) => r.tokens.map((t) => t.token)),
      ops.map((r) => r.tokens.map((t) => t.token)),
    );
    const worst = Math.max(
      ...gqa.flatMap((r, i) =>
        r.tokens.map((t, j) => Math.abs((t.logprob ?? 0) - (ops[i]?.tokens[j]?.logprob ?? 0))),
      ),
    );
    assert.ok(worst < 1e-5, `logprobs differ by ${worst}`);
  });
});
