/**
 * What one decode step copies between host and device on the bench's EP (`DecoderSession.decodeCopies`,
 * from shared/runtime/device-copies.ts), and what that costs: a probe times Identity sessions on the
 * EP (host inputs, host outputs: one copy each way per tensor), and each copy is costed from the
 * fitted fixed cost per tensor and bandwidth (the per-run cost, paid once per step anyway, apart).
 */
import { encodeModel, GraphBuilder } from "@loracast/shared/onnx";
import {
  bytesPerToken,
  createSession,
  type DecoderSession,
  type ExecutionProvider,
  type LoraFeeds,
  type StepCopy,
} from "@loracast/shared/runtime";
import * as ort from "onnxruntime-node";

/** The cost of copies on the EP: fixed µs per tensor, and bytes per µs. */
interface CopyCost {
  fixedUs: number;
  bytesPerUs: number;
}

/** Median µs of 20 runs (after 2 warm-ups) of an Identity session on `ep` over `n` tensors of `floats`. */
async function timeIdentity(ep: ExecutionProvider, n: number, floats: number): Promise<number> {
  const g = new GraphBuilder("copy");
  for (let i = 0; i < n; i++) {
    g.input(`x${i}`, "float32", ["n"]);
    g.op("Identity", [`x${i}`], {}, { names: [`y${i}`] });
    g.output(`y${i}`, "float32", ["n"]);
  }
  const model = encodeModel({ graph: g.build(), opsets: { "": 21 }, producer: "loracast-bench" });
  const session = await createSession(model, { executionProviders: [ep] });
  const feeds = Object.fromEntries(
    Array.from({ length: n }, (_, i) => [
      `x${i}`,
      new ort.Tensor("float32", new Float32Array(floats), [floats]),
    ]),
  );
  const runs: number[] = [];
  for (let i = 0; i < 22; i++) {
    const t = performance.now();
    await session.run(feeds);
    if (i >= 2) runs.push((performance.now() - t) * 1000);
  }
  await session.release();
  return runs.sort((a, b) => a - b)[runs.length >> 1] ?? Number.NaN;
}

/**
 * Fits the cost of a copy on `ep` from Identity sessions (every input copied in, every output out):
 * 1 and 16 tiny tensors give the fixed cost per tensor apart from the per-run cost; one 32 MB tensor
 * gives the bandwidth.
 */
async function probe(ep: ExecutionProvider): Promise<CopyCost> {
  const one = await timeIdentity(ep, 1, 256);
  const sixteen = await timeIdentity(ep, 16, 256);
  const large = await timeIdentity(ep, 1, 8 * 1024 * 1024);
  return {
    fixedUs: Math.max(0, (sixteen - one) / 30),
    bytesPerUs: (2 * 32 * 1024 * 1024) / Math.max(large - one, 1e-3),
  };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(3)} MB`;

/**
 * Prints the copies of one decode step at `batch` 1 and 8 over a past of `pastColumns` columns with
 * `lora`'s factors, each with its estimated time per step, and the totals per token.
 */
export async function printDecodeCopies(
  session: DecoderSession,
  lora: LoraFeeds,
  pastColumns: number,
  say: (line: string) => void,
): Promise<void> {
  if (session.ep === "cpu") {
    say("host↔device copies per decode step: none (cpu EP)");
    return;
  }
  const cost = await probe(session.ep);
  say(
    `copy probe on ${session.ep} (Identity sessions, host in and out): ${cost.fixedUs.toFixed(1)} µs per tensor + ${(cost.bytesPerUs / 1000).toFixed(1)} GB/s`,
  );
  for (const batch of [1, 8]) {
    const copies = session.decodeCopies(batch, pastColumns, lora);
    const us = (c: StepCopy) => c.tensors * cost.fixedUs + c.bytes / cost.bytesPerUs;
    const total = copies.reduce((t, c) => t + us(c), 0);
    say(
      `decode step copies, batch ${batch}, past ${pastColumns} columns, LoRA: ${mb(bytesPerToken(copies, batch))} per token, ~${(total / batch).toFixed(0)} µs per token`,
    );
    for (const c of copies)
      say(
        `  ${c.direction} ${c.what} (${c.tensors} tensors): ${mb(c.bytes)} per step, ~${us(c).toFixed(0)} µs`,
      );
  }
}
