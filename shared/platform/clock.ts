/** Time as an input: logic takes a Clock so tests and replays control it. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The wall clock (`Date.now()`), for `main.ts` to pass down; tests pass their own `Clock`. */
export const systemClock: Clock = { now: () => Date.now() };
