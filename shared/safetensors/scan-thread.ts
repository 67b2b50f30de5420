/**
 * `scanFloats` of every tensor of a decoded file, the F32 ones on a worker thread when the file
 * lives in a SharedArrayBuffer: the trainer's publisher checks the weights it is about to upload
 * there while its own thread does other work (the run loop's session feeds), beside the sha256
 * worker (shared/store `sha256Concurrent`) reading the same bytes.
 */
import { EvalWorker } from "../threads/index.ts";
import type { SafetensorsFile, TensorView } from "./decode.ts";
import { type FloatScan, float32Scan, largestMaskedWord, scanFloats } from "./finite.ts";

/**
 * The worker's program: for each `[byteOffset, words]` pair of `ranges`, `largestMaskedWord` of
 * those int32 words of `buffer`; answers `{ id, value }` (one number per pair) or `{ id, error }`.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const largestMaskedWord = (${largestMaskedWord.toString()});
parentPort.on("message", ({ id, buffer, ranges }) => {
  try {
    const value = [];
    for (let i = 0; i < ranges.length; i += 2) {
      value.push(largestMaskedWord(new Int32Array(buffer, ranges[i], ranges[i + 1])));
    }
    parentPort.postMessage({ id, value });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e) });
  }
});
`;

const thread = new EvalWorker<{ buffer: SharedArrayBuffer; ranges: number[] }, number[]>(
  WORKER_SOURCE,
  "float scan",
);

/** An F32 tensor whose words a worker can read in place: in shared memory, 4-byte aligned. */
const onWorker = (t: TensorView): boolean =>
  t.dtype === "F32" && t.bytes.buffer instanceof SharedArrayBuffer && t.bytes.byteOffset % 4 === 0;

/**
 * `scanFloats` of each of `file`'s tensors, by name. The F32 tensors in a SharedArrayBuffer are
 * scanned on a worker thread (the bytes must not change until the promise settles); the rest, and
 * all of them should the worker fail, on this thread. Never rejects for the worker's sake.
 */
export async function scanFloatsConcurrent(file: SafetensorsFile): Promise<Map<string, FloatScan>> {
  const scans = new Map<string, FloatScan>();
  const shared = [...file.tensors.values()].filter(onWorker);
  const first = shared[0];
  const words =
    first === undefined
      ? null
      : await thread
          .call({
            buffer: first.bytes.buffer as SharedArrayBuffer,
            ranges: shared.flatMap((t) => [t.bytes.byteOffset, t.bytes.byteLength >>> 2]),
          })
          .catch(() => null);
  // One file's tensors share one buffer; `words` answers `shared` in order.
  shared.forEach((t, i) => {
    const largest = words?.[i];
    if (largest !== undefined) scans.set(t.name, float32Scan(t.bytes, largest));
  });
  for (const t of file.tensors.values()) if (!scans.has(t.name)) scans.set(t.name, scanFloats(t));
  return scans;
}
