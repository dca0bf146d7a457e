/**
 * Prefetch (SPEC 3.4): one timer per prefetched key that refreshes the entry ahead of its expiry,
 * so that a scrape never finds it expired, and after a failed fetch tries again in the background,
 * backing off, so that scrapes need not. What a refresh does is the host's (the coordinator's).
 */
import type { Clock, ClockTimer } from '../clock.js';
import type { Route } from '../config/types.js';
import { startupTarget } from './cache-policy.js';
import type { ScrapeTarget } from './filler.js';
import { prefetchAt, retryBackoffMs } from './freshness.js';
import { keyOf, routeOfKey } from './key.js';
import { windowsFor } from './route-windows.js';
import type { StoredResponse } from './stored-response.js';

/** setTimeout fires at once past 2^31-1 ms: a ttl of weeks refreshes a little early instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface PrefetchHost {
  /** The current route of that name (after a reload, the new one). */
  route(name: string): Route | undefined;
  /** The entry held under a key, without touching recency. */
  peek(key: string): StoredResponse | undefined;
  /** Refreshes a target in the background, replacing `held`. */
  refresh(target: ScrapeTarget, held: StoredResponse | undefined): void;
}

export class Prefetcher {
  private readonly timers = new Map<string, ClockTimer>();
  /** Consecutive failed prefetches per key, for the back-off while no entry exists yet. */
  private readonly failures = new Map<string, number>();
  private closed = false;

  /** `enabled` false where another process prefetches for this one (a cluster worker). */
  constructor(
    readonly enabled: boolean,
    private readonly host: PrefetchHost,
    private readonly clock: Clock,
  ) {}

  has(key: string): boolean {
    return this.timers.has(key);
  }

  /** Refreshes an entry ahead of its expiry. */
  schedule(target: ScrapeTarget, entry: StoredResponse): void {
    if (!this.enabled) return;
    this.failures.delete(entry.key);
    this.setTimer({ ...target, representation: entry.representation, accept: entry.accept }, prefetchAt(entry, target.route.timeoutMs));
  }

  /** A fetch of a prefetched target failed: try again later, later with every failure. */
  failed(target: ScrapeTarget, key: string): void {
    if (!this.enabled || this.closed) return;
    const count = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, count);
    this.setTimer(target, this.clock.now() + retryBackoffMs(count, windowsFor(target.route, target.query).ttlMs));
  }

  /** Stops the timers of keys whose route is gone or prefetches no more (a reload). */
  retain(): void {
    for (const [key, timer] of this.timers) {
      if (this.host.route(routeOfKey(key))?.prefetch) continue;
      this.clock.clearTimeout(timer);
      this.timers.delete(key);
    }
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers.values()) this.clock.clearTimeout(timer);
    this.timers.clear();
  }

  private setTimer(target: ScrapeTarget, at: number): void {
    const key = keyOf(target);
    this.clock.clearTimeout(this.timers.get(key));
    this.timers.set(key, this.clock.setTimeout(() => this.fire(target, key), Math.min(MAX_TIMER_MS, Math.max(0, at - this.clock.now()))));
  }

  private fire(target: ScrapeTarget, key: string): void {
    this.timers.delete(key);
    const route = this.host.route(target.route.name);
    if (!route?.prefetch || this.closed) return;
    const held = this.host.peek(key);
    // Keep refreshing what is held, and the start-up representation; an evicted other one is
    // fetched again only when a scraper asks for it.
    if (!held && target.representation !== startupTarget(route, target.path).representation) {
      this.failures.delete(key);
      return;
    }
    this.host.refresh({ ...target, route }, held);
  }
}
