import assert from "node:assert/strict";
import { it } from "node:test";
import { prometheusText } from "./index.ts";

it("writes TYPE lines, plain and labelled samples, and a trailing newline", () => {
  const text = prometheusText([
    { name: "a_total", type: "counter", value: 3 },
    { name: "b", type: "gauge", samples: [[{ run: "x", k: "y" }, 2]] },
    { name: "c_total", type: "counter", samples: [] },
  ]);
  assert.equal(
    text,
    '# TYPE a_total counter\na_total 3\n# TYPE b gauge\nb{run="x",k="y"} 2\n# TYPE c_total counter\n',
  );
});
