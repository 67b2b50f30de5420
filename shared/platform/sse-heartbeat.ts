/**
 * Keep-alive for server-sent event streams. A stream that sends nothing for a while (a training run
 * between steps, a request queued for a batch slot) is cut by whatever times out idle bodies on the
 * way: undici's `bodyTimeout` (300 s, Node's fetch), proxies and load balancers (often 60 s). An SSE
 * comment line keeps bytes flowing, and every conforming client drops it unseen (WHATWG HTML,
 * "Server-sent events": a line starting with a colon is ignored); it is what sse-starlette and
 * most SSE servers send.
 */
import type { SSEStreamingApi } from "hono/streaming";
import { z } from "zod";

/** The comment event a heartbeat writes: one comment line and the blank line that ends an event. */
export const SSE_HEARTBEAT = ": ping\n\n";

/**
 * An environment variable holding the seconds between heartbeats on an event stream: 15 by
 * default; from 0.1 (no busy loop) to 120 (well under undici's 300 s body timeout).
 */
export const sseHeartbeatSeconds = z.coerce.number().min(0.1).max(120).default(15);

/**
 * Writes `SSE_HEARTBEAT` to `stream` every `intervalMs` milliseconds until the stream is aborted
 * (the client went away) or the returned function is called (call it when the stream ends). A
 * heartbeat is skipped while the previous one is still queued, so a client that stops reading
 * holds at most one.
 */
export function startSseHeartbeat(stream: SSEStreamingApi, intervalMs: number): () => void {
  let queued = false;
  const timer = setInterval(() => {
    if (queued || stream.closed || stream.aborted) return;
    queued = true;
    // StreamingApi.write swallows write errors (a closed stream); the next tick sees `closed`.
    void stream.write(SSE_HEARTBEAT).finally(() => {
      queued = false;
    });
  }, intervalMs);
  const stop = (): void => clearInterval(timer);
  stream.onAbort(stop);
  return stop;
}
