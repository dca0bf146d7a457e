/**
 * A clock a test moves forward. It runs at real speed (a fetch that takes 300 ms of the network
 * takes 300 ms of this clock too) and `advance` jumps it ahead, firing at once the timers the
 * jump passes, in the order they fall due: a test waits for a ttl, a back-off or a prefetch
 * without sleeping through it.
 */
import { systemClock, type Clock, type ClockTimer } from '../../src/clock.js';

const MAX_DELAY_MS = 2 ** 31 - 1;

interface Pending {
  due: number;
  fn: () => void;
  real: NodeJS.Timeout | undefined;
}

export class TestClock implements Clock {
  private offset = 0;
  private readonly pending = new Set<Pending>();

  /** An arrow function: parts keep `clock.now` and call it unbound, as they do Date.now. */
  readonly now = (): number => Date.now() + this.offset;

  readonly setTimeout = (fn: () => void, ms: number): ClockTimer => {
    // As node's setTimeout: a delay past 2^31-1 ms fires at once.
    const delay = ms > MAX_DELAY_MS ? 1 : Math.max(0, ms);
    const timer: Pending = { due: this.now() + delay, fn, real: undefined };
    this.pending.add(timer);
    this.arm(timer);
    return timer as ClockTimer;
  };

  readonly clearTimeout = (timer: ClockTimer | undefined): void => {
    const t = timer as Pending | undefined;
    if (!t || !this.pending.delete(t)) return;
    clearTimeout(t.real);
  };

  /** Moves time forward by `ms`; timers due by then fire now, earliest first (also those they set). */
  advance(ms: number): void {
    this.offset += ms;
    for (;;) {
      let next: Pending | undefined;
      for (const t of this.pending) if (t.due <= this.now() && (!next || t.due < next.due)) next = t;
      if (!next) break;
      this.pending.delete(next);
      clearTimeout(next.real);
      next.fn();
    }
    for (const t of this.pending) this.arm(t);
  }

  /**
   * Lets this clock reach `at` as real time would, without waiting for it: it jumps to each timer
   * due on the way, fires it, and awaits `settle` (the work the timer started, a refresh say)
   * before it jumps again, so real work in flight is never overtaken by a jump. That work takes
   * its real time, which may carry the clock past `at`.
   */
  async runUntil(at: number, settle: () => Promise<unknown> = async () => undefined): Promise<void> {
    for (;;) {
      await settle();
      let due: number | undefined;
      for (const t of this.pending) if (due === undefined || t.due < due) due = t.due;
      if (due === undefined || due > at) break;
      this.advance(Math.max(0, due - this.now()));
    }
    this.advance(Math.max(0, at - this.now()));
    await settle();
  }

  /** runUntil `ms` from now. */
  run(ms: number, settle?: () => Promise<unknown>): Promise<void> {
    return this.runUntil(this.now() + ms, settle);
  }

  private arm(timer: Pending): void {
    clearTimeout(timer.real);
    timer.real = setTimeout(() => {
      if (!this.pending.delete(timer)) return;
      timer.fn();
    }, Math.max(0, timer.due - this.now())).unref();
  }
}

/** The real clock's timers with a `now` of the test's (a counter it sets by hand). */
export function clockWith(now: () => number): Clock {
  return { ...systemClock, now };
}
