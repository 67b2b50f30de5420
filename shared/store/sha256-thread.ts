/**
 * sha256 of a buffer on a worker thread, so the calling thread can do other work on the same bytes
 * meanwhile (the trainer validates an adapter while its weights are hashed). The worker reads the
 * caller's memory directly when the buffer lives in a SharedArrayBuffer (`sharedBytes`); there is
 * no copy to make and no transfer that would take the bytes away from the caller.
 */
import { Worker } from "node:worker_threads";
import { sha256Hex } from "./blobs.ts";

/**
 * The worker's whole program, plain CommonJS evaluated as is: no loader, no file to ship. It hashes
 * `bytes` with node's crypto (OpenSSL, the same digest as `sha256Hex`) and answers `{ id, hex }`,
 * or `{ id, error }`.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
parentPort.on("message", ({ id, bytes }) => {
  try {
    parentPort.postMessage({ id, hex: createHash("sha256").update(bytes).digest("hex") });
  } catch (e) {
    parentPort.postMessage({ id, error: String(e) });
  }
});
`;

type Answer = { id: number; hex: string } | { id: number; error: string };

/** One lazily started worker for the process, unref'd so that it never keeps the process alive. */
class HashThread {
  private worker: Worker | null = null;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (hex: string) => void; reject: (e: Error) => void }
  >();

  hash(bytes: Uint8Array): Promise<string> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Keeps the process alive only while an answer is owed.
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ id, bytes });
    });
  }

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    // execArgv []: the parent's loaders (tsx) are not needed by plain CommonJS, and cost a start.
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    worker.unref();
    worker.on("message", (a: Answer) => this.settle(a));
    // A worker that dies fails what it owed; the next call starts a new one.
    const fail = (e: Error): void => {
      if (this.worker === worker) this.worker = null;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`sha256 worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private settle(a: Answer): void {
    const p = this.pending.get(a.id);
    if (p === undefined) return;
    this.pending.delete(a.id);
    if (this.pending.size === 0) this.worker?.unref();
    if ("hex" in a) p.resolve(a.hex);
    else p.reject(new Error(`sha256 worker: ${a.error}`));
  }
}

const thread = new HashThread();

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
  return thread.hash(bytes).catch(() => sha256Hex(bytes));
}
