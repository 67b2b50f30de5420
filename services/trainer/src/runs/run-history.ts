/**
 * A run's event history on the trainer's disk: one JSON line per event, `{seq, ...event}`, appended
 * (a synchronous write) before any subscriber sees the event, so whatever a client saw survives a
 * SIGKILL of the trainer. It lives beside the run's status record in TRAINER_DATA_DIR, not in the
 * store: S3 cannot append, a PUT per step would cost a round trip a step and stall training during
 * an outage, and resuming a run needs the record and its history together anyway.
 *
 * Append-only: ids are line numbers, and an id once written names the same event for good. A
 * run resumed from a checkpoint does not cut the history back; the manager appends a `resumed`
 * event and the redone steps follow it under new ids, so a client that saw the lost steps (and
 * the versions published from them, which stay in the store) never sees an id change meaning.
 * The only lines ever cut are a damaged tail, which no subscriber can have seen (see `open`).
 *
 * Memory stays bounded however long the run: only counters are kept; replays read the file.
 */
import { closeSync, createReadStream, fdatasyncSync, ftruncateSync, openSync, writeSync } from "node:fs";
import type { Logger } from "@loracast/shared/platform";
import {
  type RunEvent,
  type RunMetrics,
  type RunStreamEvent,
  runStreamEventSchema,
} from "@loracast/shared/run-events";

/** How far a run got, as its events tell it: kept in `GET /v1/runs/:id` (see `foldProgress`). */
export interface RunProgress {
  /**
   * Steps completed: the newest `step` or `skipped` event's step, or the checkpoint step of a
   * `resumed` event after them; 0 when there is none.
   */
  step: number;
  /** The newest `step` event's metrics; null before the first, and after a `resumed` event until the next. */
  metrics: RunMetrics | null;
  /** The newest published version (a resume does not unpublish any), or null. */
  version: number | null;
}

/** What a run's history says about it: the basis of `GET /v1/runs/:id` after a restart. */
export interface HistorySummary extends RunProgress {
  /** Id of the newest event; 0 when there is none. */
  lastSeq: number;
  /** The final status event, when the run stopped. */
  status: Extract<RunEvent, { type: "status" }> | null;
  /**
   * `resumed` events since the newest `checkpoint` event that followed a crash or a kill (not a
   * `stopped` event): restarts that made no progress a later resume would keep, so a run that
   * crashes the trainer every time is not resumed forever. Clean shutdowns do not count.
   */
  crashesSinceCheckpoint: number;
  /** The newest event is `stopped`: the trainer last stopped cleanly, so this stop is no crash. */
  stoppedCleanly: boolean;
}

interface Line {
  event: RunStreamEvent;
  /** Byte offset just past the line's newline. */
  end: number;
}

/**
 * A run's append-only event log in `TRAINER_DATA_DIR` (one JSON line per event, `{seq, ...event}`):
 * `open` reads it back with a summary for resuming, then events are appended, each written before
 * anyone sees it.
 */
export class RunHistory {
  private fd: number | null = null;

  private constructor(
    readonly path: string,
    private seq: number,
  ) {}

  /**
   * Opens the history at `path` (created on first append). A line cut off by a crash, or one that
   * does not parse, ends the history there: it and anything after it are cut, with a warning.
   */
  static async open(path: string, log: Logger): Promise<{ history: RunHistory; summary: HistorySummary }> {
    const summary = emptySummary();
    let end = 0;
    const bad = await scan(path, (l) => {
      if (l.event.seq !== summary.lastSeq + 1) return false;
      summarise(summary, l.event);
      end = l.end;
      return true;
    });
    if (bad !== null) {
      log.warn("run history cut at a damaged line", { path, line: summary.lastSeq + 1, byte: end });
      truncate(path, end);
    }
    return { history: new RunHistory(path, summary.lastSeq), summary };
  }

  /** Id of the newest event; 0 when there is none. */
  get lastSeq(): number {
    return this.seq;
  }

  /**
   * Writes `event` as the next line and returns it with its id. Checkpoint, status and stopped
   * events are also flushed to the device, so a host crash keeps at least what the store's
   * checkpoint covers, and a clean shutdown is not mistaken for a crash.
   */
  append(event: RunEvent): RunStreamEvent {
    const e = { ...event, seq: this.seq + 1 } as RunStreamEvent;
    this.fd ??= openSync(this.path, "a");
    writeSync(this.fd, `${JSON.stringify(e)}\n`);
    this.seq = e.seq;
    if (e.type === "checkpoint" || e.type === "status" || e.type === "stopped") fdatasyncSync(this.fd);
    return e;
  }

  /** Releases the file handle (a later append reopens it). */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** The events with `after` < id ≤ `upTo`, read from disk in order. */
  async *replay(after: number, upTo: number): AsyncGenerator<RunStreamEvent> {
    if (after >= upTo) return;
    for await (const l of lines(this.path)) {
      if (l.event.seq > upTo) return;
      if (l.event.seq > after) yield l.event;
    }
  }
}

function emptySummary(): HistorySummary {
  return {
    lastSeq: 0,
    step: 0,
    metrics: null,
    version: null,
    status: null,
    crashesSinceCheckpoint: 0,
    stoppedCleanly: false,
  };
}

function summarise(s: HistorySummary, e: RunStreamEvent): void {
  s.lastSeq = e.seq;
  foldProgress(s, e);
  if (e.type === "status") s.status = e;
  if (e.type === "resumed" && !s.stoppedCleanly) s.crashesSinceCheckpoint += 1;
  if (e.type === "checkpoint") s.crashesSinceCheckpoint = 0;
  s.stoppedCleanly = e.type === "stopped";
}

/** Moves `p` past event `e`: the one reading of events into progress, for the history and live runs. */
export function foldProgress(s: RunProgress, e: RunEvent): void {
  if (e.type === "step") {
    s.step = e.step;
    s.metrics = e.metrics;
  } else if (e.type === "skipped") {
    s.step = e.step;
  } else if (e.type === "resumed") {
    // The steps after the checkpoint are lost; their metrics describe state that no longer exists.
    s.step = e.step;
    s.metrics = null;
  } else if (e.type === "published") {
    s.version = e.version;
  }
}

function truncate(path: string, bytes: number): void {
  const fd = openSync(path, "r+");
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}

/**
 * Calls `take` on each complete, valid line until it returns false. Returns null when every line
 * was taken, else where the walk stopped ("rejected", or "damaged" for a line that is cut off or
 * does not parse).
 */
async function scan(path: string, take: (l: Line) => boolean): Promise<null | "rejected" | "damaged"> {
  try {
    for await (const l of lines(path, true)) {
      if (l === "damaged") return "damaged";
      if (!take(l)) return "rejected";
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  return null;
}

function lines(path: string): AsyncGenerator<Line>;
function lines(path: string, reportDamage: true): AsyncGenerator<Line | "damaged">;
/** The file's lines with their byte offsets; a trailing line without its newline is damage. */
async function* lines(path: string, reportDamage = false): AsyncGenerator<Line | "damaged"> {
  let pending: Buffer = Buffer.alloc(0);
  let offset = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let from = 0;
    for (let nl = pending.indexOf(10, from); nl >= 0; nl = pending.indexOf(10, from)) {
      const text = pending.toString("utf8", from, nl);
      const parsed = runStreamEventSchema.safeParse(parseJson(text));
      if (!parsed.success) {
        if (reportDamage) yield "damaged";
        return;
      }
      yield { event: parsed.data, end: offset + nl + 1 };
      from = nl + 1;
    }
    offset += from;
    pending = pending.subarray(from);
  }
  if (pending.length > 0 && reportDamage) yield "damaged";
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
