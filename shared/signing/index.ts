/**
 * Signed store metadata (docs/architecture.md, "Trust and signing"). The trainer signs the exact
 * bytes of every manifest and rollback record with an Ed25519 key; generators (and the trainer when
 * it reads back) accept an object only with a valid signature by one of the public keys they trust.
 * The signature is detached: a small JSON envelope stored under the sha256 of the signed bytes
 * (`signatures/sha256/<hex>.json`), so the signed object is never re-serialized to be verified and
 * the envelope can be written before the object it signs.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import { err, type Failure, ok, type Result } from "../result/index.ts";

const SIGNATURE_SCHEMA = "loracast.signature/v1";

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits");

/**
 * The detached signature envelope: `signed.sha256` is the sha256 (hex) of the signed object's exact
 * bytes, each `sig` the base64 Ed25519 signature (RFC 8032, pure Ed25519, no prehash) of those same
 * bytes, and `keyid` the sha256 (hex) of the signer's raw 32-byte public key. Several signatures
 * may sign one object (key rotation); one by a trusted key suffices.
 */
export const signatureEnvelopeSchema = z.object({
  schema: z.literal(SIGNATURE_SCHEMA),
  signed: z.object({ sha256: hex64 }),
  signatures: z.array(z.object({ keyid: hex64, sig: z.string().min(1) })).min(1),
});
/** A parsed signature envelope (`signatureEnvelopeSchema`). */
export type SignatureEnvelope = z.infer<typeof signatureEnvelopeSchema>;

/** Store key of the envelope that signs the object whose bytes hash to `sha256`. */
export const signatureKey = (sha256: string): string => `signatures/sha256/${sha256}.json`;

const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** The raw 32-byte Ed25519 public key of `key` (a public or private key object). */
function rawPublicKey(key: KeyObject): Buffer {
  const jwk = (key.type === "public" ? key : createPublicKey(key)).export({ format: "jwk" });
  return Buffer.from(jwk.x ?? "", "base64url");
}

/** Key id: sha256 (hex) of the raw 32-byte public key, as in the envelope's `keyid`. */
export const keyIdOf = (raw: Uint8Array): string => sha256Hex(raw);

/** Parses a public key as configured: base64 (or base64url) of the raw 32-byte Ed25519 key. */
export function parsePublicKey(text: string): Result<KeyObject, Failure> {
  const raw = Buffer.from(text.trim(), "base64");
  if (raw.byteLength !== 32)
    return err({ message: `not the base64 of a raw 32-byte Ed25519 public key: ${text}` });
  return ok(
    createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" }),
  );
}

/** A comma-separated list of public keys (env var); empty when unset. */
export const publicKeyList = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const out: string[] = [];
    for (const item of (v ?? "").split(",").map((s) => s.trim())) {
      if (item === "") continue;
      const parsed = parsePublicKey(item);
      if (!parsed.ok) ctx.addIssue({ code: "custom", message: parsed.error.message });
      else out.push(item);
    }
    return out;
  });

/** The trainer's signing key. */
export class Signer {
  /** sha256 (hex) of the raw public key. */
  readonly keyId: string;
  /** base64 of the raw 32-byte public key: what generators list in `MANIFEST_PUBLIC_KEYS`. */
  readonly publicKey: string;

  private constructor(private readonly key: KeyObject) {
    const raw = rawPublicKey(key);
    this.keyId = keyIdOf(raw);
    this.publicKey = raw.toString("base64");
  }

  /** From a PKCS#8 PEM Ed25519 private key; an error names what is wrong with it. */
  static fromPem(pem: string): Result<Signer, Failure> {
    try {
      const key = createPrivateKey(pem);
      if (key.asymmetricKeyType !== "ed25519")
        return err({ message: `an Ed25519 private key is required, not ${key.asymmetricKeyType}` });
      return ok(new Signer(key));
    } catch (e) {
      return err({ message: `not a PEM private key: ${(e as Error).message}` });
    }
  }

  static generate(): Signer {
    return new Signer(generateKeyPairSync("ed25519").privateKey);
  }

  /** PKCS#8 PEM of the private key. */
  toPem(): string {
    return this.key.export({ format: "pem", type: "pkcs8" }).toString();
  }

  /** The envelope signing `bytes`, serialized (what is stored under `signatureKey`). */
  envelope(bytes: Uint8Array): { sha256: string; bytes: Uint8Array } {
    const sha256 = sha256Hex(bytes);
    const body: SignatureEnvelope = {
      schema: SIGNATURE_SCHEMA,
      signed: { sha256 },
      signatures: [{ keyid: this.keyId, sig: sign(null, bytes, this.key).toString("base64") }],
    };
    return { sha256, bytes: new TextEncoder().encode(`${JSON.stringify(body, null, 2)}\n`) };
  }
}

/**
 * Where the public half of the key at `path` is written: `path` without `.pem`, plus `.pub`.
 * It holds the base64 raw Ed25519 public key, the form generators take in `MANIFEST_PUBLIC_KEYS`.
 */
function publicKeyPath(path: string): string {
  return `${path.replace(/\.pem$/, "")}.pub`;
}

/**
 * Reads the PEM private key at `path`, or generates one there (mode 0600, written atomically) when
 * the file does not exist, and (re)writes its public half at `publicKeyPath(path)` so an operator
 * can hand it to generators with `cat`; beside a given key in a read-only directory (a mounted
 * secret) that copy is left out. Any other problem (unreadable, not Ed25519, not writable) is an
 * error naming the path.
 */
export async function loadOrCreateSigner(path: string): Promise<Result<Signer, Failure>> {
  let pem: string | null = null;
  try {
    pem = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      return err({ message: `${path}: ${(e as Error).message}` });
  }
  let signer: Signer;
  if (pem !== null) {
    const s = Signer.fromPem(pem);
    if (!s.ok) return err({ message: `${path}: ${s.error.message}` });
    signer = s.value;
  } else {
    signer = Signer.generate();
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeAtomically(path, signer.toPem(), 0o600);
    } catch (e) {
      return err({ message: `${path}: cannot write a new key: ${(e as Error).message}` });
    }
  }
  try {
    await writeAtomically(publicKeyPath(path), `${signer.publicKey}\n`, 0o644);
  } catch (e) {
    // The .pub copy is a convenience (the trainer logs the key too): a given key mounted read-only,
    // as a Kubernetes or compose secret is, goes without one.
    const readOnly = ["EACCES", "EROFS", "EPERM"].includes((e as NodeJS.ErrnoException).code ?? "");
    if (pem === null || !readOnly) return err({ message: `${publicKeyPath(path)}: ${(e as Error).message}` });
  }
  return ok(signer);
}

async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await rename(tmp, path);
}

/** Why signed metadata was refused; `code` labels the /metrics counter. */
export interface SignatureFailure {
  code: "unsigned" | "malformed_signature" | "foreign_key" | "bad_signature";
  reason: string;
}

/** The public keys a reader accepts (several during a rotation). */
export class TrustedKeys {
  private readonly keys = new Map<string, KeyObject>();

  /** `publicKeys`: base64 raw Ed25519 public keys (see `parsePublicKey`); invalid ones throw. */
  constructor(publicKeys: readonly string[]) {
    for (const text of publicKeys) {
      const key = parsePublicKey(text);
      if (!key.ok) throw new Error(key.error.message);
      this.keys.set(keyIdOf(rawPublicKey(key.value)), key.value);
    }
  }

  /** Key ids accepted, for logs. */
  get ids(): string[] {
    return [...this.keys.keys()];
  }

  /**
   * Checks `envelopeBytes` (null: no envelope in the store) against the exact `bytes` it must sign.
   * Ok with the key id that signed them.
   */
  verify(bytes: Uint8Array, envelopeBytes: Uint8Array | null): Result<string, SignatureFailure> {
    if (envelopeBytes === null) return err({ code: "unsigned", reason: "it has no signature" });
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(envelopeBytes));
    } catch {
      return err({ code: "malformed_signature", reason: "its signature envelope is not JSON" });
    }
    const envelope = signatureEnvelopeSchema.safeParse(json);
    if (!envelope.success) {
      const i = envelope.error.issues[0];
      return err({
        code: "malformed_signature",
        reason: `its signature envelope is malformed (${i?.path.join(".")}: ${i?.message})`,
      });
    }
    if (envelope.data.signed.sha256 !== sha256Hex(bytes))
      return err({ code: "malformed_signature", reason: "its signature envelope names other bytes" });
    const byUs = envelope.data.signatures.filter((s) => this.keys.has(s.keyid));
    if (byUs.length === 0) {
      const ids = envelope.data.signatures.map((s) => s.keyid.slice(0, 16)).join(", ");
      return err({
        code: "foreign_key",
        reason: `it is signed only by keys this reader does not trust (${ids}…)`,
      });
    }
    for (const s of byUs) {
      const key = this.keys.get(s.keyid) as KeyObject;
      if (verify(null, bytes, key, Buffer.from(s.sig, "base64"))) return ok(s.keyid);
    }
    return err({
      code: "bad_signature",
      reason: `its signature by trusted key ${byUs[0]?.keyid.slice(0, 16)}… does not verify (the bytes were altered)`,
    });
  }
}
