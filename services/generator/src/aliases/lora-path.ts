/**
 * `load_lora_adapter`'s `lora_path`: where an alias's adapter comes from. Four forms:
 * `<run>@<version>` (that version), `<run>` (its newest active version at load time), a store URI
 * `s3://<bucket>/<prefix>/runs/<run>/versions/<version, 12 digits>.json` (the version's manifest key,
 * as `GET /v1/adapters` and the trainer name it; this generator's bucket and prefix only), and a
 * local PEFT directory (a path with a `/`), allowed only inside the operator's GENERATOR_LORA_DIRS.
 */
import { parseVersionRef, RUN_NAME } from "@loracast/shared/manifest";
import { err, type Failure, ok, type Result } from "@loracast/shared/result";
import { versionOfKey } from "@loracast/shared/store";

/** A parsed `lora_path`. */
export type LoraSource =
  | { kind: "version"; run: string; version: number }
  | { kind: "run"; run: string }
  | { kind: "local"; path: string };

/** Where this generator's adapters live, to accept its own store URIs and nothing else. */
export interface StoreLocation {
  bucket: string;
  /** S3_PREFIX, without trailing slash; may be empty. */
  prefix: string;
}

const STORE_KEY = /^runs\/([^/]+)\/versions\/\d{12}\.json$/;

/** Parses `path`; the error's message is for a 400 naming `lora_path` (or `lora_name`, the caller's). */
export function parseLoraPath(path: string, store: StoreLocation): Result<LoraSource, Failure> {
  if (path.startsWith("s3://")) return parseStoreUri(path, store);
  if (path.includes("/")) return ok({ kind: "local", path });
  const ref = parseVersionRef(path);
  if (ref !== null) return ok({ kind: "version", ...ref });
  if (path.includes("@"))
    return err({ message: `${path}: expected <run>@<version> with a run name and a version of 1 or more` });
  if (!RUN_NAME.test(path))
    return err({
      message: `${path}: expected <run>@<version>, <run>, s3://${store.bucket}/${keyPrefix(store)}runs/<run>/versions/<version>.json or a local PEFT directory`,
    });
  return ok({ kind: "run", run: path });
}

function keyPrefix(store: StoreLocation): string {
  const p = store.prefix.replace(/\/+$/, "");
  return p === "" ? "" : `${p}/`;
}

function parseStoreUri(uri: string, store: StoreLocation): Result<LoraSource, Failure> {
  const rest = uri.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (bucket !== store.bucket)
    return err({ message: `${uri}: bucket ${bucket} is not this generator's store (s3://${store.bucket}/)` });
  const prefix = keyPrefix(store);
  const key = slash < 0 ? "" : rest.slice(slash + 1);
  if (!key.startsWith(prefix))
    return err({
      message: `${uri}: the key is outside this generator's prefix ${prefix === "" ? "(none)" : prefix}`,
    });
  const relative = key.slice(prefix.length);
  const m = STORE_KEY.exec(relative);
  const version = versionOfKey(relative);
  if (m === null || version === null || !RUN_NAME.test(m[1] as string) || version < 1)
    return err({
      message: `${uri}: expected s3://${store.bucket}/${prefix}runs/<run>/versions/<version, 12 digits>.json (a version's manifest)`,
    });
  return ok({ kind: "version", run: m[1] as string, version });
}
