import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  chatFields,
  completionFields,
  type Endpoint,
  MESSAGE_FIELDS,
  PARAMETERS,
  parseRequest,
  refusedParameter,
  renderMessageFieldTable,
  renderParameterTable,
  tableCells,
} from "./index.ts";

const ENDPOINTS: Endpoint[] = ["completions", "chat"];
const REQUIRED = {
  completions: { model: "m", prompt: "hi" },
  chat: { model: "m", messages: [{ role: "user", content: "hi" }] },
} as const;

/** A value each refused parameter could carry that asks for something. */
const SOMETHING: Record<string, unknown> = {
  tools: [{ type: "function", function: { name: "f" } }],
  tool_choice: "auto",
  functions: [{ name: "f" }],
  function_call: "auto",
  response_format: { type: "json_object" },
  modalities: ["text", "audio"],
  store: true,
  metadata: { k: "v" },
  service_tier: "flex",
  echo: true,
  use_beam_search: true,
  length_penalty: 2,
  include_stop_str_in_output: true,
  skip_special_tokens: false,
  spaces_between_special_tokens: false,
  bad_words: ["x"],
  continue_final_message: true,
  priority: 1,
  suffix: "end",
  parallel_tool_calls: "yes",
};

describe("request parameter registry", () => {
  it("lists each parameter once per endpoint", () => {
    for (const e of ENDPOINTS) {
      const names = PARAMETERS.filter((p) => p.endpoints.includes(e)).map((p) => p.name);
      assert.deepEqual(names, [...new Set(names)], e);
    }
  });

  it("the schemas parse exactly the implemented parameters", () => {
    const shapes = { completions: completionFields.shape, chat: chatFields.shape };
    for (const e of ENDPOINTS) {
      const implemented = PARAMETERS.filter((p) => p.endpoints.includes(e) && p.status === "implemented")
        .map((p) => p.name)
        .sort();
      assert.deepEqual(Object.keys(shapes[e]).sort(), implemented, e);
    }
  });

  it("docs/api.md carries the registry's table, unchanged", () => {
    const doc = readFileSync(join(import.meta.dirname, "../../../../../docs/api.md"), "utf8");
    const begin = "<!-- parameters:begin -->\n";
    const end = "\n<!-- parameters:end -->";
    const table = doc.slice(doc.indexOf(begin) + begin.length, doc.indexOf(end));
    assert.ok(doc.includes(begin) && doc.includes(end), "docs/api.md has the table markers");
    assert.deepEqual(
      tableCells(table),
      tableCells(renderParameterTable()),
      "regenerate with: npm run docs:api",
    );
    const from = doc.indexOf("<!-- message-fields:begin -->\n");
    const to = doc.indexOf("\n<!-- message-fields:end -->");
    assert.ok(from >= 0 && to > from, "docs/api.md has the message-field markers");
    assert.deepEqual(
      tableCells(doc.slice(from + "<!-- message-fields:begin -->\n".length, to)),
      tableCells(renderMessageFieldTable()),
      "regenerate with: npm run docs:api",
    );
  });

  it("refuses every refused parameter by name, and accepts null and the values that ask for nothing", () => {
    for (const p of PARAMETERS.filter((x) => x.status === "refused")) {
      for (const e of p.endpoints) {
        const value = SOMETHING[p.name] ?? "x";
        const r = parseRequest({ ...REQUIRED[e], [p.name]: value }, e);
        assert.ok(!r.ok, `${e} ${p.name}=${JSON.stringify(value)} is refused`);
        assert.equal(r.error.param, p.name);
        assert.equal(r.error.code, "unsupported_parameter");
        assert.equal(refusedParameter({ [p.name]: null }, e), null, `${p.name}: null is absent`);
      }
    }
    for (const [e, name, value] of [
      ["chat", "tool_choice", "none"],
      ["chat", "tools", []],
      ["chat", "response_format", { type: "text" }],
      ["completions", "response_format", { type: "text" }],
      ["chat", "store", false],
      ["completions", "suffix", ""],
    ] as const) {
      assert.ok(
        parseRequest({ ...REQUIRED[e], [name]: value }, e).ok,
        `${e} ${name}=${JSON.stringify(value)}`,
      );
    }
  });

  it("reads null as absent for every optional parameter, and tolerates unknown keys", () => {
    for (const e of ENDPOINTS) {
      const nulls = Object.fromEntries(
        PARAMETERS.filter((p) => p.endpoints.includes(e) && !(p.name in REQUIRED[e])).map((p) => [
          p.name,
          null,
        ]),
      );
      const r = parseRequest({ ...REQUIRED[e], ...nulls, some_future_param: 1 }, e);
      assert.ok(r.ok, `${e}: ${JSON.stringify(!r.ok && r.error)}`);
      assert.equal(r.value.temperature, 1);
      assert.equal(r.value.max_tokens, undefined);
      assert.equal("some_future_param" in r.value, false);
    }
  });

  it("bounds lists, maps and strings, and enforces the rules between parameters, naming the parameter", () => {
    const bad: [Endpoint, Record<string, unknown>, string][] = [
      ["completions", { stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, "stop"],
      [
        "completions",
        { logit_bias: Object.fromEntries(Array.from({ length: 301 }, (_, i) => [i, 1])) },
        "logit_bias",
      ],
      ["completions", { logit_bias: { "5": 101 } }, "logit_bias.5"],
      ["chat", { logit_bias: { x: 1 } }, "logit_bias.x"],
      ["completions", { n: 3, best_of: 2 }, "best_of"],
      ["completions", { n: 1, best_of: 2, stream: true }, "best_of"],
      ["completions", { prompt: Array.from({ length: 65 }, () => "a") }, "prompt"],
      ["completions", { prompt: Array.from({ length: 8 }, () => "a"), n: 8, best_of: 40 }, "best_of"],
      ["chat", { top_logprobs: 2 }, "top_logprobs"],
      ["chat", { stream_options: { include_usage: true } }, "stream_options"],
      [
        "chat",
        { stream: true, stream_options: { continuous_usage_stats: true } },
        "stream_options.continuous_usage_stats",
      ],
      ["chat", { max_tokens: 4, max_completion_tokens: 5 }, "max_tokens"],
      ["completions", { max_tokens: 4, min_tokens: 5 }, "min_tokens"],
      ["completions", { prompt_logprobs: 1, stream: true }, "prompt_logprobs"],
      ["completions", { presence_penalty: 2.5 }, "presence_penalty"],
      ["completions", { repetition_penalty: 0 }, "repetition_penalty"],
      ["completions", { user: "u".repeat(257) }, "user"],
    ];
    for (const [e, fields, param] of bad) {
      const r = parseRequest({ ...REQUIRED[e], ...fields }, e);
      assert.ok(!r.ok, `${e} ${JSON.stringify(fields).slice(0, 80)} is refused`);
      assert.equal(r.error.param, param, JSON.stringify(r.error));
      assert.equal(r.error.code, "bad_request");
    }
    const ok = parseRequest(
      { ...REQUIRED.chat, max_tokens: 4, max_completion_tokens: 4, top_logprobs: 0 },
      "chat",
    );
    assert.ok(ok.ok);
    assert.ok(
      parseRequest({ ...REQUIRED.completions, prompt: [[1, 2], [3]], n: 2, best_of: 3 }, "completions").ok,
    );
  });

  it("says what a union field accepts and its bounds, not 'Invalid input'", () => {
    const cases: [Endpoint, Record<string, unknown>, string, RegExp][] = [
      ["completions", { prompt: Array.from({ length: 65 }, () => "a") }, "prompt", /at most 64 strings/],
      [
        "completions",
        { prompt: ["a", 1] },
        "prompt",
        /a string, a list of at most 64 strings, a list of at most 65536 token ids, or a list of at most 64 lists of token ids/,
      ],
      ["completions", { prompt: [] }, "prompt", /must be a string/],
      ["completions", { prompt: undefined }, "prompt", /is required; it must be a string/],
      [
        "completions",
        { stop: Array.from({ length: 17 }, () => "s") },
        "stop",
        /a list of at most 16 strings, each at most 256 characters/,
      ],
      ["completions", { stop: 1 }, "stop", /must be a string or a list of at most 16 strings/],
      [
        "chat",
        { messages: [{ role: "user", content: 1 }] },
        "messages.0.content",
        /a string or a list of at most 1024/,
      ],
      [
        "chat",
        { messages: [{ role: "user", content: null }] },
        "messages.0.content",
        /is required on a user message/,
      ],
    ];
    for (const [e, fields, param, message] of cases) {
      const r = parseRequest({ ...REQUIRED[e], ...fields }, e);
      assert.ok(!r.ok, JSON.stringify(fields).slice(0, 80));
      assert.equal(r.error.param, param);
      assert.match(r.error.message, message);
      assert.doesNotMatch(r.error.message, /Invalid input/);
    }
  });

  it("refuses unsupported message fields and content parts by path; null and empty are absent", () => {
    const msg = (m: Record<string, unknown>) =>
      parseRequest({ model: "m", messages: [{ role: "user", content: "hi" }, m] }, "chat");
    const call = [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }];
    for (const [m, param] of [
      [{ role: "assistant", content: "x", tool_calls: call }, "messages.1.tool_calls"],
      [{ role: "assistant", content: null, tool_calls: call }, "messages.1.tool_calls"],
      [
        { role: "assistant", content: "x", function_call: { name: "f", arguments: "{}" } },
        "messages.1.function_call",
      ],
      [{ role: "assistant", content: "x", audio: { id: "a" } }, "messages.1.audio"],
      [
        {
          role: "user",
          content: [
            { type: "text", text: "a" },
            { type: "image_url", image_url: { url: "u" } },
          ],
        },
        "messages.1.content.1.type",
      ],
      [{ role: "user", content: [{ type: "input_audio", input_audio: {} }] }, "messages.1.content.0.type"],
      [{ role: "user", content: [{ type: "file", file: {} }] }, "messages.1.content.0.type"],
    ] as const) {
      const r = msg(m);
      assert.ok(!r.ok, JSON.stringify(m));
      assert.deepEqual([r.error.code, r.error.param], ["unsupported_parameter", param]);
      assert.match(r.error.message, new RegExp(param.replaceAll(".", "\\.")));
    }
    for (const m of [
      { role: "assistant", content: "x", tool_calls: null, function_call: null, audio: null },
      { role: "assistant", content: "x", tool_calls: [] },
    ])
      assert.ok(msg(m).ok, JSON.stringify(m));
    const r = parseRequest(
      {
        model: "m",
        messages: [
          { role: "user", content: "hi", name: "ann", tool_call_id: null },
          { role: "assistant", content: null },
          { role: "tool", content: "42", tool_call_id: "c1" },
        ],
      },
      "chat",
    );
    assert.ok(r.ok);
    assert.deepEqual(r.value.messages, [
      { role: "user", content: "hi", name: "ann" },
      { role: "assistant", content: "" },
      { role: "tool", content: "42", tool_call_id: "c1" },
    ]);
    assert.deepEqual(
      MESSAGE_FIELDS.filter((f) => f.status === "refused").map((f) => f.name),
      ["tool_calls", "function_call", "audio"],
    );
  });
});
