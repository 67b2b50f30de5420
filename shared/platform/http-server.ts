import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type HttpBindings, serve } from "@hono/node-server";

/**
 * A listening server: `url` is `http://<host>:<port>` with the port actually bound. `close()` drains:
 * it stops accepting connections, closes idle keep-alive ones, ends every event stream at once
 * (`text/event-stream` responses never end by themselves; an EventSource reconnects with
 * Last-Event-ID), lets every other in-flight request finish, and resolves once the last connection
 * is closed. Requests still running after the drain bound have their connections dropped.
 */
export interface HttpServer {
  url: string;
  close(): Promise<void>;
}

/** How long `close()` waits for in-flight requests by default, in ms: under Kubernetes' 30 s grace period. */
const DEFAULT_DRAIN_MS = 20_000;

/**
 * Serves a fetch handler on host:port (0 picks a free port) and resolves once it listens. `drainMs`
 * bounds how long `close()` lets in-flight requests run (default 20 s).
 */
export function listen(
  fetchHandler: (req: Request, bindings: HttpBindings) => Response | Promise<Response>,
  host: string,
  port: number,
  options: { drainMs?: number } = {},
): Promise<HttpServer> {
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  let draining = false;
  const streams = new Set<ServerResponse>();
  // HTTP/1.1 only (`serve` without createServer), so the bindings are the Node request and response.
  const handler = async (req: Request, bindings: HttpBindings): Promise<Response> => {
    const res = await fetchHandler(req, bindings);
    if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
      const out = bindings.outgoing;
      if (draining) setImmediate(() => out.destroy());
      else {
        streams.add(out);
        out.once("close", () => streams.delete(out));
      }
    }
    return res;
  };
  return new Promise((resolve, reject) => {
    const server = serve(
      { fetch: (req, b) => handler(req, b as HttpBindings), hostname: host, port },
      (info: AddressInfo) => {
        const shown = info.family === "IPv6" ? `[${info.address}]` : info.address;
        resolve({
          url: `http://${shown}:${info.port}`,
          close: () =>
            new Promise<void>((done) => {
              draining = true;
              const bound = setTimeout(() => closeAll(), drainMs);
              server.close(() => {
                clearTimeout(bound);
                done();
              });
              for (const s of streams) s.destroy();
              closeIdle();
            }),
        });
      },
    );
    // A keep-alive connection becomes idle when its request ends: while draining, close it then.
    const closeIdle = (): void => {
      if ("closeIdleConnections" in server) server.closeIdleConnections();
    };
    const closeAll = (): void => {
      if ("closeAllConnections" in server) server.closeAllConnections();
    };
    server.on("request", (_req: IncomingMessage, res: ServerResponse) => {
      res.once("close", () => {
        if (draining) setImmediate(closeIdle);
      });
    });
    server.once("error", reject);
  });
}
