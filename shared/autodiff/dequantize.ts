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
 * Unpacks 4-bit codes along the last axis, as float32: byte i holds element 2i (low nibble) and 2i+1
 * (high). In float arithmetic (hi = ⌊b/16⌋, lo = b − 16·hi, exact for bytes) rather than with
 * BitwiseAnd/BitShift on uint8, which WebGPU lacks: ORT ran those on the CPU and copied every
 * weight across twice per backward.
 */
function nibbles(ctx: GradContext, packed: string): string {
  const g = ctx.g;
  const bytes = g.op1("Cast", [packed], { to: attr.int(1) });
  const hi = g.op1("Floor", [g.op1("Mul", [bytes, ctx.f32(1 / 16)])]);
  const lo = g.op1("Sub", [bytes, g.op1("Mul", [hi, ctx.f32(16)])]);
  const pairs = g.op1(
    "Concat",
    [g.op1("Unsqueeze", [lo, ctx.i64(-1)]), g.op1("Unsqueeze", [hi, ctx.i64(-1)])],
    { axis: attr.int(-1) },
  );
  const shape = g.op1(
    "Concat",
    [g.op1("Slice", [ctx.shapeOf(packed), ctx.i64(0), ctx.i64(-1)]), ctx.i64(-1)],
    { axis: attr.int(0) },
  );
  return g.op1("Reshape", [pairs, shape]);
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

  const codes = bits === 4 ? nibbles(ctx, packed) : float(packed);
  const q = g.op1("Reshape", [codes, ctx.i64(N, kBlocks, blockSize)]);
  let zp: string;
  if (zeroPoints === "") {
    zp = ctx.f32(2 ** (bits - 1));
  } else {
    const unpacked = bits === 4 ? nibbles(ctx, zeroPoints) : float(zeroPoints);
    // Packed zero points pad each row to whole bytes; keep the first kBlocks.
    const perBlock = g.op1("Slice", [unpacked, ctx.i64(0), ctx.i64(kBlocks), ctx.i64(1)]);
    zp = g.op1("Unsqueeze", [perBlock, ctx.i64(-1)]);
  }
  const w = g.op1("Mul", [g.op1("Sub", [q, zp]), g.op1("Unsqueeze", [scales, ctx.i64(-1)])]);
  const flat = g.op1("Reshape", [w, ctx.i64(N, kBlocks * blockSize)]);
  return kBlocks * blockSize === K ? flat : g.op1("Slice", [flat, ctx.i64(0), ctx.i64(K), ctx.i64(1)]);
}
