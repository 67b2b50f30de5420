import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dashboardLink } from "./dashboard-link.ts";

describe("dashboardLink", () => {
  it("puts the token in the fragment, never in the path or query", () => {
    const link = new URL(dashboardLink("http://127.0.0.1:9001", "local-dev-token-change-me"));
    assert.equal(link.pathname, "/dashboard");
    assert.equal(link.search, "");
    assert.equal(link.hash, "#token=local-dev-token-change-me");
  });

  it("names the run in the query and escapes both values", () => {
    const link = new URL(dashboardLink("http://127.0.0.1:9001", "a&b=c#d", "digits-2"));
    assert.equal(link.searchParams.get("run"), "digits-2");
    assert.equal(decodeURIComponent(link.hash.slice("#token=".length)), "a&b=c#d");
  });
});
