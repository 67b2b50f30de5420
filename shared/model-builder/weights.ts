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
 * One write into the external data file: read the checkpoint tensors `sources` (float32, each of
 * its `dims`), transform them (`produce`: concatenate rows, cast, quantize) and write `length` bytes
 * at `offset`. A fused projection reads several sources; every other weight reads one.
 */
export interface WeightJob {
  /** Checkpoint tensors to read, and the shape each must have. */
  sources: { name: string; dims: number[] }[];
  offset: number;
  /** Bytes this job writes at `offset`, back to back. */
  length: number;
  produce(ws: Float32Array[]): Uint8Array[];
}

/** One initializer of a stored weight: its name, element type, dims and bytes. */
interface Part {
  name: string;
  type: ElemType;
  dims: number[];
  length: number;
}

/** Where a weight's initializers lie in the data file, in order. */
type Placement = (Part & { offset: number })[];

/** One projection of a fused weight: its checkpoint tensor and its rows (output features). */
export interface FusedPart {
  source: string;
  rows: number;
}

const ALIGN = 64;

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The rows of several row-major matrices (or vectors) one after another. */
function concatRows(ws: Float32Array[]): Float32Array {
  if (ws.length === 1 && ws[0] !== undefined) return ws[0];
  const out = new Float32Array(ws.reduce((a, w) => a + w.length, 0));
  let at = 0;
  for (const w of ws) {
    out.set(w, at);
    at += w.length;
  }
  return out;
}

/**
 * The external data file, planned before any weight is read: each base weight's initializer (name,
 * dims, 64-byte-aligned offset) is declared on the graph, and a `WeightJob` records how to fill it.
 *
 * A fused weight (`fusedMatrix`) stores the rows of several projections as one, so one node
 * computes them all. Every stored format keeps rows independent (`MatMulNBits` quantizes per row
 * and block, packing and zero points included), so each projection's rows are a contiguous byte
 * range of every initializer of the fused weight. A plan made `over` another plan declares no
 * bytes of its own: its initializers point into the other plan's file, whole weights or one
 * projection's rows of a fused one, so graphs of different layouts (the fused decoder, the
 * per-module training graph) share one data file.
 */
export class WeightPlan {
  readonly jobs: WeightJob[] = [];
  private cursor = 0;
  private readonly matrices = new Map<string, Matrix>();
  private readonly vectors = new Map<string, string>();
  /**
   * Every weight this plan stored, and every projection inside a fused one, by the name of its
   * first initializer (a tied embedding is stored twice: float32, and as the LM head's format).
   */
  private readonly placements = new Map<string, Placement>();

  /**
   * @param over Declare initializers into `over`'s data file instead of planning one; asking for a
   *   weight `over` did not store throws (a builder bug).
   */
  constructor(
    private readonly g: GraphBuilder,
    private readonly quant: BaseQuant,
    readonly location: string,
    private readonly over: WeightPlan | null = null,
  ) {}

  /** Total bytes of the external data file. */
  get size(): number {
    return this.cursor;
  }

  /** Declares `parts` on the graph: new bytes at the cursor, or where `over` placed them. */
  private place(parts: Part[]): Placement {
    const key = parts[0]?.name ?? "";
    let placed: Placement;
    if (this.over === null) {
      this.cursor = Math.ceil(this.cursor / ALIGN) * ALIGN;
      placed = parts.map((p) => {
        const at = { ...p, offset: this.cursor };
        this.cursor += p.length;
        return at;
      });
      this.placements.set(key, placed);
    } else {
      const found = this.over.placements.get(key);
      const same = (a: Part, b: Part | undefined) =>
        b !== undefined && a.name === b.name && a.length === b.length && a.dims.join() === b.dims.join();
      if (found === undefined || found.length !== parts.length || !parts.every((p, i) => same(p, found[i])))
        throw new Error(`weight ${key} is not stored as this graph reads it`);
      placed = found;
    }
    for (const p of placed) {
      this.g.initializer(p.name, p.type, p.dims, {
        external: { location: this.location, offset: p.offset, length: p.length },
      });
    }
    return placed;
  }

  private addJob(
    placed: Placement,
    sources: { name: string; dims: number[] }[],
    produce: WeightJob["produce"],
  ) {
    if (this.over !== null) return;
    const offset = placed[0]?.offset ?? this.cursor;
    this.jobs.push({ sources, offset, length: placed.reduce((a, p) => a + p.length, 0), produce });
  }

  /** A float32 tensor stored as is (norm weights, embeddings, biases). */
  vector(source: string, dims: number[]): string {
    const cached = this.vectors.get(source);
    if (cached !== undefined) return cached;
    const length = dims.reduce((a, b) => a * b, 1) * 4;
    const placed = this.place([{ name: source, type: "float32", dims, length }]);
    this.addJob(placed, [{ name: source, dims }], (ws) => [bytes(concatRows(ws))]);
    this.vectors.set(source, source);
    return source;
  }

  /**
   * A float32 tensor the builder computes rather than reads (the rotary tables of
   * `attention-gqa.ts`), stored once in the data file under `name`; `values` runs when the data file
   * is written, and must give `dims`' product of elements.
   */
  computed(name: string, dims: number[], values: () => Float32Array): string {
    const cached = this.vectors.get(name);
    if (cached !== undefined) return cached;
    const length = dims.reduce((a, b) => a * b, 1) * 4;
    const placed = this.place([{ name, type: "float32", dims, length }]);
    this.addJob(placed, [], () => [bytes(values())]);
    this.vectors.set(name, name);
    return name;
  }

  /**
   * The 1-D tensors `parts` (biases, `rows` values each) stored as one, named `name`; each part
   * stays readable alone by a plan `over` this one.
   */
  fusedVector(name: string, parts: FusedPart[]): string {
    if (parts.length === 1 && parts[0] !== undefined) return this.vector(parts[0].source, [parts[0].rows]);
    const cached = this.vectors.get(name);
    if (cached !== undefined) return cached;
    const total = parts.reduce((a, p) => a + p.rows, 0);
    const placed = this.place([{ name, type: "float32", dims: [total], length: total * 4 }]);
    this.addJob(
      placed,
      parts.map((p) => ({ name: p.source, dims: [p.rows] })),
      (ws) => [bytes(concatRows(ws))],
    );
    this.placeParts(placed, parts, total, (p) => [
      { name: p.source, type: "float32", dims: [p.rows], length: p.rows * 4 },
    ]);
    this.vectors.set(name, name);
    return name;
  }

  /** A `[n, k]` projection weight in the plan's storage format. */
  matrix(source: string, n: number, k: number): Matrix {
    return this.fusedMatrix(source, [{ source, rows: n }], k);
  }

  /**
   * The `[Σrows, k]` weight of the projections `parts` (HF `[out, in]` weights sharing `k` input
   * features), rows concatenated in order and stored as one weight named `name`. One part is the
   * plain weight under its own name.
   */
  fusedMatrix(name: string, parts: FusedPart[], k: number): Matrix {
    const key = parts.length === 1 ? (parts[0]?.source ?? name) : name;
    const cached = this.matrices.get(key);
    if (cached !== undefined) return cached;
    const n = parts.reduce((a, p) => a + p.rows, 0);
    const q = this.quant;
    const sources = parts.map((p) => ({ name: p.source, dims: [p.rows, k] }));
    let m: Matrix;
    if (q.kind === "fp32" && parts.length === 1) {
      // Stored as a vector: a tied embedding is both, and stays one initializer.
      m = { kind: "float", name: this.vector(key, [n, k]) };
    } else {
      const placed = this.place(this.parts(key, n, k));
      const produce = this.producer(n, k);
      this.addJob(placed, sources, (ws) => produce(concatRows(ws)));
      if (parts.length > 1) this.placeParts(placed, parts, n, (p) => this.parts(p.source, p.rows, k));
      const names = placed.map((p) => p.name);
      if (q.kind === "nbits" && !q.emulate) {
        const [packed = "", scales = "", zeroPoints = ""] = names;
        m = {
          kind: "nbits",
          packed,
          scales,
          zeroPoints,
          layout: quantLayout(n, k, q.bits, q.blockSize),
          accuracyLevel: q.accuracyLevel ?? 0,
        };
      } else if (q.kind === "fp16") {
        m = { kind: "float", name: this.g.op1("Cast", [names[0] ?? ""], { to: attr.int(1) }) };
      } else {
        m = { kind: "float", name: names[0] ?? "" };
      }
    }
    this.matrices.set(key, m);
    return m;
  }

  /** The initializers a `[n, k]` weight named `source` is stored as, in file order. */
  private parts(source: string, n: number, k: number): Part[] {
    const q = this.quant;
    if (q.kind === "fp32") return [{ name: source, type: "float32", dims: [n, k], length: n * k * 4 }];
    if (q.kind === "fp16")
      return [{ name: `${source}.f16`, type: "float16", dims: [n, k], length: n * k * 2 }];
    if (q.emulate)
      return [{ name: `${source}.dequantized`, type: "float32", dims: [n, k], length: n * k * 4 }];
    const layout = quantLayout(n, k, q.bits, q.blockSize);
    return [
      {
        name: `${source}.q${q.bits}`,
        type: "uint8",
        dims: [n, layout.kBlocks, layout.blobBytes],
        length: n * layout.kBlocks * layout.blobBytes,
      },
      {
        name: `${source}.scales`,
        type: "float32",
        dims: [n, layout.kBlocks],
        length: n * layout.kBlocks * 4,
      },
      {
        name: `${source}.zero_points`,
        type: "uint8",
        dims: [n, layout.zeroPointCols],
        length: n * layout.zeroPointCols,
      },
    ];
  }

  /** How a `[n, k]` float matrix becomes the bytes of its parts. */
  private producer(n: number, k: number): (w: Float32Array) => Uint8Array[] {
    const q = this.quant;
    if (q.kind === "fp16") return (w) => [bytes(toFloat16(w))];
    if (q.kind !== "nbits") return (w) => [bytes(w)];
    const layout = quantLayout(n, k, q.bits, q.blockSize);
    if (q.emulate) return (w) => [bytes(dequantize(quantize(w, layout), layout))];
    return (w) => {
      const qm = quantize(w, layout);
      return [qm.packed, bytes(qm.scales), qm.zeroPoints];
    };
  }

  /**
   * Records where each part of a fused weight lies: every initializer is rows-major, so part i's
   * bytes of initializer j start at its first row times the initializer's bytes per row.
   */
  private placeParts(
    placed: Placement,
    parts: FusedPart[],
    total: number,
    partsOf: (p: FusedPart) => Part[],
  ) {
    let row = 0;
    for (const p of parts) {
      const own = partsOf(p);
      this.placements.set(
        own[0]?.name ?? p.source,
        own.map((o, j) => {
          const whole = placed[j];
          if (whole === undefined) throw new Error(`fused weight has no initializer ${j}`);
          return { ...o, offset: whole.offset + (row * whole.length) / total };
        }),
      );
      row += p.rows;
    }
  }
}
