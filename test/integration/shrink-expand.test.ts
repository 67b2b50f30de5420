/**
 * A model built with `--lora-op shrink-expand` (on this int4 base one `ai.loracast` `MatMulNBitsLora`
 * node per LoRA-targeted projection, its base and branch together), trained and served end to end on
 * real processes on the CPU: the trainer's rollout decoder
 * and a generator run its fused LoRA graph on the ort-native addon (`*_ORT_BACKEND=auto` takes it for
 * such a model), the training graph keeps its Gemms on onnxruntime-node. A GRPO run must learn (its
 * rollouts sample through the fused nodes, so a node that dropped the adapter's branch would not),
 * publish, and the generator must serve what it published, and warn that on the cpu a gemm build is
 * the fast one.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ortNativeSkip } from "@loracast/dev-support/ort-native";
import { readSse } from "@loracast/shared/platform";
import { type RunStreamEvent, runStreamEventSchema } from "@loracast/shared/trainer-api";
import { grpoRun, postJson, startTrainingStack, type TrainingStack } from "../helpers/training.ts";

/** The line of a Prometheus exposition that starts with `name{`, or undefined. */
async function infoLine(url: string, name: string): Promise<string | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text.split("\n").find((l) => l.startsWith(`${name}{`));
}

describe("a shrink-expand model, trained and served on the ort-native addon (CPU)", {
  skip: ortNativeSkip(),
}, () => {
  let training: TrainingStack | undefined;
  before(async () => {
    training = await startTrainingStack("loracast-shrink-expand-", 1, "shrink-expand");
  });
  after(async () => {
    await training?.stop();
  });

  it("runs both decoders on the addon, learns, publishes, and the generator serves the versions", async () => {
    assert.ok(training !== undefined);
    const { stack, dataset } = training;
    const [g] = stack.generators;
    assert.ok(g !== undefined);
    const reason = 'reason="auto on cpu: the model\'s LoRA op is shrink-expand"';
    assert.match(
      (await infoLine(stack.trainer.url, "loracast_trainer_rollout_backend_info")) ?? "",
      /backend="ort-native"/,
    );
    assert.ok((await infoLine(stack.trainer.url, "loracast_trainer_rollout_backend_info"))?.includes(reason));
    assert.match((await infoLine(g.url, "loracast_engine_backend_info")) ?? "", /backend="ort-native"/);
    // On the cpu the fused ops are reference loops: the generator says so, and how to avoid it.
    const warned = g.logs.find(
      (l) =>
        l.msg ===
        "shrink-expand model on the cpu: its fused LoRA ops run reference loops here, far slower than a gemm build",
    );
    assert.equal(warned?.level, "warn", JSON.stringify(warned));
    assert.match(String(warned?.fix), /--lora-op gemm/);

    const res = await postJson(`${stack.trainer.url}/v1/runs`, grpoRun("fused", dataset, 12));
    assert.equal(res.status, 201, await res.clone().text());
    const events: RunStreamEvent[] = [];
    for await (const data of readSse(`${stack.trainer.url}/v1/runs/fused/events`))
      events.push(runStreamEventSchema.parse(data));
    const status = events.at(-1);
    assert.ok(status?.type === "status" && status.status === "completed", JSON.stringify(status));
    const steps = events.filter((e) => e.type === "step");
    const reward = (from: number, to: number) =>
      steps.slice(from, to).reduce((a, e) => a + (e.metrics?.reward_mean ?? 0), 0) / (to - from);
    assert.ok(reward(9, 12) >= 2 * reward(0, 3), `reward ${reward(0, 3)} → ${reward(9, 12)}`);
    const published = events.filter((e) => e.type === "published").map((e) => e.version);
    assert.deepEqual(published, [1, 2, 3, 4, 5, 6, 7]);

    await stack.waitActive(g, "fused", 7, 30_000);
    const completion = await fetch(`${g.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "fused", prompt: "q5:", max_tokens: 8, temperature: 0 }),
    });
    assert.equal(completion.status, 200, await completion.clone().text());
    assert.equal(completion.headers.get("x-loracast-adapter-version"), "7");
    const body = (await completion.json()) as { choices: { text: string }[] };
    // The trained adapter answers with digits (the run's reward), where the base does not.
    const base = await fetch(`${g.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "llama-tiny", prompt: "q5:", max_tokens: 8, temperature: 0 }),
    });
    assert.equal(base.status, 200, await base.clone().text());
    const baseText = ((await base.json()) as { choices: { text: string }[] }).choices[0]?.text ?? "";
    assert.notEqual(body.choices[0]?.text, baseText, "the adapter's completion equals the base's");
  });
});
