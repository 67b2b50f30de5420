import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  chatFields,
  completionFields,
  type Endpoint,
  PARAMETERS,
  parseRequest,
  refusedParameter,
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
});
