import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";

/**
 * A listening server: `url` is `http://<host>:<port>` with the port actually bound; `close()` stops
 * accepting, drops open connections and resolves once the server is closed.
 */
export interface HttpServer {
  url: string;
  close(): Promise<void>;
}

/** Serves a fetch handler on host:port (0 picks a free port) and resolves once it listens. */
export function listen(
  fetchHandler: (req: Request) => Response | Promise<Response>,
  host: string,
  port: number,
): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: fetchHandler, hostname: host, port }, (info: AddressInfo) => {
      const shown = info.family === "IPv6" ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${shown}:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            if ("closeAllConnections" in server) server.closeAllConnections();
          }),
      });
    });
    server.once("error", reject);
  });
}
