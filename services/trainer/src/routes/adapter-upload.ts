/**
 * Receives `POST /v1/runs/:run/adapters` (multipart/form-data with the PEFT files) while it streams:
 * the body's size bound holds byte by byte, also without a Content-Length, and the weights go to a
 * temporary file instead of being buffered by the form parser, so an upload is held in memory once
 * (for validation and hashing), not several times. An oversize upload is refused as soon as it
 * passes the bound, and weights whose safetensors header is bad as soon as the header has arrived,
 * each having cost a bounded amount of disk and no memory beyond one chunk (and the header).
 */
import { createWriteStream } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { err, ok, type Result } from "@loracast/shared/result";
import { SafetensorsError, safetensorsHeaderGuard } from "@loracast/shared/safetensors";
import busboy from "busboy";
import { TrainerError } from "../errors.ts";

/** The multipart file fields of an adapter upload, in PEFT's file names. */
const UPLOAD_FIELDS = ["adapter_config.json", "adapter_model.safetensors"] as const;
const WEIGHTS_FIELD = UPLOAD_FIELDS[1];

/** The two PEFT files of an upload. */
export interface UploadedAdapter {
  config: Uint8Array;
  weights: Uint8Array;
}

class TooLarge extends Error {}

/**
 * Counts bytes through; fails with TooLarge once more than `max` have passed. After `discard()` it
 * still counts (and fails past the bound) but passes nothing on: the rest of a refused body.
 */
function byteBound(max: number): Transform & { discard(): void } {
  let seen = 0;
  let discarding = false;
  const bound = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      seen += chunk.byteLength;
      if (seen > max) return done(new TooLarge());
      done(null, discarding ? undefined : chunk);
    },
  });
  const discard = (): void => {
    discarding = true;
  };
  return Object.assign(bound, { discard });
}

/** Where uploads are spooled, and the bound on each (the whole body, in bytes). */
export interface UploadSpool {
  /** `TRAINER_DATA_DIR/uploads`: one temp dir per upload, removed when it is answered. */
  dir: string;
  maxBytes: number;
}

/** Total size in bytes of the files under `path` (a file's own size when it is one). */
async function sizeOf(path: string): Promise<number> {
  const info = await lstat(path);
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const name of await readdir(path)) total += await sizeOf(join(path, name));
  return total;
}

/**
 * Removes what earlier trainer processes left in the upload spool (a process killed mid-upload
 * never ran its cleanup), creating the directory when missing. Call before serving. Returns how
 * many entries and bytes were removed.
 */
export async function clearUploadSpool(dir: string): Promise<{ entries: number; bytes: number }> {
  await mkdir(dir, { recursive: true });
  let bytes = 0;
  const names = await readdir(dir);
  for (const name of names) {
    bytes += await sizeOf(join(dir, name));
    await rm(join(dir, name), { recursive: true, force: true });
  }
  return { entries: names.length, bytes };
}

/**
 * Reads an adapter upload of at most `spool.maxBytes` (the whole body), spooling it under `spool.dir`. Errors: `payload_too_large`
 * (413) past the bound, `invalid_adapter` (400, the safetensors codec's own text) as soon as the
 * weights' header has arrived and is bad, without reading the rest of the body, and `bad_request`
 * for a body that is not multipart/form-data or lacks a file.
 */
export async function receiveAdapterUpload(
  req: Request,
  spool: UploadSpool,
): Promise<Result<UploadedAdapter, TrainerError>> {
  const { maxBytes } = spool;
  const tooLarge = err(new TrainerError("payload_too_large", `uploads are limited to ${maxBytes} bytes`));
  const declared = Number(req.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) return tooLarge;
  const type = req.headers.get("content-type") ?? "";
  if (!/^multipart\/form-data/i.test(type) || req.body === null) {
    return err(new TrainerError("bad_request", "expected multipart/form-data with the PEFT files"));
  }
  let form: busboy.Busboy;
  try {
    form = busboy({ headers: { "content-type": type }, limits: { fields: 16, files: 8, parts: 32 } });
  } catch (e) {
    // busboy throws at once on a content type it cannot read (no boundary, say).
    return err(new TrainerError("bad_request", `expected multipart/form-data: ${(e as Error).message}`));
  }
  await mkdir(spool.dir, { recursive: true });
  const dir = await mkdtemp(join(spool.dir, "upload-"));
  const written: Promise<Error | null>[] = [];
  let received: Promise<void> = Promise.resolve();
  let badHeader: SafetensorsError | undefined;
  try {
    const seen = new Set<string>();
    const bound = byteBound(maxBytes);
    let refuse: (e: SafetensorsError) => void = () => undefined;
    const refused = new Promise<SafetensorsError>((resolve) => {
      refuse = resolve;
    });
    form.on("file", (name, stream) => {
      const field = UPLOAD_FIELDS.find((f) => f === name);
      if (field === undefined || seen.has(field) || badHeader !== undefined) {
        // Other parts are ignored, as before; a repeated field keeps its first file; after a
        // refusal nothing more is written.
        stream.resume();
        return;
      }
      seen.add(field);
      const file = createWriteStream(join(dir, field));
      // Settled as values: when the body fails, these fail too, and must not go unhandled.
      if (field !== WEIGHTS_FIELD) {
        written.push(
          pipeline(stream, file).then(
            () => null,
            (e: unknown) => e as Error,
          ),
        );
        return;
      }
      // The weights' header is checked as it arrives. A bad one is answered at once; the rest of
      // the body is then read and dropped (not parsed, not written), so that a client still
      // sending sees the answer rather than a reset connection.
      const guard = safetensorsHeaderGuard(maxBytes);
      stream.pipe(guard);
      stream.once("error", (e: Error) => guard.destroy(e));
      written.push(
        pipeline(guard, file).then(
          () => null,
          (e: unknown) => {
            if (e instanceof SafetensorsError) {
              badHeader = e;
              stream.resume();
              bound.discard();
              refuse(e);
            }
            return e as Error;
          },
        ),
      );
    });
    const body = Readable.fromWeb(req.body as import("node:stream/web").ReadableStream<Uint8Array>);
    received = pipeline(body, bound, form).then(async () => {
      const failed = (await Promise.all(written)).find((e) => e !== null);
      if (failed !== undefined) throw failed;
    });
    // The rest of a refused body is still being read: its outcome no longer matters.
    received.catch(() => undefined);
    const outcome = await Promise.race([
      received.then(
        () => null,
        (e: unknown) => e as Error,
      ),
      refused,
    ]);
    if (badHeader !== undefined) {
      return err(new TrainerError("invalid_adapter", `${WEIGHTS_FIELD}: ${badHeader.message}`));
    }
    if (outcome instanceof TooLarge) return tooLarge;
    if (outcome !== null) {
      return err(new TrainerError("bad_request", `expected multipart/form-data: ${outcome.message}`));
    }
    for (const field of UPLOAD_FIELDS) {
      if (!seen.has(field)) {
        return err(new TrainerError("bad_request", `multipart field "${field}" (a file) is required`));
      }
    }
    // A Buffer is a Uint8Array: read once, not copied.
    const [config, weights] = await Promise.all(UPLOAD_FIELDS.map((f) => readFile(join(dir, f))));
    return ok({ config: config as Uint8Array, weights: weights as Uint8Array });
  } finally {
    // The dir goes once nothing writes to it: after a refusal the body is still being drained, so
    // that one is removed later, not awaited. A removal that fails leaves the dir to the spool
    // clearing of the next start (`clearUploadSpool`), never an error for this request.
    const removed = Promise.allSettled([received, ...written])
      .then(() => rm(dir, { recursive: true, force: true }))
      .catch(() => undefined);
    if (badHeader === undefined) await removed;
  }
}
