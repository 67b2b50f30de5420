/**
 * One long-lived worker thread running a small program given as source text (plain CommonJS,
 * evaluated as is: no loader, no file to ship, so bundles need nothing beside them), answering
 * each request by id. Requests carry views of SharedArrayBuffers, so the worker reads the caller's
 * memory with no copy and no transfer. The thread starts on the first request, is unref'd while
 * nothing is owed (it never keeps the process alive), and a thread that dies fails what it owed;
 * the next request starts a new one.
 */
import { Worker } from "node:worker_threads";

/** What the program answers: `{ id, value }`, or `{ id, error }` (a message). */
type Answer<T> = { id: number; value: T } | { id: number; error: string };

/**
 * A worker thread running `source`, which must answer each `{ id, ...request }` message with
 * `{ id, value }` or `{ id, error }` on `parentPort` (node:worker_threads).
 */
export class EvalWorker<Request extends object, T> {
  private worker: Worker | null = null;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (value: T) => void; reject: (e: Error) => void }>();

  /** @param source the worker's program; `name` names it in errors. */
  constructor(
    private readonly source: string,
    private readonly name: string,
  ) {}

  /** Sends `request` to the thread; settles with its answer, or rejects when it answers an error or dies. */
  call(request: Request): Promise<T> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Keeps the process alive only while an answer is owed.
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ ...request, id });
    });
  }

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    // execArgv []: the parent's loaders (tsx) are not needed by plain CommonJS, and cost a start.
    const worker = new Worker(this.source, { eval: true, execArgv: [] });
    worker.unref();
    worker.on("message", (a: Answer<T>) => this.settle(a));
    const fail = (e: Error): void => {
      if (this.worker === worker) this.worker = null;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`${this.name} worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private settle(a: Answer<T>): void {
    const p = this.pending.get(a.id);
    if (p === undefined) return;
    this.pending.delete(a.id);
    if (this.pending.size === 0) this.worker?.unref();
    if ("value" in a) p.resolve(a.value);
    else p.reject(new Error(`${this.name} worker: ${a.error}`));
  }
}
