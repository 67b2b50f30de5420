/** Worker threads that answer requests over shared memory: the publish path's hash and float scan. */
export { EvalWorker } from "./eval-worker.ts";
