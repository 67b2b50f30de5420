/** Reading a server-sent event stream: each event's `data` lines joined and parsed as JSON. */
export async function* readSse(url: string, signal?: AbortSignal): AsyncGenerator<unknown> {
  const res = await fetch(url, { signal: signal ?? null });
  if (!res.ok || res.body === null) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const data = buffer
        .slice(0, end)
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trim())
        .join("");
      buffer = buffer.slice(end + 2);
      if (data !== "") yield JSON.parse(data);
    }
  }
}
