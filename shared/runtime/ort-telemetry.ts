/**
 * onnxruntime 1.30+ runs Microsoft's 1DS telemetry on Linux and macOS unless ORT_DISABLE_TELEMETRY
 * is set: every process that creates a session leaves `.ses` and a `mat-debug-<pid>.log` in the temp
 * dir, which pile up with each start of the stack. loracast turns it off unless the user set the
 * variable. ORT reads it when it creates its environment, at the process's first session, so this
 * must run before that (createSession calls it; code that creates sessions itself calls it too).
 */
export function disableOrtTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY ??= "1";
}
