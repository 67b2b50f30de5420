/**
 * A run's TensorBoard event files (`reportTo: ["tensorboard"]`): every scalar of its events, tagged
 * as scalars.ts says, at the run's step, with the trainer's clock as wall time. One event per run
 * event (a step's metrics and phases together). Each start of the run (a resume after a restart)
 * opens a new file and opens it with a `SessionLog` START at the first step it redoes: TensorBoard
 * then drops the points an earlier attempt wrote for the steps the resume redoes, as it does for a
 * TensorFlow job restarted from a checkpoint, so each step shows the attempt that counted.
 */
import type { Clock } from "@loracast/shared/platform";
import type { RunEvent } from "@loracast/shared/run-events";
import { EventFileWriter } from "@loracast/shared/tensorboard";
import { runEventScalars } from "./scalars.ts";

/** Writes one run's events as TensorBoard scalars into one new event file in `dir`. */
export class TensorBoardReporter {
  private readonly writer: EventFileWriter;

  /** Creates `dir` and a new event file in it; throws the file system's error. */
  constructor(
    dir: string,
    private readonly clock: Clock,
  ) {
    this.writer = EventFileWriter.create(dir, clock.now() / 1000);
  }

  /** The event file this reporter writes. */
  get path(): string {
    return this.writer.path;
  }

  /** Appends the event's scalars (a `resumed` event: the session restart); throws the file system's error. */
  record(e: RunEvent): void {
    const wallTime = this.clock.now() / 1000;
    if (e.type === "resumed") {
      this.writer.write({
        kind: "session_log",
        wallTime,
        step: e.step + 1,
        status: "START",
        msg: `resumed from the checkpoint after step ${e.step}`,
      });
      return;
    }
    const s = runEventScalars(e);
    if (s === null) return;
    const scalars = [...s.values].map(([tag, value]) => ({ tag, value }));
    this.writer.write({ kind: "scalars", wallTime, step: s.step, scalars });
  }

  /** Closes the file. */
  close(): void {
    this.writer.close();
  }
}
