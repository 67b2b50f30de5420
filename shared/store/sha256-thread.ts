/**
 * sha256 of a buffer on a worker thread, so the calling thread can do other work on the same bytes
 * meanwhile (the trainer validates an adapter while its weights are hashed). The worker reads the
 * caller's memory directly when the buffer lives in a SharedArrayBuffer (`sharedBytes`); there is
 * no copy to make and no transfer that would take the bytes away from the caller.
 */
import { EvalWorker } from "../threads/index.ts";
import { sha256Hex } from "./blobs.ts";

/**
 * The worker's program: hashes `bytes` with node's crypto (OpenSSL, the same digest as
 * `sha256Hex`) and answers `{ id, value }` (lowercase hex), or `{ id, error }`.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
parentPort.on("message", ({ id, bytes }) => {
  try {
    parentPort.postMessage({ id, value: createHash("sha256").update(bytes).digest("hex") });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e) });
  }
});
`;

const thread = new EvalWorker<{ bytes: Uint8Array }, string>(WORKER_SOURCE, "sha256");

/**
 * A zeroed buffer of `size` bytes in a SharedArrayBuffer, for bytes that `sha256Concurrent` hashes
 * on its worker without a copy (an allocator for `encodeSafetensors`' `into`).
 */
export function sharedBytes(size: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(size));
}

/**
 * The sha256 of `bytes` (lowercase hex, 64 digits), computed on a worker thread when they live in a
 * SharedArrayBuffer (`sharedBytes`), so the caller's thread is free until the promise settles; the
 * caller must not change the bytes before then. Other buffers are hashed on the calling thread
 * (sending them would copy them, which costs about what hashing them does). Never rejects: should
 * the worker fail, these bytes are hashed on the calling thread and the next call starts a new one.
 */
export function sha256Concurrent(bytes: Uint8Array): Promise<string> {
  if (!(bytes.buffer instanceof SharedArrayBuffer)) return Promise.resolve(sha256Hex(bytes));
  return thread.call({ bytes }).catch(() => sha256Hex(bytes));
}
