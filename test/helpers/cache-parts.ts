/**
 * The parts of ScrapeCache built alone, for the tests of one part: a route from a config text,
 * a clock the test moves, a filler that answers as the test says and counts its fetches, and
 * the parts wired as the coordinator wires them.
 */
import type { Clock, ClockTimer } from '../../src/clock.js';
import { AnsweredKeys } from '../../src/cache/answered-keys.js';
import { CacheTiers } from '../../src/cache/cache-tiers.js';
import type { EventBus } from '../../src/cache/event-bus.js';
import { FailureBook } from '../../src/cache/failure-book.js';
import type { Filler, FillOutcome, ScrapeTarget } from '../../src/cache/filler.js';
import { keyOf } from '../../src/cache/key.js';
import { MemoryStore } from '../../src/cache/memory-store.js';
import type { Store } from '../../src/cache/store.js';
import type { StoredRecord } from '../../src/cache/stored-record.js';
import { parseConfig } from '../../src/config/load.js';
import type { Route } from '../../src/config/types.js';
import { createLogger } from '../../src/log.js';
import { makeRecord, T0 } from './store-conformance.js';

export { T0 } from './store-conformance.js';
export const log = createLogger('error');

/** Routes from a `routes:` list in YAML (upstreams on a closed port: nothing here fetches). */
export function routesOf(yaml: string): Route[] {
  return parseConfig(`routes:\n${yaml}`, 'test.yaml').routes;
}

export const nodeRoute = (extra = ''): Route =>
  routesOf(`  - name: node\n    path: /node/metrics\n    upstream: http://127.0.0.1:9/metrics\n    ttl: 1m\n${extra}`)[0]!;

/**
 * A clock that stands still until the test moves it. Its timers are node's own, so that a test
 * can drive them with node:test's mock timers.
 */
export class ManualClock implements Clock {
  at = T0;
  readonly now = (): number => this.at;
  readonly setTimeout = (fn: () => void, ms: number): ClockTimer => setTimeout(fn, ms).unref() as ClockTimer;
  readonly clearTimeout = (timer: ClockTimer | undefined): void => clearTimeout(timer as NodeJS.Timeout | undefined);
  advance(ms: number): void {
    this.at += ms;
  }
}

export function targetOf(route: Route, representation: ScrapeTarget['representation'] = 'openmetrics;1.0.0', accept?: string): ScrapeTarget {
  return { route, path: route.path ?? '/', query: '', representation, accept };
}

/** A record of the route's target as a fill of it at `fetchedAt` would store it. */
export function recordFor(target: ScrapeTarget, fetchedAt = T0, fields: Parameters<typeof makeRecord>[0] = {}): StoredRecord {
  return makeRecord({
    route: target.route.name,
    path: target.path,
    query: target.query,
    representation: target.representation,
    accept: target.accept,
    fingerprint: target.route.recordFingerprint,
    fetchedAt,
    ttlMs: target.route.ttlMs,
    ...fields,
  });
}

/** A filler whose answers the test gives: by default a storable 200 record fetched now. */
export class ScriptedFiller implements Filler {
  readonly fetched: ScrapeTarget[] = [];
  answer: (target: ScrapeTarget) => Promise<FillOutcome>;

  constructor(clock: ManualClock) {
    this.answer = async (target) => ({ record: recordFor(target, clock.at), storable: true, fetchedMs: 1 });
  }

  fill(target: ScrapeTarget, key: string): Promise<FillOutcome> {
    if (key !== keyOf(target)) throw new Error(`asked for ${key} with a target of ${keyOf(target)}`);
    this.fetched.push(target);
    return this.answer(target);
  }
}

/** A bus that keeps what was published. */
export class RecordingBus implements EventBus {
  readonly published: Parameters<EventBus['publish']>[0][] = [];
  publish(event: Parameters<EventBus['publish']>[0]): void {
    this.published.push(event);
  }
  subscribe(): () => void {
    return () => undefined;
  }
  close(): void {}
}

export function tiersWith(clock: ManualClock, options: { second?: Store; bus?: EventBus; shared?: boolean } = {}) {
  const failures = new FailureBook(clock.now);
  const answered = new AnsweredKeys();
  const memory = new MemoryStore(64 << 20, {}, clock.now);
  const tiers = new CacheTiers({ memory, second: options.second, bus: options.bus, shared: options.shared ?? false, failures, answered, log, now: clock.now });
  return { tiers, memory, failures, answered };
}
