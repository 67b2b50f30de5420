/** What a `SafetensorsError` is about, one code per structural rule of the format. */
export type SafetensorsErrorCode =
  | "truncated"
  | "header_too_large"
  | "invalid_json"
  | "duplicate_key"
  | "invalid_entry"
  | "invalid_dtype"
  | "invalid_shape"
  | "size_mismatch"
  | "invalid_offsets"
  | "invalid_metadata";

/** A structural problem with a safetensors file. `tensor` names the entry at fault, when there is one. */
export class SafetensorsError extends Error {
  override readonly name = "SafetensorsError";
  constructor(
    readonly code: SafetensorsErrorCode,
    message: string,
    readonly tensor?: string,
  ) {
    super(tensor === undefined ? message : `tensor \`${tensor}\`: ${message}`);
  }
}
