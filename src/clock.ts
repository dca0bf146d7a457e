/**
 * The time the cache's decisions read: freshness, Age, back-off, prefetch, down-since. One clock
 * comes in with the start-up options and reaches every part, so a test can move time forward
 * instead of sleeping for it. Timers that bound a wait on the network (an upstream's timeout, a
 * client's scrape deadline, shutdown grace) stay on real time: they measure I/O, not data age.
 */

/** A timer of a clock; never holds the process open. */
export interface ClockTimer {
  readonly [clockTimer]?: true;
}
declare const clockTimer: unique symbol;

export interface Clock {
  /** Milliseconds since the epoch, as Date.now(). */
  now(): number;
  /** Calls `fn` once `ms` of this clock's time have passed (unref'd: it does not keep the process alive). */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  clearTimeout(timer: ClockTimer | undefined): void;
}

/** The real clock. `now` is Date.now itself, so a hit pays one call, as before. */
export const systemClock: Clock = {
  now: Date.now,
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref() as ClockTimer,
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
};
