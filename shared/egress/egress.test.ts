import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { checkEgressUrl, EgressRefused, egressFetch, redactSecrets, redactText, redactUrl } from "./index.ts";

describe("redaction", () => {
  it("hides userinfo and credential-named query values, keeping the rest readable", () => {
    assert.equal(
      redactUrl("https://user:pass@h.example/r?api_key=k1&x=1&X-Amz-Signature=s"),
      "https://***@h.example/r?api_key=***&x=1&X-Amz-Signature=***",
    );
    assert.equal(redactUrl("https://h.example/r?page=2"), "https://h.example/r?page=2");
    assert.equal(redactUrl("not a url"), "not a url");
  });
  it("finds URLs inside text and walks JSON values", () => {
    assert.equal(
      redactText("reward endpoint http://a:b@h:1/s?token=t: HTTP 500"),
      "reward endpoint http://***@h:1/s?token=***: HTTP 500",
    );
    assert.deepEqual(redactSecrets({ list: [{ url: "http://h/?secret=z" }], n: 3, ok: null }), {
      list: [{ url: "http://h/?secret=***" }],
      n: 3,
      ok: null,
    });
  });
});

describe("egress policy", () => {
  const strict = { allowPrivate: false };
  const open = { allowPrivate: true };
  const refused = (url: string, policy = strict) => !checkEgressUrl(url, policy).ok;

  it("takes http(s) to public hosts and refuses other schemes", () => {
    assert.ok(!refused("https://rewards.example.com/score"));
    assert.ok(!refused("http://8.8.8.8/"));
    for (const url of ["file:///etc/passwd", "data:text/plain,x", "javascript:alert(1)", "gopher://h/"]) {
      assert.ok(refused(url, open), url);
    }
  });
  it("refuses link-local and metadata addresses whatever the setting, in every spelling", () => {
    for (const url of [
      "http://169.254.169.254/",
      "http://169.254.1.1/",
      "http://0xa9fea9fe/",
      "http://[fe80::1]/",
      "http://[fd00:ec2::254]/",
      "http://[::ffff:169.254.169.254]/",
      "http://100.100.100.200/latest/meta-data/",
      "http://168.63.129.16/machine?comp=goalstate",
      "http://[::ffff:100.100.100.200]/",
      "http://[::ffff:a83f:8110]/",
    ]) {
      assert.ok(refused(url, open), url);
    }
  });
  it("takes loopback and private addresses only when the operator allows them", () => {
    for (const url of [
      "http://127.0.0.1:9/",
      "http://localhost/",
      "http://10.0.0.1/",
      "http://[::1]/",
      "http://[fd12::1]/",
    ]) {
      assert.ok(refused(url), url);
      assert.ok(!refused(url, open), url);
    }
  });
  it("egressFetch refuses what the policy refuses and sends userinfo as Basic credentials", async () => {
    let auth: string | undefined;
    const server = createServer((req, res) => {
      auth = req.headers.authorization;
      res.end("ok");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    try {
      // Connect-time refusal of names (the machine's hostname) is covered by test/journeys/secrets-egress.test.ts.
      await assert.rejects(egressFetch(strict)(`http://localhost:${port}/`), EgressRefused);
      const res = await egressFetch(open)(`http://u:p%40ss@127.0.0.1:${port}/`);
      assert.equal(await res.text(), "ok");
      assert.equal(auth, `Basic ${Buffer.from("u:p@ss").toString("base64")}`);
    } finally {
      server.close();
    }
  });
});
