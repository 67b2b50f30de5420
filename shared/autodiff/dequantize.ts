/**
 * The input gradient of `MatMulNBits` needs dY·W, a contraction over N, and the op only contracts
 * over K. So the backward rebuilds W = (q − zp)·scale from the same packed initializers with plain
 * ONNX ops (the layout of `com.microsoft.MatMulNBits`, ONNX Runtime's `docs/ContribOperators.md`)
 * and multiplies by it. This is exact: the backward sees the very weights the forward used, with no
 * second quantized copy to drift from them, and it runs on every execution provider. The cost is a
 * transient float32 matrix per projection and step.
 */
import { attr, type NodeValue } from "../onnx/index.ts";
import type { GradContext } from "./differentiate.ts";

function intAttr(node: NodeValue, name: string): number {
  const a = node.attributes[name];
  if (a?.kind !== "int") throw new Error(`${node.name}: MatMulNBits without ${name}`);
  return a.value;
}

/**
 * Unpacks 4-bit codes, as float32: `packed` uint8 `[...dims]` becomes `[...dims, 2]`, byte i giving
 * element (i, 0) from its low nibble and (i, 1) from its high one, so a reshape that merges the last
 * two axes puts them in storage order. In float arithmetic (hi = ⌊b/16⌋, lo = b − 16·hi, exact for
 * bytes) rather than with BitwiseAnd/BitShift on uint8, which WebGPU lacks: ORT ran those on the
 * CPU and copied every weight across twice per backward. The arithmetic runs on `dims` and the
 * trailing axis comes last: ORT's CPU Mul over a trailing axis of 1 took 10× as long (a profile of
 * the Qwen2.5-0.5B backward). Every shape is known when the graph is built (the op's K, N, bits
 * and block_size), so no node computes one.
 */
function nibblePairs(ctx: GradContext, packed: string): string {
  const g = ctx.g;
  const bytes = g.op1("Cast", [packed], { to: attr.int(1) });
  const hi = g.op1("Floor", [g.op1("Mul", [bytes, ctx.f32(1 / 16)])]);
  const lo = g.op1("Sub", [bytes, g.op1("Mul", [hi, ctx.f32(16)])]);
  const last = ctx.i64(-1);
  return g.op1("Concat", [g.op1("Unsqueeze", [lo, last]), g.op1("Unsqueeze", [hi, last])], {
    axis: attr.int(-1),
  });
}

/** W as float32 `[N, K]`, from MatMulNBits' packed codes, scales and zero points. */
export function dequantizedWeight(ctx: GradContext, node: NodeValue): string {
  const g = ctx.g;
  const [K, N, bits, blockSize] = ["K", "N", "bits", "block_size"].map((a) => intAttr(node, a)) as [
    number,
    number,
    number,
    number,
  ];
  if (bits !== 4 && bits !== 8) throw new Error(`${node.name}: MatMulNBits backward supports 4 and 8 bits`);
  const kBlocks = Math.ceil(K / blockSize);
  const [packed, scales, zeroPoints] = [node.inputs[1] ?? "", node.inputs[2] ?? "", node.inputs[3] ?? ""];
  const float = (x: string) => g.op1("Cast", [x], { to: attr.int(1) });

  // Codes as float32 [N, kBlocks, blockSize] (packed is uint8 [N, kBlocks, blockSize·bits/8]).
  const q =
    bits === 4 ? g.op1("Reshape", [nibblePairs(ctx, packed), ctx.i64(N, kBlocks, blockSize)]) : float(packed);
  let zp: string;
  if (zeroPoints === "") {
    zp = ctx.f32(2 ** (bits - 1));
  } else if (bits === 8) {
    zp = g.op1("Unsqueeze", [float(zeroPoints), ctx.i64(-1)]);
  } else {
    // Packed zero points pad each row to whole bytes; keep the first kBlocks, as [N, kBlocks, 1].
    const cols = Math.ceil(kBlocks / 2);
    const unpacked = g.op1("Reshape", [nibblePairs(ctx, zeroPoints), ctx.i64(N, 2 * cols, 1)]);
    zp =
      2 * cols === kBlocks
        ? unpacked
        : g.op1("Slice", [unpacked, ctx.i64(0), ctx.i64(kBlocks), ctx.i64(1), ctx.i64(1)]);
  }
  const w = g.op1("Mul", [g.op1("Sub", [q, zp]), g.op1("Unsqueeze", [scales, ctx.i64(-1)])]);
  const flat = g.op1("Reshape", [w, ctx.i64(N, kBlocks * blockSize)]);
  return kBlocks * blockSize === K
    ? flat
    : g.op1("Slice", [flat, ctx.i64(0), ctx.i64(K), ctx.i64(1), ctx.i64(1)]);
}
