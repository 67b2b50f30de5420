/**
 * A GET over plain HTTP whose socket reads land straight in the caller's buffer, through the
 * `onread` option of `net.connect`.
 *
 * The SDK's body stream hands over a fresh 64 KiB Buffer for every socket read: about 470 of them
 * for a 30 MB adapter, each copied once more into the destination. The external memory they
 * churn drives most of a downloading generator's garbage collection. With eight generators on two
 * cores, that work, not the transfer, set the handoff time. Here the kernel copies into the
 * destination and nothing else is allocated.
 *
 * This path takes plain `http:` endpoints only (the embedded server, MinIO inside a cluster). TLS
 * sockets take no user buffer, so `https:` stays on the SDK.
 */
import { connect } from "node:net";

/** What the server answered, when it answered with a complete HTTP head. */
export type DirectResponse =
  /** 200 with a Content-Length equal to the buffer: the buffer now holds the body. */
  | { kind: "body" }
  /** 200 with another Content-Length: nothing was read into the buffer. */
  | { kind: "size"; size: number }
  /** Any other status; `detail` is the start of the error body. */
  | { kind: "status"; status: number; detail: string }
  /** 200 without a Content-Length (a chunked reply): the caller takes another path. */
  | { kind: "unframed" };

/** The connection failed or broke off. `delivered` body bytes had already landed. */
export class DirectReadError extends Error {
  override readonly name = "DirectReadError";
  constructor(
    message: string,
    readonly delivered: number,
  ) {
    super(message);
  }
}

const HEAD_BYTES = 16 * 1024;

/** Options of `directRead`: cancellation, and how long a silent socket is allowed (ms). */
export interface DirectReadOptions {
  signal?: AbortSignal;
  /** Fails the read when the socket is silent this long. */
  idleTimeoutMs: number;
}

/**
 * GETs `url` and, when the body is exactly `into.byteLength` bytes, reads it into `into`,
 * calling `onData` with each region as it lands (so a hash needs no second pass).
 */
export function directRead(
  url: URL,
  into: Uint8Array,
  onData: (region: Uint8Array) => void,
  options: DirectReadOptions,
): Promise<DirectResponse> {
  return new Promise((resolve, reject) => {
    const head = Buffer.allocUnsafe(HEAD_BYTES);
    let headLength = 0;
    /** Body bytes landed so far; -1 while the head is still arriving. */
    let filled = -1;
    let settled = false;

    const settle = (then: () => void): void => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      then();
    };
    const fail = (message: string): void =>
      settle(() => reject(new DirectReadError(message, Math.max(filled, 0))));
    const onAbort = (): void => fail("aborted");

    const land = (region: Uint8Array): void => {
      onData(region);
      filled += region.byteLength;
      if (filled === into.byteLength) settle(() => resolve({ kind: "body" }));
    };

    const onHead = (): void => {
      const parsed = parseHead(head.subarray(0, headLength));
      if (parsed === null) {
        if (headLength === HEAD_BYTES) fail(`response head exceeds ${HEAD_BYTES} bytes`);
      } else if (typeof parsed === "string") fail(parsed);
      else {
        const early = head.subarray(parsed.bodyStart, headLength);
        const answer = classify(parsed, early, into.byteLength);
        if (answer !== "read") settle(() => resolve(answer));
        else if (early.byteLength > into.byteLength) fail(`more body bytes than the Content-Length`);
        else {
          filled = 0;
          into.set(early, 0);
          if (into.byteLength === 0) settle(() => resolve({ kind: "body" }));
          else if (early.byteLength > 0) land(into.subarray(0, early.byteLength));
        }
      }
    };

    const socket = connect({
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port === "" ? 80 : Number(url.port),
      onread: {
        // Where the next read lands: the rest of the head buffer, then the rest of the body. A
        // read can never run past the body, because the view it gets ends where the body does.
        buffer: () => (settled ? head : filled < 0 ? head.subarray(headLength) : into.subarray(filled)),
        callback: (n: number, buf: Uint8Array) => {
          if (settled) return false;
          try {
            if (filled < 0) {
              headLength += n;
              onHead();
            } else land(buf.subarray(0, n));
          } catch (e) {
            fail(`reading the response failed: ${(e as Error).message}`);
          }
          return true;
        },
      },
    });
    socket.setTimeout(options.idleTimeoutMs, () => fail(`no data for ${options.idleTimeoutMs} ms`));
    socket.on("error", (e) => fail(e.message));
    socket.on("close", () =>
      fail(filled < 0 ? "connection closed before a response" : `connection closed after ${filled} bytes`),
    );
    if (options.signal?.aborted) return fail("aborted");
    options.signal?.addEventListener("abort", onAbort);
    socket.write(
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`,
    );
  });
}

interface Head {
  status: number;
  headers: Map<string, string>;
  bodyStart: number;
}

/** An HTTP/1.x response head; null while it is incomplete, a reason when it is not HTTP. */
function parseHead(bytes: Buffer): Head | string | null {
  const end = bytes.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine = "", ...lines] = bytes.toString("latin1", 0, end).split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
  if (status === undefined) return `not an HTTP/1.x response: ${statusLine.slice(0, 80)}`;
  const headers = new Map(
    lines.map((l) => {
      const colon = l.indexOf(":");
      return [l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim()] as const;
    }),
  );
  return { status: Number(status), headers, bodyStart: end + 4 };
}

/** What a head means for a buffer of `expected` bytes: an answer, or "read" the body into it. */
function classify(head: Head, early: Buffer, expected: number): DirectResponse | "read" {
  if (head.status !== 200) {
    const detail = early.toString("utf8", 0, Math.min(early.byteLength, 300));
    return { kind: "status", status: head.status, detail };
  }
  const length = head.headers.get("content-length");
  if (length === undefined || !/^\d+$/.test(length) || head.headers.has("transfer-encoding")) {
    return { kind: "unframed" };
  }
  const size = Number(length);
  return size === expected ? "read" : { kind: "size", size };
}
