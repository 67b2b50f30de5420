/**
 * TensorBoard event files: a directory of `events.out.tfevents.<seconds>.<host>.<pid>.<n>` files,
 * each a TFRecord stream of `Event` messages opening with the `brain.Event:2` version record, as
 * TensorBoard's own writer lays them out (tensorboard/summary/writer/event_file_writer.py).
 * `tensorboard --logdir <dir>` reads them, and so does `readEventDir` below.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { err, ok, type Result } from "../result/index.ts";
import { decodeEvent, encodeEvent, type TensorBoardEvent } from "./event-proto.ts";
import { frameRecord, readRecords, type TfRecordError } from "./tfrecord.ts";

/** The version record every event file opens with (event.proto: "Current version is brain.Event:2"). */
const FILE_VERSION = "brain.Event:2";

/** Files this process opened, for the trailing counter TensorBoard's writer also adds. */
let opened = 0;

/**
 * Appends events to one new event file. Each write is a synchronous append, so what a step wrote is
 * in the file (in the page cache) before the caller goes on; no fsync: the run's history in
 * TRAINER_DATA_DIR is the record, these files are a view of it.
 */
export class EventFileWriter {
  private fd: number | null;

  private constructor(
    /** The event file's path. */
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /**
   * Creates `dir` (recursively) and a new event file in it, named from `wallTime` (seconds since
   * the Unix epoch) as TensorBoard names them, and writes the version record. Throws the file
   * system's error (EACCES, ENOSPC, …).
   */
  static create(dir: string, wallTime: number): EventFileWriter {
    mkdirSync(dir, { recursive: true });
    const seconds = String(Math.floor(wallTime)).padStart(10, "0");
    const path = join(dir, `events.out.tfevents.${seconds}.${hostname()}.${process.pid}.${opened++}`);
    const writer = new EventFileWriter(path, openSync(path, "wx"));
    writer.write({ kind: "file_version", wallTime, step: 0, fileVersion: FILE_VERSION });
    return writer;
  }

  /** Appends one event. Throws after `close`, or the file system's error. */
  write(e: TensorBoardEvent): void {
    if (this.fd === null) throw new Error(`event file ${this.path} is closed`);
    const record = frameRecord(encodeEvent(e));
    let done = 0;
    while (done < record.length) done += writeSync(this.fd, record, done);
  }

  /** Closes the file; later `close` calls do nothing. */
  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}

/** A TensorBoard event file that could not be read (a CRC fails), naming the file and the record. */
export interface EventFileError extends TfRecordError {
  /** The file's path. */
  readonly path: string;
}

/** The events of a log directory, and the files whose last record is cut off. */
export interface EventDir {
  /** Every complete event, files in name order, records in file order. */
  events: TensorBoardEvent[];
  /** Files that end in a cut-off record (still being written, or their writer was killed mid-write). */
  partial: string[];
}

/**
 * Every event of every event file in `dir` (files whose name contains `tfevents`), in the order
 * TensorBoard reads them: files by name (their names start with the creation time), records in
 * file order. As TensorBoard does, a cut-off last record is left out (listed in `partial`); a CRC
 * that fails is an error naming the file. Throws the file system's error for a missing or
 * unreadable `dir`, and protobufjs's for a record that is no `Event`.
 */
export function readEventDir(dir: string): Result<EventDir, EventFileError> {
  const files = readdirSync(dir)
    .filter((f) => f.includes("tfevents"))
    .sort();
  const out: EventDir = { events: [], partial: [] };
  for (const f of files) {
    const path = join(dir, f);
    const read = readRecords(readFileSync(path));
    if (!read.ok) return err({ ...read.error, path, message: `${path}: ${read.error.message}` });
    for (const r of read.value.records) out.events.push(decodeEvent(r));
    if (read.value.partialAt !== null) out.partial.push(path);
  }
  return ok(out);
}
