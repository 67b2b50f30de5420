/**
 * Plans where every base weight goes in the external data file before any weight is read. The
 * graph is built against this plan (names, dims, offsets), then the jobs stream the checkpoint
 * through their transform one tensor at a time, so memory stays near the largest single tensor.
 */
import { attr, type ElemType, type GraphBuilder } from "../onnx/index.ts";
import { toFloat16 } from "../safetensors/index.ts";
import { dequantize, type QuantBits, type QuantLayout, quantize, quantLayout } from "./quantize.ts";

/** How the projection matrices (and the LM head) are stored. Norms and embeddings stay float32. */
export type BaseQuant =
  | { kind: "fp32" }
  /**
   * Projections stored as float16 and widened by a `Cast`. ORT folds the cast when the session
   * loads, so on the CPU EP this halves the file, not the memory: MLAS has no x86 fp16 GEMM.
   */
  | { kind: "fp16" }
  /**
   * Blockwise `MatMulNBits`; `emulate` stores the dequantized values as float32 instead (the
   * reference graph). `accuracyLevel` 4 lets ORT quantize activations to int8 inside the kernel:
   * faster for batches, no longer equal to the fp32 reference. @default 0 (float math)
   */
  | { kind: "nbits"; bits: QuantBits; blockSize: number; emulate: boolean; accuracyLevel?: 0 | 4 };

/**
 * A planned projection weight as the graph reads it: one float initializer, or the three of
 * `MatMulNBits` with its layout and accuracy level.
 */
export type Matrix =
  | { kind: "float"; name: string }
  | {
      kind: "nbits";
      packed: string;
      scales: string;
      zeroPoints: string;
      layout: QuantLayout;
      accuracyLevel: number;
    };

/**
 * One write into the external data file: read checkpoint tensor `source` (float32, shape `dims`),
 * transform it (`produce`: cast, quantize) and write `length` bytes at `offset`.
 */
export interface WeightJob {
  /** Checkpoint tensor to read. */
  source: string;
  /** The shape the checkpoint tensor must have. */
  dims: number[];
  offset: number;
  /** Bytes this job writes at `offset`, back to back. */
  length: number;
  produce(w: Float32Array): Uint8Array[];
}

const ALIGN = 64;

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * The external data file, planned before any weight is read: each base weight's initializer (name,
 * dims, 64-byte-aligned offset) is declared on the graph, and a `WeightJob` records how to fill it.
 */
export class WeightPlan {
  readonly jobs: WeightJob[] = [];
  private cursor = 0;
  private readonly matrices = new Map<string, Matrix>();
  private readonly vectors = new Map<string, string>();

  constructor(
    private readonly g: GraphBuilder,
    private readonly quant: BaseQuant,
    readonly location: string,
  ) {}

  /** Total bytes of the external data file. */
  get size(): number {
    return this.cursor;
  }

  private reserve(parts: { name: string; type: ElemType; dims: number[]; length: number }[]): number {
    this.cursor = Math.ceil(this.cursor / ALIGN) * ALIGN;
    const offset = this.cursor;
    for (const p of parts) {
      this.g.initializer(p.name, p.type, p.dims, {
        external: { location: this.location, offset: this.cursor, length: p.length },
      });
      this.cursor += p.length;
    }
    return offset;
  }

  /** A float32 tensor stored as is (norm weights, embeddings, biases). */
  vector(source: string, dims: number[]): string {
    const cached = this.vectors.get(source);
    if (cached !== undefined) return cached;
    const length = dims.reduce((a, b) => a * b, 1) * 4;
    const offset = this.reserve([{ name: source, type: "float32", dims, length }]);
    this.jobs.push({ source, dims, offset, length, produce: (w) => [bytes(w)] });
    this.vectors.set(source, source);
    return source;
  }

  /** A `[n, k]` projection weight in the plan's storage format. */
  matrix(source: string, n: number, k: number): Matrix {
    const cached = this.matrices.get(source);
    if (cached !== undefined) return cached;
    const q = this.quant;
    let m: Matrix;
    if (q.kind === "fp32") {
      m = { kind: "float", name: this.vector(source, [n, k]) };
    } else if (q.kind === "fp16") {
      const name = `${source}.f16`;
      const length = n * k * 2;
      const offset = this.reserve([{ name, type: "float16", dims: [n, k], length }]);
      this.jobs.push({ source, dims: [n, k], offset, length, produce: (w) => [bytes(toFloat16(w))] });
      m = { kind: "float", name: this.g.op1("Cast", [name], { to: attr.int(1) }) };
    } else {
      const layout = quantLayout(n, k, q.bits, q.blockSize);
      if (q.emulate) {
        const name = `${source}.dequantized`;
        const length = n * k * 4;
        const offset = this.reserve([{ name, type: "float32", dims: [n, k], length }]);
        this.jobs.push({
          source,
          dims: [n, k],
          offset,
          length,
          produce: (w) => [bytes(dequantize(quantize(w, layout), layout))],
        });
        m = { kind: "float", name };
      } else {
        const names = {
          packed: `${source}.q${q.bits}`,
          scales: `${source}.scales`,
          zeroPoints: `${source}.zero_points`,
        };
        const sizes = [
          n * layout.kBlocks * layout.blobBytes,
          n * layout.kBlocks * 4,
          n * layout.zeroPointCols,
        ];
        const offset = this.reserve([
          {
            name: names.packed,
            type: "uint8",
            dims: [n, layout.kBlocks, layout.blobBytes],
            length: sizes[0] ?? 0,
          },
          { name: names.scales, type: "float32", dims: [n, layout.kBlocks], length: sizes[1] ?? 0 },
          { name: names.zeroPoints, type: "uint8", dims: [n, layout.zeroPointCols], length: sizes[2] ?? 0 },
        ]);
        this.jobs.push({
          source,
          dims: [n, k],
          offset,
          length: sizes.reduce((a, b) => a + b, 0),
          produce: (w) => {
            const qm = quantize(w, layout);
            return [qm.packed, bytes(qm.scales), qm.zeroPoints];
          },
        });
        m = { kind: "nbits", ...names, layout, accuracyLevel: q.accuracyLevel ?? 0 };
      }
    }
    this.matrices.set(source, m);
    return m;
  }
}
