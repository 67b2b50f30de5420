import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ortNativeSkip } from "@loracast/dev-support/ort-native";
import { loadTinyModel, prefillStep, type TinyModel } from "@loracast/dev-support/tiny-model";
import { createRng } from "../random/index.ts";
import {
  allFinite,
  argmaxRow,
  type DecoderSession,
  Engine,
  type GenerationRequest,
  GREEDY,
  greedyDecode,
  type LoraFeeds,
  type SamplingParams,
  sampleToken,
  sessionsCreated,
} from "./index.ts";

describe("allFinite", () => {
  it("is false for one NaN or infinity anywhere in the row, in every lane and the tail", () => {
    for (const n of [1, 3, 4, 7, 8, 1001]) {
      const row = Float32Array.from({ length: n }, (_, j) => ((j * 37) % 11) - 5 - 0.25);
      assert.equal(allFinite(row), true, `n=${n}`);
      for (const at of [0, n - 1, Math.floor(n / 2)]) {
        for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
          const copy = row.slice();
          copy[at] = bad;
          assert.equal(allFinite(copy), false, `n=${n} at=${at} ${bad}`);
        }
      }
    }
    assert.equal(allFinite(Float32Array.of(-0, 0, 3.4e38, -3.4e38, 1e-45)), true);
  });
});

describe("argmax", () => {
  /** The one-lane scan the four-lane argmax must agree with. */
  const reference = (xs: Float32Array): number => {
    let best = 0;
    let value = Number.NEGATIVE_INFINITY;
    xs.forEach((v, j) => {
      if (v > value) [best, value] = [j, v];
    });
    return best;
  };

  it("returns the first maximum whichever lane and tail it sits in", () => {
    for (let n = 0; n <= 11; n++) {
      for (let at = 0; at < n; at++) {
        const xs = new Float32Array(n).fill(-1);
        xs[at] = 5;
        assert.equal(argmaxRow(xs, 0, n), at, `n=${n} at=${at}`);
        for (let tie = at + 1; tie < n; tie++) {
          const tied = Float32Array.from(xs);
          tied[tie] = 5;
          assert.equal(argmaxRow(tied, 0, n), at, `n=${n} first=${at} tie=${tie}`);
        }
      }
    }
  });

  it("agrees with a plain scan on random rows with NaN, infinities and ties", () => {
    const rng = createRng(7);
    const specials = [Number.NaN, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, 0];
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(rng.next() * 40);
      const xs = Float32Array.from({ length: n }, () =>
        rng.next() < 0.2 ? (specials[Math.floor(rng.next() * 4)] ?? 0) : Math.round(rng.next() * 6),
      );
      assert.equal(argmaxRow(xs, 0, n), reference(xs), `row ${Array.from(xs)}`);
    }
  });

  it("reads only its row of a batch", () => {
    const rows = Float32Array.from([9, 0, 0, 0, 0, 1, 7, 1, 9, 0]);
    assert.deepEqual([argmaxRow(rows, 0, 5), argmaxRow(rows, 1, 5)], [0, 3]);
  });
});

describe("sampling", () => {
  const logits = Float32Array.from([2, 1, 0.5, -1, 3]);
  const params = (p: Partial<SamplingParams>): SamplingParams => ({
    temperature: 1,
    topK: 0,
    topP: 1,
    minP: 0,
    ...p,
  });

  it("greedy, top-k 1, a tiny top-p and min-p 1 all pick the argmax", () => {
    const rng = createRng(1);
    for (const p of [GREEDY, params({ topK: 1 }), params({ topP: 1e-6 }), params({ minP: 1 })]) {
      for (let i = 0; i < 20; i++) assert.equal(sampleToken(logits, p, rng, 0).token, 4);
    }
  });

  it("greedy without logprobs skips them; with logprobs it gives log_softmax at the argmax", () => {
    const lse = Math.log([...logits].reduce((a, v) => a + Math.exp(v), 0));
    assert.deepEqual(sampleToken(logits, GREEDY, createRng(1), null), { token: 4, logprob: null, top: [] });
    const s = sampleToken(logits, GREEDY, createRng(1), 1);
    assert.ok(Math.abs((s.logprob ?? 0) - ((logits[4] ?? 0) - lse)) < 1e-12);
    assert.deepEqual(s.top, [{ token: 4, logprob: s.logprob }]);
  });

  it("logprobs are those of softmax(logits / T), before truncation", () => {
    const t = 0.7;
    const z = [...logits].map((v) => v / t);
    const lse = Math.log(z.reduce((a, v) => a + Math.exp(v), 0));
    const s = sampleToken(logits, params({ temperature: t, topK: 2 }), createRng(3), 3);
    assert.ok(Math.abs((s.logprob ?? 0) - ((z[s.token] ?? 0) - lse)) < 1e-12);
    assert.deepEqual(
      s.top.map((x) => x.token),
      [4, 0, 1],
    );
  });

  const frequencies = (p: SamplingParams, n: number) => {
    const rng = createRng(42);
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const tok = sampleToken(logits, p, rng, null).token;
      counts.set(tok, (counts.get(tok) ?? 0) + 1);
    }
    return counts;
  };

  it("samples in proportion to the truncated, renormalised distribution", () => {
    const n = 20000;
    const counts = frequencies(params({ topK: 3 }), n);
    const kept = [4, 0, 1];
    const mass = kept.reduce((a, j) => a + Math.exp(logits[j] ?? 0), 0);
    for (const j of kept) {
      const want = Math.exp(logits[j] ?? 0) / mass;
      assert.ok(Math.abs((counts.get(j) ?? 0) / n - want) < 0.015, `token ${j}`);
    }
    assert.equal(counts.get(2), undefined);
    assert.equal(counts.get(3), undefined);
  });

  it("without top-k or top-p, samples the whole tempered distribution (no sorting needed)", () => {
    const n = 20000;
    const t = 1.5;
    const counts = frequencies(params({ temperature: t }), n);
    const mass = [...logits].reduce((a, v) => a + Math.exp(v / t), 0);
    for (const [j, v] of [...logits].entries()) {
      const want = Math.exp(v / t) / mass;
      assert.ok(Math.abs((counts.get(j) ?? 0) / n - want) < 0.015, `token ${j}: ${counts.get(j)}`);
    }
  });
});

// Both attentions: the GroupQueryAttention graph pads rows on the other side (gqa-step.ts), and
// over a float16 cache (the CUDA build) its caches grow and regroup as 2-byte elements
// (kv-layout.ts). Both bindings: the ort-native addon keeps the cache in device tensors and runs the
// full graph (native-decoder.ts); it skips only where the addon cannot be built.
const nativeSkip = ortNativeSkip();
for (const [attention, backend, kvCacheDtype] of [
  ["ops", "onnxruntime-node", "float32"],
  ["gqa", "onnxruntime-node", "float32"],
  ["gqa", "onnxruntime-node", "float16"],
  ["ops", "ort-native", "float32"],
  ["gqa", "ort-native", "float32"],
  ["gqa", "ort-native", "float16"],
] as const) {
  const skip = backend === "ort-native" ? nativeSkip : false;
  describe(`engine on llama-tiny (${attention} attention, ${backend}, ${kvCacheDtype} KV cache)`, {
    skip,
  }, () => {
    let model: TinyModel;
    let session: DecoderSession;
    let lora: LoraFeeds;
    let base: LoraFeeds;
    const prompts = [
      [5, 9, 200, 17, 3, 44, 8, 90],
      [7, 7],
      [100, 3, 250, 12, 61],
    ];

    before(async () => {
      model = await loadTinyModel(attention, backend, kvCacheDtype);
      ({ session, lora, base } = model);
      assert.equal(session.backend, backend);
    });
    after(() => model.dispose());

    const request = (
      prompt: number[],
      feeds: LoraFeeds,
      key: string,
      extra: Partial<GenerationRequest> = {},
    ): GenerationRequest => ({
      prompt,
      adapter: { key, feeds },
      sampling: GREEDY,
      maxTokens: 10,
      stopTokens: new Set(),
      logprobs: 0,
      rng: createRng(0),
      ...extra,
    });

    it("a cache that outgrows its spare columns gives the logits of one pass without a cache", async () => {
      const vocab = session.manifest.dims.vocabSize;
      const prompt = prompts[0] as number[];
      // Past the 64 spare columns the first cache gets, so the rows move to larger buffers once.
      const tokens = [...prompt, ...Array.from({ length: 90 }, (_, i) => (i * 37 + 11) % vocab)];
      const n = tokens.length;
      const ids = (xs: readonly number[]) => BigInt64Array.from(xs.map(BigInt));
      const whole = await session.step(
        prefillStep(
          tokens,
          tokens.map((_, i) => i),
        ),
        lora,
      );
      let step = await session.step(prefillStep(prompt), lora);
      let worst = 0;
      let grew = false;
      for (let t = prompt.length; ; t++) {
        const expected = whole.logits.subarray((t - 1) * vocab, t * vocab);
        step.logits.forEach((v, j) => {
          worst = Math.max(worst, Math.abs(v - (expected[j] ?? 0)));
        });
        if (t === n) break;
        const capacity = step.present.capacity;
        step = await session.step(
          {
            batch: 1,
            seq: 1,
            inputIds: ids([tokens[t] ?? 0]),
            attentionMask: new BigInt64Array(t + 1).fill(1n),
            positionIds: ids([t]),
            logitsPositions: ids([0]),
            logitsCount: 1,
            past: step.present,
          },
          lora,
        );
        grew ||= step.present.capacity > capacity;
      }
      // A host cache moves to larger buffers past its spare columns; a device cache is new each step.
      assert.ok(grew, "the cache never outgrew its buffers");
      assert.equal(step.present.length, n);
      assert.equal(step.present.keys[0]?.type, kvCacheDtype, "the cache keeps the graph's element type");
      // A float16 cache: the prefill and the decode steps round differently in float16 (unit
      // roundoff 2^-11), which test/conformance/tolerances.ts bounds by 4·2^-11 of the largest logit.
      const largest = whole.logits.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const bound = kvCacheDtype === "float16" ? 4 * 2 ** -11 * largest : 1e-4;
      assert.ok(worst < bound, `cached logits differ from one pass by ${worst} (bound ${bound})`);
    });

    it("concurrent prompts of different lengths and adapters decode as they would alone", async () => {
      const createdBefore = sessionsCreated();
      const solo = async (p: number[], feeds: LoraFeeds) => greedyDecode(session, feeds, p, 10);
      const expected = [
        ...(await Promise.all(prompts.map((p) => solo(p, lora)))),
        ...(await Promise.all(prompts.map((p) => solo(p, base)))),
      ];
      const engine = new Engine(session);
      const results = await Promise.all([
        ...prompts.map((p) => engine.generate(request(p, lora, "lora"))),
        ...prompts.map((p) => engine.generate(request(p, base, "base"))),
      ]);
      assert.deepEqual(
        results.map((r) => r.tokens.map((t) => t.token)),
        expected,
      );
      assert.ok(results.every((r) => r.finishReason === "length"));
      assert.equal(engine.stats.maxBatchSeen, 3, "each adapter group decoded as one batch");
      assert.equal(sessionsCreated(), createdBefore, "switching adapters creates no session");
    });

    it("a request that joins mid-generation is merged into the running batch", async () => {
      const engine = new Engine(session);
      const long = engine.generate(request(prompts[0] as number[], lora, "lora", { maxTokens: 12 }));
      let late: Promise<unknown> | undefined;
      const first = engine.generate(
        request(prompts[1] as number[], lora, "lora", {
          maxTokens: 12,
          onToken: () => {
            late ??= engine.generate(request(prompts[2] as number[], lora, "lora", { maxTokens: 4 }));
          },
        }),
      );
      const [a, b] = await Promise.all([long, first]);
      const c = (await late) as Awaited<typeof long>;
      assert.deepEqual(
        a.tokens.map((t) => t.token),
        await greedyDecode(session, lora, prompts[0] as number[], 12),
      );
      assert.deepEqual(
        b.tokens.map((t) => t.token),
        await greedyDecode(session, lora, prompts[1] as number[], 12),
      );
      assert.deepEqual(
        c.tokens.map((t) => t.token),
        await greedyDecode(session, lora, prompts[2] as number[], 4),
      );
    });

    it("stops on a stop token, and a seed replays the same sample", async () => {
      const engine = new Engine(session);
      const greedy = await greedyDecode(session, lora, prompts[0] as number[], 10);
      const stopAt = greedy[3] as number;
      const stopped = await engine.generate(
        request(prompts[0] as number[], lora, "lora", { stopTokens: new Set([stopAt]) }),
      );
      assert.equal(stopped.finishReason, "stop");
      assert.equal(stopped.tokens.at(-1)?.token, stopAt);
      assert.ok(stopped.tokens.length <= 4);

      const sampled = (seed: number) =>
        engine.generate(
          request(prompts[2] as number[], lora, "lora", {
            sampling: { temperature: 1.2, topK: 0, topP: 0.95, minP: 0 },
            rng: createRng(seed),
            maxTokens: 16,
          }),
        );
      const [x, y, z] = await Promise.all([sampled(7), sampled(7), sampled(8)]);
      assert.deepEqual(
        x.tokens.map((t) => t.token),
        y.tokens.map((t) => t.token),
      );
      assert.notDeepEqual(
        x.tokens.map((t) => t.token),
        z.tokens.map((t) => t.token),
      );
    });

    it("an aborted request ends with reason abort and frees its slot", async () => {
      const engine = new Engine(session);
      const controller = new AbortController();
      const r = await engine.generate(
        request(prompts[0] as number[], lora, "lora", {
          maxTokens: 1000,
          signal: controller.signal,
          onToken: () => controller.abort(),
        }),
      );
      assert.equal(r.finishReason, "abort");
      assert.ok(r.tokens.length <= 2);
      assert.equal(engine.load, 0);
    });
  });
}
