/**
 * Adapter swaps under load, against real processes: 50 streaming requests run while 10 new
 * versions publish and activate. None may fail, and each one's tokens must be exactly what the
 * version it names produces for its seed, replayed afterwards pinned to that version.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import type { Service } from "@loracast/dev-support/supervisor";
import { completionChoiceSchema, completionChunkChoiceSchema } from "@loracast/shared/generator-api";
import { formatVersionRef } from "@loracast/shared/manifest";
import OpenAI from "openai";
import { randomAdapter } from "../helpers/adapters.ts";
import { type Stack, startServingStack } from "../helpers/stack.ts";

const RUN = "swap-run";
const SWAPS = 10;
const STREAMS_PER_SWAP = 5;
const MAX_TOKENS = 160;

interface Outcome {
  seed: number;
  prompt: string;
  version: number;
  headerVersion: string | null;
  tokens: number[];
  startedAt: number;
  endedAt: number;
}

describe("adapter swaps under load", () => {
  let stack: Stack;
  let g: Service;
  let client: OpenAI;

  before(async () => {
    ({ stack, generator: g } = await startServingStack({ GENERATOR_MAX_BATCH: "8" }));
    client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  after(() => stack?.stop());

  const params = (seed: number, prompt: string) => ({
    prompt,
    max_tokens: MAX_TOKENS,
    temperature: 1,
    top_p: 0.95,
    seed,
    ...({ return_token_ids: true, ignore_eos: true } as object),
  });

  async function stream(seed: number): Promise<Outcome> {
    const prompt = `story ${seed}:`;
    const startedAt = performance.now();
    const { data, response } = await client.completions
      .create({ model: RUN, stream: true, ...params(seed, prompt) })
      .withResponse();
    const tokens: number[] = [];
    const models = new Set<string>();
    for await (const chunk of data) {
      models.add(chunk.model);
      for (const c of chunk.choices) tokens.push(...(completionChunkChoiceSchema.parse(c).token_ids ?? []));
    }
    assert.equal(models.size, 1, `one version per response, got ${[...models]}`);
    const version = Number(/@(\d+)$/.exec([...models][0] ?? "")?.[1]);
    return {
      seed,
      prompt,
      version,
      headerVersion: response.headers.get("x-loracast-adapter-version"),
      tokens,
      startedAt,
      endedAt: performance.now(),
    };
  }

  it("50 streams across 10 activations: no failures, every stream reproduces on the version it names", async () => {
    assert.equal(
      (await stack.publish(RUN, randomAdapter(LLAMA_CONFIG, 100, 4, ["q_proj", "v_proj"]))).status,
      201,
    );
    await stack.waitActive(g, RUN, 1);

    const streams: Promise<Outcome>[] = [];
    const activatedAt: number[] = [];
    for (let k = 0; k < SWAPS; k++) {
      for (let i = 0; i < STREAMS_PER_SWAP; i++) streams.push(stream(k * STREAMS_PER_SWAP + i));
      const adapter = randomAdapter(LLAMA_CONFIG, 101 + k, 4, ["q_proj", "k_proj", "v_proj", "o_proj"]);
      assert.equal((await stack.publish(RUN, adapter)).status, 201);
      await stack.waitActive(g, RUN, k + 2);
      activatedAt.push(performance.now());
    }
    const settled = await Promise.allSettled(streams);
    const failed = settled.filter((s) => s.status === "rejected");
    assert.deepEqual(failed, [], "no request fails while versions swap");
    const outcomes = settled.map((s) => (s as PromiseFulfilledResult<Outcome>).value);

    const spanning = outcomes.filter((o) => activatedAt.some((t) => t > o.startedAt && t < o.endedAt));
    assert.ok(spanning.length >= 10, `only ${spanning.length} streams were in flight across an activation`);
    const versions = new Set(outcomes.map((o) => o.version));
    assert.ok(versions.size >= 5, `streams were admitted on only ${versions.size} versions`);

    for (const o of outcomes) {
      assert.equal(o.headerVersion, String(o.version));
      assert.equal(o.tokens.length, MAX_TOKENS);
      const replay = await client.completions.create({
        model: formatVersionRef(RUN, o.version),
        ...params(o.seed, o.prompt),
      });
      const want = completionChoiceSchema.parse(replay.choices[0]).token_ids;
      assert.deepEqual(o.tokens, want, `seed ${o.seed} on version ${o.version}`);
    }

    const metrics = await (await fetch(`${g.url}/metrics`)).text();
    assert.match(metrics, /^loracast_engine_sessions_created_total 1$/m);
    assert.match(metrics, new RegExp(`^loracast_adapter_activations_total ${SWAPS + 1}$`, "m"));
  });
});
