import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { createRng, type Rng } from "../random/index.ts";
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from "./index.ts";

const FIXTURE = join(fixture("qwen2-tiny"), "adapter", "adapter_model.safetensors");

/** Mutations that hit the header, the length prefix and the tail, where a reader is most likely wrong. */
function mutate(rng: Rng, seed: Uint8Array, headerEnd: number): Uint8Array {
  const buf = new Uint8Array(seed);
  const kind = rng.int(6);
  const at = (limit: number) => rng.int(Math.max(1, limit));
  switch (kind) {
    case 0:
      for (let i = 0, n = 1 + rng.int(8); i < n; i++) buf[at(headerEnd)] = rng.int(256);
      return buf;
    case 1:
      return buf.subarray(0, at(buf.length));
    case 2:
      buf[at(8)] = rng.int(256);
      return buf;
    case 3: {
      // Swap a digit in the header for another, which shifts offsets and shapes plausibly.
      const text = new TextDecoder().decode(buf.subarray(8, headerEnd));
      const digits = [...text.matchAll(/\d/g)];
      const d = digits[rng.int(digits.length)];
      if (d?.index !== undefined) buf[8 + d.index] = 0x30 + rng.int(10);
      return buf;
    }
    case 4: {
      const out = new Uint8Array(buf.length + 1 + rng.int(64));
      out.set(buf);
      return out;
    }
    default:
      for (let i = 0, n = 1 + rng.int(32); i < n; i++) buf[at(buf.length)] = rng.int(256);
      return buf;
  }
}

describe("safetensors fuzzing", () => {
  it("never throws anything but a typed refusal, and whatever it accepts is self-consistent", () => {
    const seeds = [
      new Uint8Array(readFileSync(FIXTURE)),
      encodeSafetensors({
        a: { dtype: "F32", shape: [3, 2], data: new Float32Array(6) },
        b: { dtype: "I8", shape: [5], data: new Int8Array(5) },
      }),
    ];
    const rng = createRng(20261126);
    let refused = 0;
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      const seed = seeds[i % seeds.length] as Uint8Array;
      const headerEnd = 8 + Number(new DataView(seed.buffer, seed.byteOffset).getBigUint64(0, true));
      const input = mutate(rng, seed, headerEnd);
      const r = decodeSafetensors(input);
      if (!r.ok) {
        assert.ok(r.error instanceof SafetensorsError);
        refused++;
        continue;
      }
      accepted++;
      let covered = 0;
      for (const t of r.value.tensors.values()) {
        assert.ok(t.bytes.byteOffset - input.byteOffset >= r.value.dataStart);
        assert.ok(t.bytes.byteOffset - input.byteOffset + t.bytes.byteLength <= input.byteLength);
        covered += t.bytes.byteLength;
        assert.equal(t.array().length, t.size);
      }
      assert.equal(covered, input.byteLength - r.value.dataStart);
    }
    // Both outcomes must occur, or the mutations are not exercising the validator.
    assert.ok(refused > 1000, `refused ${refused}`);
    assert.ok(accepted > 100, `accepted ${accepted}`);
  });
});
