import type { MiddlewareHandler } from "hono";

/**
 * Sets `requestId` (from `x-request-id`, or a new UUID) for the error envelope and echoes it back,
 * so a client can quote it when reporting a failure.
 */
export function requestId(newId: () => string): MiddlewareHandler<{ Variables: { requestId: string } }> {
  return async (c, next) => {
    c.set("requestId", c.req.header("x-request-id") ?? newId());
    await next();
    c.header("x-request-id", c.get("requestId"));
  };
}
