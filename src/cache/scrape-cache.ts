/**
 * The cache's decisions: serve fresh, serve stale and refresh, or fill with at most one fetch
 * per key in flight (SPEC 3.3, 3.4). It decides (cache-policy.ts) and delegates to parts with
 * one job each: the levels as one store (cache-tiers.ts), the fills (fills.ts, single-flight.ts,
 * peer-fill.ts), the back-off (failure-book.ts), prefetch (prefetcher.ts) and invalidation
 * (invalidation.ts). It knows nothing of processes, files or networks (issue 9, issue 18).
 */
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Route } from '../config/types.js';
import type { ProxyError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { AnsweredKeys } from './answered-keys.js';
import { decide, isPrefetched, startupTarget } from './cache-policy.js';
import { CacheReads } from './cache-reads.js';
import { CacheTiers } from './cache-tiers.js';
import { CacheEvents } from './cache-events.js';
import type { EventBus, Reach } from './event-bus.js';
import { FailureBook } from './failure-book.js';
import type { FillLease } from './fill-lease.js';
import type { Filler, ScrapeTarget } from './filler.js';
import { Fills } from './fills.js';
import { canServeOnError, isFresh } from './freshness.js';
import { Invalidation } from './invalidation.js';
import { keyOf } from './key.js';
import { FillFailed, type Lookup } from './lookup.js';
import { PeerFill } from './peer-fill.js';
import { Prefetcher } from './prefetcher.js';
import type { Representation } from './representation.js';
import { SingleFlight, type FillResult } from './single-flight.js';
import type { EntrySelection, LevelStatus, MemoryLevel, Store } from './store.js';
import type { StoredResponse } from './stored-response.js';

export type { ScrapeTarget } from './filler.js';
export type { EntryIdentity } from './store.js';
export type { RouteUsage } from './entry-index.js';
export type { FillResult } from './single-flight.js';
export { FillFailed, type Lookup } from './lookup.js';

export interface ScrapeCacheParts {
  memory: MemoryLevel;
  filler: Filler;
  /** A level below memory: written on store, read on a miss, cleared on invalidation. */
  second?: Store;
  /**
   * Single flight beyond this process (replicas sharing a second level). Without one, fills
   * are single within this process only, which is all one process or a cluster needs.
   */
  lease?: FillLease;
  bus?: EventBus;
  /** False where another process prefetches for this one (a cluster worker). */
  prefetch?: boolean;
  metrics?: Metrics;
  log: Logger;
  /** Time for freshness and back-off, and the prefetch timers (default: the real clock). */
  clock?: Clock;
}

export class ScrapeCache extends CacheReads {
  private readonly filler: Filler;
  private readonly now: () => number;
  private readonly failures: FailureBook;
  private readonly tiers: CacheTiers;
  private readonly flights = new SingleFlight();
  private readonly peer: PeerFill;
  private readonly prefetcher: Prefetcher;
  private readonly fills: Fills;
  private readonly invalidation: Invalidation;
  private readonly events: CacheEvents;
  private readonly unsubscribe: () => void;
  private routesByName = new Map<string, Route>();

  constructor(parts: ScrapeCacheParts) {
    const { memory, filler, second, lease, bus, metrics, log } = parts;
    const clock = parts.clock ?? systemClock;
    const now = clock.now;
    super(memory);
    const routes = (): ReadonlyMap<string, Route> => this.routesByName;
    const answered = new AnsweredKeys();
    const failures = new FailureBook(now);
    const flights = this.flights;
    const tiers = new CacheTiers({ memory, second, bus, shared: lease !== undefined, failures, answered, log, now });
    const peer = new PeerFill({ lease, tiers, failures, now });
    const prefetcher = new Prefetcher(parts.prefetch !== false, { route: (name) => routes().get(name), peek: (key) => memory.peek(key), refresh: (target, held) => fills.background(target, held) }, clock);
    const fills = new Fills({ flights, peer, tiers, failures, prefetcher, answered, filler, bus, log });
    const release = (key: string, token: string) => void peer.release(key, token);
    const invalidation = new Invalidation({ tiers, flights, failures, hits: this.hits, bus, metrics, now, release, routes, fill: (key, target, previous) => fills.fill(key, target, previous) });
    this.events = new CacheEvents({ tiers, failures, invalidation, peer, prefetcher, routes });
    this.filler = filler;
    this.now = now;
    this.failures = failures;
    this.tiers = tiers;
    this.peer = peer;
    this.prefetcher = prefetcher;
    this.fills = fills;
    this.invalidation = invalidation;
    this.unsubscribe = bus?.subscribe((event) => this.events.heard(event)) ?? (() => undefined);
  }

  /**
   * Calls `observer` with each 200 a fill brings (fetched here, or by a peer this fill waited
   * for), with the target it was planned for: the scrape listener learns from what the upstream
   * answers, also when the client that asked gave up before the answer came.
   */
  onAnswer(observer: (target: ScrapeTarget, entry: StoredResponse) => void): void {
    this.fills.observer = observer;
  }

  /** Makes a route set current: prefetch starts for new prefetch routes, timers of removed ones stop. */
  setRoutes(routes: readonly Route[]): void {
    this.routesByName = new Map(routes.map((r) => [r.name, r]));
    this.prefetcher.retain();
    this.filler.retain?.(routes);
    if (!this.prefetcher.enabled) return;
    for (const route of routes) if (route.prefetch && route.path !== undefined) this.startPrefetch(route, route.path);
  }

  private startPrefetch(route: Route, path: string): void {
    const target = startupTarget(route, path);
    const key = keyOf(target);
    if (!this.prefetcher.has(key) && !this.flights.has(key)) {
      const entry = this.memory.peek(key);
      if (entry) this.prefetcher.schedule(target, entry);
      // Entries loaded under what the upstream answered are kept fresh by the loop below.
      else if (this.memory.countSelected({ route: route.name, path, query: '' }) === 0) this.fills.background(target, undefined);
    }
    // Other representations loaded from a second level are kept fresh as they were before.
    for (const entry of this.memory.selected({ route: route.name, path, query: '' })) {
      if (entry.key === key) continue;
      const other = { ...target, representation: entry.representation, accept: entry.accept };
      if (isPrefetched(other) && !this.prefetcher.has(entry.key)) this.prefetcher.schedule(other, entry);
    }
  }

  /** Fills memory from the second level (start-up, SPEC 2.1): after setRoutes, before the first answer. */
  load(routes: readonly Route[]): Promise<{ loaded: number; dropped: number }> {
    return this.tiers.load(routes);
  }

  /**
   * Answers a scrape. Synchronous for hits and stale serves, so the hot path awaits nothing;
   * a promise when the client must wait for a fill. Rejects with FillFailed when the fill
   * fails and nothing stale may be served.
   */
  lookup(target: ScrapeTarget): Lookup | Promise<Lookup> {
    const key = keyOf(target);
    const now = this.now();
    const entry = this.tiers.lookup(key, target.accept, now);
    // The hot path: a fresh entry needs no look at the back-off.
    if (entry && isFresh(entry, now)) return this.served(entry, 'hit');
    const failure = entry && this.failures.of(key, entry);
    switch (decide(entry, failure, now)) {
      case 'hit':
        return this.served(entry!, 'hit');
      case 'stale-and-refresh':
        this.fills.background(target, entry);
        return this.served(entry!, 'stale', failure?.fwdStatus);
      case 'stale-under-back-off':
        return this.served(entry!, 'stale', failure?.fwdStatus);
      case 'fill':
        return this.waitForFill(key, target, entry);
    }
  }

  private served(entry: StoredResponse, cache: 'hit' | 'stale', fwdStatus?: number | string): Lookup {
    this.hits.count(entry);
    return fwdStatus === undefined ? { cache, entry, stored: true } : { cache, entry, stored: true, fwdStatus };
  }

  /** A client waits for the fill in flight or a new one; what stale entry it had is served on an upstream error. */
  private async waitForFill(key: string, target: ScrapeTarget, entry: StoredResponse | undefined): Promise<Lookup> {
    const { promise, joined } = this.fills.joinOrFill(key, target, entry);
    let result: FillResult;
    try {
      result = await promise;
    } catch (err) {
      if (entry && canServeOnError(entry, this.now())) return this.served(entry, 'stale', (err as ProxyError).status);
      throw new FillFailed(err as ProxyError, joined);
    }
    const as = result.via === 'held' ? 'hit' : joined || result.via === 'joined' ? 'collapsed' : 'miss';
    if (result.stored && as === 'hit' && !isFresh(result.entry, this.now())) {
      // A soft-invalidated record read from below: served stale while it is refetched.
      this.fills.background(target, result.entry);
      return this.served(result.entry, 'stale');
    }
    if (result.stored) {
      if (as === 'hit') this.hits.count(result.entry);
      return { cache: as, entry: result.entry, stored: true };
    }
    const status = result.entry.status;
    if (entry && status >= 500 && canServeOnError(entry, this.now())) return this.served(entry, 'stale', status);
    return { cache: as === 'hit' ? 'miss' : as, entry: result.entry, stored: false, fwdStatus: status };
  }

  /** A fresh entry for a target here or below, in one of these representations (see CacheTiers.heldAnswer). */
  heldAnswer(target: ScrapeTarget, representations: readonly Representation[]): Promise<StoredResponse | undefined> {
    return this.tiers.heldAnswer(target, representations);
  }

  /** The stale entry, when stale_if_error allows: for a client whose own timeout ends before a refresh does. */
  staleOnError(target: ScrapeTarget): Lookup | undefined {
    const entry = this.memory.peek(keyOf(target));
    if (!entry || !canServeOnError(entry, this.now())) return undefined;
    return this.served(entry, 'stale', 504);
  }

  /** Drops the selected entries here, in the second level and (through the bus) in the other caches; with refresh, fetches them again. */
  invalidate(selection: EntrySelection, refresh = false): Promise<{ invalidated: number; refreshed: number; reach?: Reach }> {
    return this.invalidation.invalidate(selection, refresh);
  }

  /** Soft invalidation (SPEC 4 `soft`): stale now, served while refetched (see Invalidation). */
  softInvalidate(selection: EntrySelection, wait = false): Promise<{ invalidated: number; refetching: number; refreshed: number; reach?: Reach }> {
    return this.invalidation.softInvalidate(selection, wait);
  }

  /** The last invalidation that did not reach the whole fleet, while no later one did (for the status page). */
  get lastUnreached(): (Reach & { at: number }) | undefined {
    return this.invalidation.lastUnreached;
  }

  /** Drops every entry of the named routes (their upstream or headers changed on reload). */
  dropRoutes(names: ReadonlySet<string>): number {
    return this.invalidation.dropRoutes(names);
  }

  /** Removes an entry found unservable (a corrupt gzip body), here and below. */
  discard(entry: StoredResponse): void {
    this.tiers.discard(entry);
  }

  /** How each level is doing: memory, then the second level (the status page). */
  levels(): Promise<LevelStatus[]> {
    return this.tiers.levels();
  }

  /** Fills and background refreshes still running, for graceful shutdown. */
  drain(): Promise<void> {
    return this.flights.drain();
  }

  async close(): Promise<void> {
    this.fills.close();
    this.tiers.stop();
    this.events.close();
    this.unsubscribe();
    this.prefetcher.close();
    this.peer.close();
    await this.filler.close?.();
    await this.tiers.close();
  }

  /** For a cluster worker asking its primary: a fresh entry, the one fill in flight, or a new fill. */
  fillFor(target: ScrapeTarget): Promise<FillResult> {
    const key = keyOf(target);
    const now = this.now();
    const entry = this.tiers.lookup(key, target.accept, now);
    if (entry && isFresh(entry, now)) return Promise.resolve({ entry, stored: true, via: 'held' });
    const { promise, joined } = this.fills.joinOrFill(key, target, entry);
    return joined ? promise.then((r) => ({ ...r, via: r.via ?? 'joined' })) : promise;
  }
}
