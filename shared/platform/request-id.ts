import { AsyncLocalStorage } from "node:async_hooks";
import type { MiddlewareHandler } from "hono";

/** The request a piece of work runs for, carried across awaits (node:async_hooks). */
const context = new AsyncLocalStorage<{ requestId: string }>();

/** A client's own `x-request-id` is kept when it is this short and plain; any other gets a new id. */
const CLIENT_ID = /^[\w.:/+=-]{1,128}$/;

/**
 * Sets `requestId` (from `x-request-id` when it is at most 128 characters of letters, digits and
 * `_.:/+=-`, else a new UUID: it goes into every log line) for the error envelope and echoes it back,
 * so a client can quote it when reporting a failure. The rest of the request runs with it as its
 * context (`currentRequestId`), so that every line logged while serving it carries it; so do lines
 * logged by work the request started (the pull a webhook triggers, the run a request creates).
 */
export function requestId(newId: () => string): MiddlewareHandler<{ Variables: { requestId: string } }> {
  return async (c, next) => {
    const given = c.req.header("x-request-id");
    const id = given !== undefined && CLIENT_ID.test(given) ? given : newId();
    c.set("requestId", id);
    await context.run({ requestId: id }, next);
    c.header("x-request-id", id);
  };
}

/** The id of the request the calling code runs for (see `requestId`), or undefined outside one. */
export function currentRequestId(): string | undefined {
  return context.getStore()?.requestId;
}
