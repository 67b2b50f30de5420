/**
 * Property: for every seed, a streamed response's chunks, joined, equal the non-streamed response
 * for the same request, field by field (text, every logprobs field, token ids, finish reasons,
 * usage), and those fields mean what OpenAI and vLLM say. Random requests (completions and chat,
 * n > 1, stop strings, logprobs, multi-byte prompts) go to a real generator serving llama-tiny,
 * whose byte tokenizer splits every multi-byte character over several tokens.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Service } from "@loracast/dev-support/supervisor";
import { completionSchema } from "@loracast/shared/generator-api";
import { createRng, type Rng } from "@loracast/shared/random";
import { type Stack, startServingStack } from "../helpers/stack.ts";

const SEEDS = 40;
/** llama-tiny's byte tokenizer: pad, BOS and EOS decode to nothing. */
const SPECIALS = new Set([0, 1, 2]);
const ALPHABET = ["a", "b", " ", "é", "✓", "中", "😀", "\n", "q", "7"];
/** Bytes for token-id prompts: ASCII, lead bytes, stray continuation bytes, bytes never valid. */
const BYTES = [
  0x61, 0x3a, 0x20, 0xc3, 0xa9, 0xcb, 0xa0, 0xe2, 0x9c, 0x93, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0xc0,
];

type Json = Record<string, unknown>;
type Kind = "completion" | "chat";

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)] as T;

function randomText(rng: Rng, min: number, max: number): string {
  return Array.from({ length: min + rng.int(max - min + 1) }, () => pick(rng, ALPHABET)).join("");
}

/** A random request body (without `stream`). */
function randomRequest(rng: Rng, kind: Kind): Json {
  const logprobs = rng.next() < 0.7 ? rng.int(4) : null;
  const body: Json = {
    model: "llama-tiny",
    max_tokens: 1 + rng.int(24),
    temperature: pick(rng, [0, 0.7, 1, 1.5]),
    seed: rng.int(1_000_000),
    n: 1 + rng.int(3),
    ignore_eos: rng.next() < 0.5,
    return_token_ids: logprobs !== null || rng.next() < 0.5,
  };
  if (kind === "completion") {
    // A batch of prompts now and then; echo where it can stream (without logprobs).
    const r = rng.next();
    body.prompt =
      r < 0.3
        ? [randomText(rng, 1, 8), randomText(rng, 1, 8)]
        : r < 0.5
          ? // Token ids (llama-tiny's are bytes), often not valid UTF-8.
            Array.from({ length: 1 + rng.int(10) }, () => pick(rng, BYTES))
          : randomText(rng, 1, 12);
    if (logprobs !== null) body.logprobs = logprobs;
    else if (rng.next() < 0.7) body.echo = true;
  } else {
    body.messages = [{ role: "user", content: randomText(rng, 1, 12) }];
    if (logprobs !== null) Object.assign(body, { logprobs: true, top_logprobs: logprobs });
  }
  return body;
}

async function post(url: string, body: Json): Promise<Response> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return res;
}

async function sse(res: Response): Promise<Json[]> {
  const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: "));
  const last = events.pop();
  assert.equal(last, "data: [DONE]", "the stream ends with [DONE]");
  return events.map((e) => JSON.parse(e.slice("data: ".length)) as Json);
}

/** Joins a stream's chunks into the shape of the non-streamed response, checking chunk invariants on the way. */
function join(kind: Kind, chunks: Json[], body: Json): Json {
  const first = chunks[0] as Json;
  const includeUsage = (body.stream_options as Json | undefined)?.include_usage === true;
  for (const c of chunks) {
    for (const k of ["id", "created", "model", "system_fingerprint"]) assert.equal(c[k], first[k], k);
    assert.equal(c.object, kind === "chat" ? "chat.completion.chunk" : "text_completion");
    if (!includeUsage) assert.equal("usage" in c, false, "no usage key without include_usage");
  }
  let usage: unknown;
  if (includeUsage) {
    const tail = chunks.pop() as Json;
    assert.deepEqual(tail.choices, [], "the usage chunk has no choices");
    usage = tail.usage;
    for (const c of chunks) assert.equal(c.usage, null, "other chunks carry usage: null");
  }
  const choices = new Map<number, Json>();
  let promptIds: unknown;
  for (const c of chunks) {
    if (c.prompt_token_ids !== undefined) {
      assert.equal(promptIds, undefined, "chat sends prompt_token_ids once");
      promptIds = c.prompt_token_ids;
    }
    for (const ch of c.choices as Json[]) {
      const index = ch.index as number;
      const acc =
        choices.get(index) ??
        ({ index, text: "", tokenIds: [], logprobs: null, finish_reason: null, roles: 0 } as Json);
      choices.set(index, acc);
      assert.equal(acc.finish_reason, null, "nothing follows a choice's finish_reason");
      acc.finish_reason = ch.finish_reason;
      if (kind === "chat") {
        const delta = ch.delta as Json;
        if (delta.role !== undefined) {
          acc.roles = (acc.roles as number) + 1;
          assert.equal(delta.role, "assistant");
          assert.equal(delta.refusal, null);
        }
        acc.text = (acc.text as string) + ((delta.content as string | undefined) ?? "");
      } else {
        acc.text = (acc.text as string) + (ch.text as string);
        if (ch.prompt_token_ids !== undefined) {
          assert.equal(acc.prompt, undefined, "a choice's prompt_token_ids come once");
          acc.prompt = ch.prompt_token_ids;
        }
      }
      if (ch.token_ids !== undefined)
        acc.tokenIds = [...(acc.tokenIds as number[]), ...(ch.token_ids as number[])];
      const lp = ch.logprobs as Json | null;
      if (lp !== null) {
        const prev = (acc.logprobs as Record<string, unknown[]> | null) ?? {};
        acc.logprobs = Object.fromEntries(
          Object.entries(lp).map(([k, v]) => [k, Array.isArray(v) ? [...(prev[k] ?? []), ...v] : v]),
        );
      }
    }
  }
  const ids = body.return_token_ids === true;
  const wantLogprobs = kind === "chat" ? body.logprobs === true : body.logprobs !== undefined;
  const joined = [...choices.values()]
    .sort((a, b) => (a.index as number) - (b.index as number))
    .map((acc) => {
      if (kind === "chat") assert.equal(acc.roles, 1, "one role delta per choice");
      const logprobs = wantLogprobs ? acc.logprobs : null;
      const common = {
        logprobs,
        finish_reason: acc.finish_reason,
        ...(ids ? { token_ids: acc.tokenIds } : {}),
      };
      return kind === "chat"
        ? { index: acc.index, message: { role: "assistant", content: acc.text, refusal: null }, ...common }
        : { index: acc.index, text: acc.text, ...common, ...(ids ? { prompt_token_ids: acc.prompt } : {}) };
    });
  const out: Json = { model: first.model, system_fingerprint: first.system_fingerprint, choices: joined };
  if (includeUsage) out.usage = usage;
  if (kind === "chat" && ids) out.prompt_token_ids = promptIds;
  return out;
}

/** The token text OpenAI shows for one byte token: ASCII as itself, other bytes as `\xHH`, specials as "". */
function byteTokenText(id: number): string {
  if (SPECIALS.has(id)) return "";
  return id < 0x80 ? String.fromCharCode(id) : `\\x${id.toString(16).padStart(2, "0")}`;
}

/**
 * The reference for `text_offset`: for each byte, the index (in code points) of the character of
 * `TextDecoder().decode(bytes)` it belongs to, from whole-prefix decodes alone. A byte that adds no
 * character to the prefix's decoding continues the one before (a U+FFFD placeholder or not);
 * otherwise it starts a new one, after any U+FFFD its arrival turned a broken partial into.
 */
function byteOffsets(bytes: number[]): number[] {
  const chars = (n: number) => [...new TextDecoder().decode(Uint8Array.from(bytes.slice(0, n)))].length;
  return bytes.map((_, p) => (chars(p + 1) === chars(p) ? chars(p) - 1 : chars(p)));
}

/** Each token's offset: its first byte's; a special (no bytes) counts the complete characters before it. */
function tokenOffsets(ids: number[]): number[] {
  const bytes = ids.filter((id) => !SPECIALS.has(id));
  const offsets = byteOffsets(bytes);
  let b = 0;
  return ids.map((id) => {
    if (SPECIALS.has(id))
      return [...new TextDecoder().decode(Uint8Array.from(bytes.slice(0, b)), { stream: true })].length;
    return offsets[b++] as number;
  });
}

/** What the non-streamed response must mean, independently of the stream. */
function checkSemantics(kind: Kind, whole: Json, body: Json): void {
  const usage = whole.usage as Json;
  const choices = whole.choices as Json[];
  const batch = Array.isArray(body.prompt) && typeof body.prompt[0] === "string";
  const prompts = batch ? (body.prompt as string[]).length : 1;
  assert.equal(choices.length, (body.n as number) * prompts);
  let generated = 0;
  let promptTokens = 0;
  for (const ch of choices) {
    const ids = ch.token_ids as number[] | undefined;
    let text = kind === "chat" ? ((ch.message as Json).content as string) : (ch.text as string);
    if (kind === "completion" && body.return_token_ids === true) {
      const promptIds = ch.prompt_token_ids as number[];
      if ((ch.index as number) % (body.n as number) === 0) promptTokens += promptIds.length;
      if (body.echo === true) {
        const echoed = new TextDecoder().decode(Uint8Array.from(promptIds));
        assert.ok(text.startsWith(echoed), "echo: the text starts with the prompt");
        text = text.slice(echoed.length);
      }
    }
    assert.ok(ch.finish_reason === "stop" || ch.finish_reason === "length", String(ch.finish_reason));
    if (ids === undefined) continue;
    generated += ids.length;
    assert.ok(ids.length <= (body.max_tokens as number));
    if (ch.finish_reason === "length") assert.equal(ids.length, body.max_tokens);
    const bytes = ids.filter((id) => !SPECIALS.has(id));
    assert.ok(
      new TextDecoder().decode(Uint8Array.from(bytes)).startsWith(text),
      "text is the decoded tokens, cut at a stop",
    );
    const lp = ch.logprobs as Json | null;
    if (lp === null) continue;
    const top = kind === "chat" ? (body.top_logprobs as number) : (body.logprobs as number);
    if (kind === "chat") {
      const content = lp.content as Json[];
      assert.equal(lp.refusal, null);
      assert.equal(content.length, ids.length);
      content.forEach((e, i) => {
        const id = ids[i] as number;
        assert.deepEqual(e.bytes, SPECIALS.has(id) ? [] : [id], "bytes are the token's true bytes");
        assert.equal(e.token, byteTokenText(id));
        assert.ok((e.top_logprobs as Json[]).length <= top);
        for (const a of e.top_logprobs as Json[])
          assert.equal(a.token, byteTokenText((a.bytes as number[])[0] ?? 0));
      });
    } else {
      assert.deepEqual(lp.tokens, ids.map(byteTokenText));
      assert.deepEqual(
        lp.text_offset,
        tokenOffsets(ids),
        "text_offset: the index of the character each token's first byte belongs to",
      );
      (lp.top_logprobs as Record<string, number>[]).forEach((t, i) => {
        assert.ok(Object.keys(t).length <= top + 1, "at most logprobs + 1 alternatives");
        const own = t[byteTokenText(ids[i] as number)];
        assert.ok(
          own !== undefined && own >= ((lp.token_logprobs as number[])[i] as number) - 1e-6,
          "the sampled token is among them",
        );
      });
    }
  }
  if (body.return_token_ids === true) {
    if (kind === "chat") promptTokens = (whole.prompt_token_ids as number[]).length;
    assert.equal(usage.prompt_tokens, promptTokens, "each prompt counted once");
    assert.equal(usage.completion_tokens, generated);
    assert.equal(usage.total_tokens, promptTokens + generated);
    assert.equal("prompt_token_ids" in usage, false, "prompt ids are not under usage");
  }
  assert.match(whole.system_fingerprint as string, /^fp_[0-9a-f]{16}$/);
}

/**
 * Echo with logprobs (not streamable) over a token-id prompt: the prompt's tokens and the generated
 * ones get the reference offsets, the generated ones past the echoed prompt's characters.
 */
async function checkEchoOffsets(url: string, body: Json): Promise<void> {
  const req = { ...body, n: 1, echo: true, logprobs: 0, return_token_ids: true };
  const ch = completionSchema.parse(await (await post(url, req)).json()).choices[0];
  const promptIds = ch?.prompt_token_ids ?? [];
  const ids = ch?.token_ids ?? [];
  const echoed = [...new TextDecoder().decode(Uint8Array.from(promptIds.filter((id) => !SPECIALS.has(id))))];
  assert.deepEqual(
    ch?.logprobs?.text_offset,
    [...tokenOffsets(promptIds), ...tokenOffsets(ids).map((o) => o + echoed.length)],
    `echo offsets: ${JSON.stringify(req)}`,
  );
}

describe("streamed == non-streamed, field by field, for random requests", () => {
  let stack: Stack;
  let g: Service;

  before(async () => {
    ({ stack, generator: g } = await startServingStack());
  });
  after(() => stack?.stop());

  it(`holds for ${SEEDS} seeds over completions and chat`, { timeout: 240_000 }, async () => {
    let stopsHit = 0;
    const covered = new Set<string>();
    for (let seed = 1; seed <= SEEDS; seed++) {
      const rng = createRng(seed);
      const kind: Kind = seed % 2 === 0 ? "chat" : "completion";
      const url = `${g.url}/v1/${kind === "chat" ? "chat/completions" : "completions"}`;
      const body = randomRequest(rng, kind);
      if (rng.next() < 0.5) {
        // A stop string taken from what this seed generates, so that it is hit.
        const probe = (await (await post(url, body)).json()) as Json;
        const ch = (probe.choices as Json[])[0] as Json;
        const text = kind === "chat" ? ((ch.message as Json).content as string) : (ch.text as string);
        const chars = [...text];
        if (chars.length > 0) {
          const at = rng.int(chars.length);
          body.stop = [chars.slice(at, at + 1 + rng.int(3)).join(""), "zz"];
        }
      }
      const whole = (await (await post(url, body)).json()) as Json;
      const streamBody = { ...body, stream: true, stream_options: { include_usage: rng.next() < 0.6 } };
      const chunks = await sse(await post(url, streamBody));
      const context = `seed ${seed}: ${JSON.stringify(streamBody)}`;
      checkSemantics(kind, whole, body);
      const joined = join(kind, chunks, streamBody);
      const expected: Json = {
        model: whole.model,
        system_fingerprint: whole.system_fingerprint,
        choices: whole.choices,
      };
      if (joined.usage !== undefined) expected.usage = whole.usage;
      if (kind === "chat" && body.return_token_ids === true)
        expected.prompt_token_ids = whole.prompt_token_ids;
      assert.deepEqual(joined, expected, context);
      if (body.stop !== undefined && (whole.choices as Json[]).some((c) => c.finish_reason === "stop"))
        stopsHit++;
      if (kind === "completion" && typeof (body.prompt as unknown[])[0] === "number") {
        await checkEchoOffsets(url, body);
        covered.add("token-id prompts");
      }
      if (body.echo === true) covered.add("echo");
      if (Array.isArray(body.prompt) && typeof body.prompt[0] === "string") covered.add("batched prompts");
      if ((body.n as number) > 1) covered.add("n > 1");
      if (body.logprobs !== undefined) covered.add(`${kind} logprobs`);
    }
    assert.ok(stopsHit >= 3, `stop strings were hit in ${stopsHit} requests`);
    assert.deepEqual([...covered].sort(), [
      "batched prompts",
      "chat logprobs",
      "completion logprobs",
      "echo",
      "n > 1",
      "token-id prompts",
    ]);
  });
});
