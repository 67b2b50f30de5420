/**
 * Issue 15, round b, item 5: a trainer killed (SIGKILL) in the middle of an upload leaves the
 * spooled files behind; they are under TRAINER_DATA_DIR/uploads (not the system temp dir), and
 * the next trainer clears them when it starts, saying how much. Real processes: the embedded S3
 * server and the trainer; the upload is a real multipart body that never ends.
 */
import assert from "node:assert/strict";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { eventually } from "@loracast/dev-support/supervisor";
import { randomAdapter } from "../helpers/adapters.ts";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";

const WAIT_MS = 60_000;

describe("upload leftovers", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  it("are spooled under TRAINER_DATA_DIR/uploads and cleared by the next trainer after a SIGKILL", async () => {
    const uploads = join(stack.dir, "trainer", "uploads");
    const files = randomAdapter(LLAMA_CONFIG, 1, 8, ["q_proj", "k_proj", "v_proj", "o_proj"]);
    const boundary = "leftover-boundary";
    const part = (name: string) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}"\r\n` +
      "Content-Type: application/octet-stream\r\n\r\n";
    const enc = new TextEncoder();
    // Both files whole, then a part that never ends: the trainer has spooled both and waits.
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(enc.encode(part("adapter_config.json")));
        controller.enqueue(files.config);
        controller.enqueue(enc.encode(`\r\n${part("adapter_model.safetensors")}`));
        controller.enqueue(files.weights);
        controller.enqueue(enc.encode(`\r\n${part("more")}`));
      },
    });
    const aborted = new AbortController();
    const pending = fetch(`${stack.trainer.url}/v1/runs/leftover/adapters`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKEN}`,
        "content-type": `multipart/form-data; boundary=${boundary}`,
      },
      body,
      duplex: "half",
      signal: aborted.signal,
    } as RequestInit).catch(() => null);
    const spooled = await eventually(
      "the weights are spooled under TRAINER_DATA_DIR/uploads",
      async () => {
        for (const dir of readdirSync(uploads, { withFileTypes: true }).filter((d) => d.isDirectory())) {
          const path = join(uploads, dir.name, "adapter_model.safetensors");
          try {
            if (statSync(path).size >= files.weights.byteLength) return path;
          } catch {
            // not there yet
          }
        }
        return undefined;
      },
      WAIT_MS,
      50,
    );
    stack.trainer.proc.kill("SIGKILL");
    await stack.trainer.stop();
    aborted.abort();
    await pending;
    assert.ok(statSync(spooled).size >= files.weights.byteLength, "the kill left the spooled file");

    const trainer = await stack.startTrainer();
    const line = trainer.logs.find((l) => l.msg === "upload leftovers cleared");
    assert.equal(line?.dir, uploads);
    assert.equal(line?.entries, 1);
    assert.ok(Number(line?.bytes) >= files.weights.byteLength + files.config.byteLength, String(line?.bytes));
    assert.deepEqual(readdirSync(uploads), []);
  });
});
