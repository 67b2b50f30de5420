/**
 * The generator's OpenAI-compatible API, driven by the official `openai` client against real
 * processes: embedded S3, trainer, and a generator serving llama-tiny artifacts built here.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fixture, LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import { completionChoiceSchema } from "@loracast/shared/generator-api";
import OpenAI from "openai";
import { readReference } from "../conformance/fixture.ts";
import { fixtureAdapter, randomAdapter } from "../helpers/adapters.ts";
import { type Stack, startServingStack } from "../helpers/stack.ts";

const RUN = "api-run";

describe("OpenAI-compatible generation API", () => {
  let stack: Stack;
  let g: Service;
  let client: OpenAI;
  let greedyPrompt: number[];
  let greedyTokens: number[];

  before(async () => {
    const ref = await readReference(fixture("llama-tiny"));
    greedyPrompt = ref.greedyPrompt;
    greedyTokens = ref.greedyTokens;
    // Base requests on the decoder graph without LoRA inputs (off by default on the CPU).
    ({ stack, generator: g } = await startServingStack({ GENERATOR_BASE_GRAPH: "on" }));
    client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  after(() => stack?.stop());

  it("serves the base model, naming no adapter", async () => {
    const { data, response } = await client.completions
      .create({ model: "llama-tiny", prompt: "hello", max_tokens: 5, temperature: 0 })
      .withResponse();
    assert.equal(response.headers.get("x-loracast-adapter-version"), "none");
    assert.equal(data.model, "llama-tiny");
    assert.equal(data.usage?.prompt_tokens, 5);
    assert.equal(data.usage?.completion_tokens, 5);
    assert.equal(data.choices[0]?.finish_reason, "length");
  });

  it("greedy tokens through the API equal PyTorch + PEFT's, on the run's active version", async () => {
    assert.equal((await stack.publish(RUN, fixtureAdapter("llama-tiny"))).status, 201);
    const active = await stack.waitActive(g, RUN, 1);
    const { data, response } = await client.completions
      .create({
        model: RUN,
        prompt: greedyPrompt,
        max_tokens: greedyTokens.length,
        temperature: 0,
        logprobs: 2,
        // vLLM extensions the openai client passes through
        ...({ return_token_ids: true, ignore_eos: true } as object),
      })
      .withResponse();
    assert.equal(response.headers.get("x-loracast-adapter-version"), "1");
    assert.equal(response.headers.get("x-loracast-adapter-sha256"), active.sha256);
    assert.equal(data.model, `${RUN}@1`);
    const choice = completionChoiceSchema.parse(data.choices[0]);
    assert.ok(choice.logprobs !== null, "logprobs were asked for");
    assert.deepEqual(choice.token_ids, greedyTokens);
    assert.equal(choice.logprobs.token_logprobs.length, greedyTokens.length);
    for (const [i, lp] of choice.logprobs.token_logprobs.entries()) {
      assert.ok(lp !== null && lp <= 0, `token ${i}: logprob ${lp}`);
      // Keys are token texts, which byte tokens can share, so compare values only.
      const best = Math.max(...Object.values(choice.logprobs.top_logprobs[i] ?? {}));
      assert.ok(lp >= best - 1e-9, "greedy picks the most likely token");
    }
  });

  it("streams chat completions; the stream equals the non-streamed answer for the same seed", async () => {
    const request = {
      model: RUN,
      messages: [{ role: "user" as const, content: "count to three" }],
      max_tokens: 24,
      temperature: 0.9,
      seed: 1234,
      n: 2,
    };
    const whole = await client.chat.completions.create(request);
    const texts = ["", ""];
    const finish: (string | null)[] = [null, null];
    const stream = await client.chat.completions.create({ ...request, stream: true });
    for await (const chunk of stream) {
      assert.equal(chunk.model, `${RUN}@1`);
      for (const ch of chunk.choices) {
        texts[ch.index] += ch.delta.content ?? "";
        if (ch.finish_reason !== null) finish[ch.index] = ch.finish_reason;
      }
    }
    assert.deepEqual(
      texts,
      whole.choices.map((c) => c.message.content),
    );
    assert.notEqual(texts[0], texts[1], "choices of one request sample independently");
    assert.deepEqual(
      finish,
      whole.choices.map((c) => c.finish_reason),
    );
  });

  it("choices of one request differ at a trainer's seed size (~1e11), and the seed replays them", async () => {
    // The trainer seeds generator rollouts with (seed·1000003 + step)·65537 + prompt; a seed that
    // large once gave every choice the same tokens (the choice index was lost to rounding).
    const request = {
      model: RUN,
      prompt: "q5:",
      n: 4,
      max_tokens: 16,
      temperature: 1,
      seed: 131_074_458_759,
    };
    const once = await client.completions.create(request);
    const texts = once.choices.map((c) => c.text);
    assert.ok(new Set(texts).size > 1, `4 choices, all "${texts[0]}"`);
    const again = await client.completions.create(request);
    assert.deepEqual(
      again.choices.map((c) => c.text),
      texts,
    );
  });

  it("a pinned version keeps serving after a newer one activates, and swaps create no session", async () => {
    assert.equal(
      (await stack.publish(RUN, randomAdapter(LLAMA_CONFIG, 5, 4, ["q_proj", "v_proj"]))).status,
      201,
    );
    await stack.waitActive(g, RUN, 2);
    const pinned = await client.completions.create({
      model: `${RUN}@1`,
      prompt: greedyPrompt,
      max_tokens: 12,
      temperature: 0,
      ...({ return_token_ids: true, ignore_eos: true } as object),
    });
    assert.deepEqual(completionChoiceSchema.parse(pinned.choices[0]).token_ids, greedyTokens);
    const latest = await client.completions.create({ model: RUN, prompt: "x", max_tokens: 2 });
    assert.equal(latest.model, `${RUN}@2`);
    const metrics = await (await fetch(`${g.url}/metrics`)).text();
    // The LoRA graph's session and the base graph's, made at start only.
    assert.match(metrics, /^loracast_engine_sessions_created_total 2$/m);
    // The decoder's binding and why: the stock one, `auto` on the CPU.
    assert.match(
      metrics,
      /^loracast_engine_backend_info\{backend="onnxruntime-node",ep="cpu",reason="auto on cpu"\} 1$/m,
    );
    assert.match(metrics, /^loracast_engine_base_graph_info\{state="on",reason="on: asked for"\} 1$/m);
    // The base request (first test) ran on the base graph, the adapters' on the LoRA graph.
    const steps = (graph: string) =>
      Number(
        metrics.match(
          new RegExp(`^loracast_engine_graph_steps_total\\{graph="${graph}"\\} (\\d+)$`, "m"),
        )?.[1],
      );
    assert.ok(steps("base") >= 5, `base graph steps: ${steps("base")}`);
    assert.ok(steps("lora") >= greedyTokens.length, `LoRA graph steps: ${steps("lora")}`);
  });

  it("answers bad requests with OpenAI-style errors", async () => {
    await assert.rejects(
      client.completions.create({ model: "nope", prompt: "x", max_tokens: 1 }),
      (e: unknown) => {
        assert.ok(e instanceof OpenAI.NotFoundError);
        return true;
      },
    );
    await assert.rejects(
      client.completions.create({ model: `${RUN}@99`, prompt: "x", max_tokens: 1 }),
      OpenAI.NotFoundError,
    );
    await assert.rejects(
      client.completions.create({ model: RUN, prompt: "x".repeat(300), max_tokens: 1 }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /context/.test(e.message),
    );
    await assert.rejects(
      client.completions.create({ model: RUN, prompt: "x", temperature: 5 }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message),
    );
  });

  it("load_lora_adapter pins a version; unload releases it", async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${g.url}/v1/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    assert.equal((await post("load_lora_adapter", { lora_name: `${RUN}@1` })).status, 200);
    const rows = (await stack.adapters(g)).data;
    assert.equal(rows.find((r) => r.version === 1 && r.run === RUN)?.state !== undefined, true);
    assert.equal((await post("unload_lora_adapter", { lora_name: `${RUN}@1` })).status, 200);
    assert.equal((await post("unload_lora_adapter", { lora_name: `${RUN}@1` })).status, 404);
    // Without lora_path the name is the path: a run with no version here is not found; junk is refused.
    assert.equal((await post("load_lora_adapter", { lora_name: "no-version" })).status, 404);
    assert.equal((await post("load_lora_adapter", { lora_name: "no version" })).status, 400);
  });

  it("a client that disconnects mid-stream frees its batch slot", async () => {
    const tokensSoFar = async () =>
      Number(
        /^loracast_engine_generated_tokens_total (\d+)$/m.exec(
          await (await fetch(`${g.url}/metrics`)).text(),
        )?.[1],
      );
    const before = await tokensSoFar();
    const controller = new AbortController();
    const stream = await client.completions.create(
      { model: RUN, prompt: "a", max_tokens: 200, stream: true, ...({ ignore_eos: true } as object) },
      { signal: controller.signal },
    );
    let chunks = 0;
    try {
      for await (const _ of stream) {
        if (++chunks === 3) {
          controller.abort();
          break;
        }
      }
    } catch {
      // the client may surface the abort as an error; either way the connection is gone
    }
    await eventually(
      "engine drained",
      async () =>
        /^loracast_engine_sequences 0$/m.test(await (await fetch(`${g.url}/metrics`)).text())
          ? true
          : undefined,
      10_000,
      50,
    );
    const generated = (await tokensSoFar()) - before;
    assert.ok(generated >= 3 && generated < 200, `generated ${generated} tokens after the client left`);
  });
});
