/**
 * Blockwise asymmetric quantization in the layout of ORT's `MatMulNBits` (com.microsoft): weights
 * stay in HF `[out, in]` order, cut into blocks along `in`, with one float scale and one packed
 * zero point per block. The scheme is MLAS `range2scalezp`: the block's range is widened to include
 * zero so that zero is exactly representable.
 */
export type QuantBits = 4 | 8;

/**
 * The `MatMulNBits` layout of an `[n, k]` weight: `kBlocks` = ⌈k / blockSize⌉ blocks per row, each
 * `blobBytes` = blockSize·bits/8 bytes, and `zeroPointCols` bytes of packed zero points per row.
 */
export interface QuantLayout {
  bits: QuantBits;
  blockSize: number;
  /** Output features (rows of W). */
  n: number;
  /** Input features (columns of W). */
  k: number;
  kBlocks: number;
  blobBytes: number;
  zeroPointCols: number;
}

/** One quantized weight: the initializers `MatMulNBits` reads as inputs B, scales and zero_points. */
export interface QuantizedMatrix {
  /** uint8 [n, kBlocks, blobBytes] */
  packed: Uint8Array;
  /** float32 [n, kBlocks] */
  scales: Float32Array;
  /** uint8 [n, zeroPointCols], packed like the weights */
  zeroPoints: Uint8Array;
}

/** The layout of an `[n, k]` weight quantized to `bits` bits in blocks of `blockSize` along k. */
export function quantLayout(n: number, k: number, bits: QuantBits, blockSize: number): QuantLayout {
  const kBlocks = Math.ceil(k / blockSize);
  return {
    bits,
    blockSize,
    n,
    k,
    kBlocks,
    blobBytes: (blockSize * bits) / 8,
    zeroPointCols: Math.ceil((kBlocks * bits) / 8),
  };
}

function put(target: Uint8Array, base: number, index: number, bits: QuantBits, value: number): void {
  if (bits === 8) {
    target[base + index] = value;
    return;
  }
  const at = base + (index >> 1);
  const old = target[at] ?? 0;
  target[at] = index & 1 ? (old & 0x0f) | (value << 4) : (old & 0xf0) | value;
}

function get(source: Uint8Array, base: number, index: number, bits: QuantBits): number {
  if (bits === 8) return source[base + index] ?? 0;
  const byte = source[base + (index >> 1)] ?? 0;
  return index & 1 ? byte >> 4 : byte & 0x0f;
}

/** Quantizes a row-major `[n, k]` float matrix. */
export function quantize(w: Float32Array, layout: QuantLayout): QuantizedMatrix {
  const { n, k, kBlocks, blobBytes, blockSize, bits, zeroPointCols } = layout;
  if (w.length !== n * k) throw new Error(`quantize: ${w.length} values for [${n}, ${k}]`);
  const qmax = 2 ** bits - 1;
  const packed = new Uint8Array(n * kBlocks * blobBytes);
  const scales = new Float32Array(n * kBlocks);
  const zeroPoints = new Uint8Array(n * zeroPointCols);
  for (let row = 0; row < n; row++) {
    for (let blk = 0; blk < kBlocks; blk++) {
      const start = row * k + blk * blockSize;
      const len = Math.min(blockSize, k - blk * blockSize);
      let mn = 0;
      let mx = 0;
      for (let i = 0; i < len; i++) {
        const v = w[start + i] ?? 0;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      }
      let scale = Math.fround((mx - mn) / qmax);
      let zp = 0;
      if (scale === 0) scale = 1;
      else zp = Math.min(qmax, Math.max(0, Math.round(-mn / scale)));
      scales[row * kBlocks + blk] = scale;
      put(zeroPoints, row * zeroPointCols, blk, bits, zp);
      const blobBase = (row * kBlocks + blk) * blobBytes;
      for (let i = 0; i < blockSize; i++) {
        // Padding past `k` takes the zero point, so it dequantizes to exactly 0.
        const q = i < len ? Math.min(qmax, Math.max(0, Math.round((w[start + i] ?? 0) / scale + zp))) : zp;
        put(packed, blobBase, i, bits, q);
      }
    }
  }
  return { packed, scales, zeroPoints };
}

/** The float matrix a quantized one stands for: `(q - zp) * scale`, row-major `[n, k]`. */
export function dequantize(q: QuantizedMatrix, layout: QuantLayout): Float32Array {
  const { n, k, kBlocks, blobBytes, blockSize, bits, zeroPointCols } = layout;
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < k; col++) {
      const blk = Math.floor(col / blockSize);
      const zp = get(q.zeroPoints, row * zeroPointCols, blk, bits);
      const v = get(q.packed, (row * kBlocks + blk) * blobBytes, col % blockSize, bits);
      out[row * k + col] = Math.fround((v - zp) * (q.scales[row * kBlocks + blk] ?? 0));
    }
  }
  return out;
}
