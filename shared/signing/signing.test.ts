import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { keyIdOf, loadOrCreateSigner, parsePublicKey, Signer, TrustedKeys } from "./index.ts";

const bytes = new TextEncoder().encode('{"schema":"loracast.adapter-version/v1"}\n');

describe("signing", () => {
  it("verifies the exact bytes it signed with a trusted key, naming the key id", () => {
    const signer = Signer.generate();
    const verdict = new TrustedKeys([signer.publicKey]).verify(bytes, signer.envelope(bytes).bytes);
    assert.deepEqual(verdict, { ok: true, value: signer.keyId });
    assert.equal(signer.keyId, keyIdOf(Buffer.from(signer.publicKey, "base64")));
  });

  it("refuses unsigned, foreign-signed, altered and malformed metadata with distinct codes", () => {
    const signer = Signer.generate();
    const trusted = new TrustedKeys([signer.publicKey]);
    const code = (v: ReturnType<TrustedKeys["verify"]>) => (v.ok ? "ok" : v.error.code);
    assert.equal(code(trusted.verify(bytes, null)), "unsigned");
    assert.equal(code(trusted.verify(bytes, Signer.generate().envelope(bytes).bytes)), "foreign_key");
    const altered = Uint8Array.from(bytes);
    altered[3] = 0x41;
    // The envelope of the original bytes, relabelled as signing the altered ones.
    const envelope = JSON.parse(new TextDecoder().decode(signer.envelope(bytes).bytes));
    envelope.signed.sha256 = JSON.parse(
      new TextDecoder().decode(signer.envelope(altered).bytes),
    ).signed.sha256;
    const relabelled = new TextEncoder().encode(JSON.stringify(envelope));
    assert.equal(code(trusted.verify(altered, relabelled)), "bad_signature");
    assert.equal(code(trusted.verify(altered, signer.envelope(bytes).bytes)), "malformed_signature");
    assert.equal(code(trusted.verify(bytes, new TextEncoder().encode("{"))), "malformed_signature");
  });

  it("accepts any of several keys (rotation)", () => {
    const [old, next] = [Signer.generate(), Signer.generate()];
    const trusted = new TrustedKeys([old.publicKey, next.publicKey]);
    assert.equal(trusted.verify(bytes, old.envelope(bytes).bytes).ok, true);
    assert.equal(trusted.verify(bytes, next.envelope(bytes).bytes).ok, true);
    assert.deepEqual(trusted.ids.sort(), [old.keyId, next.keyId].sort());
  });

  it("rejects a public key that is not 32 raw bytes", () => {
    assert.equal(parsePublicKey("abcd").ok, false);
    assert.equal(parsePublicKey(Signer.generate().publicKey).ok, true);
  });

  it("creates the key file once (0600) and reads the same key back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "signing-"));
    try {
      const path = join(dir, "keys", "k.pem");
      const first = await loadOrCreateSigner(path);
      const second = await loadOrCreateSigner(path);
      assert.ok(first.ok && second.ok);
      assert.equal(first.value.keyId, second.value.keyId);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.match(readFileSync(path, "utf8"), /BEGIN PRIVATE KEY/);
      // The public half sits beside it, in the form MANIFEST_PUBLIC_KEYS takes.
      assert.equal(readFileSync(join(dir, "keys", "k.pub"), "utf8"), `${first.value.publicKey}\n`);
      const rsaPath = join(dir, "rsa.pem");
      const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey;
      writeFileSync(rsaPath, rsa.export({ format: "pem", type: "pkcs8" }));
      const refused = await loadOrCreateSigner(rsaPath);
      assert.ok(!refused.ok);
      assert.match(refused.error.message, /rsa\.pem: an Ed25519 private key is required, not rsa/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
