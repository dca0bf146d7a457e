/**
 * Invalidation (SPEC 4): hard (the selected entries go, here, below and through the bus in the
 * other caches; with refresh, fetched again at once) and soft (they turn stale now but stay
 * servable while one refetch per key runs). Large selections go in slices that let scrapes be
 * answered in between (issue 21). Fills in flight for selected keys are superseded: they started
 * before the data changed.
 */
import type { Route } from '../config/types.js';
import type { Metrics } from '../metrics.js';
import { startupTarget } from './cache-policy.js';
import type { CacheTiers } from './cache-tiers.js';
import type { EventBus, Reach } from './event-bus.js';
import type { FailureBook } from './failure-book.js';
import type { ScrapeTarget } from './filler.js';
import { isDead } from './freshness.js';
import { keyOf } from './key.js';
import type { FillResult, SingleFlight } from './single-flight.js';
import { selects, type EntrySelection } from './store.js';
import type { StoredResponse } from './stored-response.js';

/** Entries dropped between two turns of the event loop in a large invalidation. */
const INVALIDATION_SLICE = 1000;

export interface InvalidationParts {
  tiers: CacheTiers;
  flights: SingleFlight;
  failures: FailureBook;
  bus: EventBus | undefined;
  metrics: Metrics | undefined;
  now: () => number;
  /** Frees the lease a superseded fill holds. */
  release: (key: string, token: string) => void;
  /** The current routes by name. */
  routes: () => ReadonlyMap<string, Route>;
  /** A new fill of the key, in flight or not (a refetch starts after the data changed). */
  fill: (key: string, target: ScrapeTarget, previous: StoredResponse | undefined) => Promise<FillResult>;
}

export interface Invalidated {
  invalidated: number;
  refreshed: number;
  reach?: Reach;
}

export class Invalidation {
  /** The last invalidation that did not reach the whole fleet, while no later one did (for the status page). */
  lastUnreached: (Reach & { at: number }) | undefined;

  constructor(private readonly parts: InvalidationParts) {}

  /** Drops the selected entries here, below and in the other caches; with refresh, fetches them again. */
  async invalidate(selection: EntrySelection, refresh: boolean): Promise<Invalidated> {
    const { tiers } = this.parts;
    // The shared level after memory (deleting the leases of fills in flight, see CacheTiers.store),
    // then the others' copies: once the bus has delivered, no replica holds or can read back an old
    // one. Until the second level is cleared too, nothing it holds for the selection is read back.
    const dropped = await tiers.whileClearing(selection, async () => {
      const gone = await this.dropInSlices(selection);
      await tiers.second?.deleteSelected(selection);
      return gone;
    });
    const reach = this.reached(await this.parts.bus?.publish({ type: 'invalidated', selection }));
    this.parts.metrics?.invalidations.inc(dropped.length);
    const refreshed = refresh ? await this.refetchDropped(selection, dropped) : 0;
    return reach ? { invalidated: dropped.length, refreshed, reach } : { invalidated: dropped.length, refreshed };
  }

  /**
   * Soft invalidation: query-less keys are refetched at once, keys with a query on their next
   * scrape. The other caches mark theirs the same way (their next scrape joins this refetch).
   * With wait, resolves once those refetches are done.
   */
  async softInvalidate(selection: EntrySelection, wait: boolean): Promise<Invalidated & { refetching: number }> {
    const { marked, dropped } = this.markStale(selection);
    // The mark is written where the record lives (SPEC 2.2), before the refetch can store over
    // it (one key's writes keep their order): a restart during the refetch, or a replica reading
    // the record there, serves it as stale, not fresh.
    for (const entry of marked) void this.parts.tiers.second?.set(entry);
    const reach = this.reached(await this.parts.bus?.publish({ type: 'invalidated', selection, soft: true }));
    const invalidated = marked.length + dropped;
    this.parts.metrics?.invalidations.inc(invalidated);
    const refetches: Promise<boolean>[] = [];
    for (const entry of marked) {
      const target = this.refetchTarget(entry);
      if (target) refetches.push(this.parts.fill(entry.key, target, entry).then((r) => r.stored, () => false));
    }
    const refreshed = wait ? (await Promise.all(refetches)).filter(Boolean).length : 0;
    return reach ? { invalidated, refetching: refetches.length, refreshed, reach } : { invalidated, refetching: refetches.length, refreshed };
  }

  /**
   * Another cache's invalidation (a cluster worker hearing its primary): in slices too. Resolves
   * once applied (the last slice dropped): a worker confirms it to its primary then.
   */
  heard(selection: EntrySelection, soft: boolean): Promise<unknown> | undefined {
    if (!soft) return this.dropInSlices(selection);
    this.markStale(selection);
    return undefined;
  }

  /** Drops every entry of the named routes (their upstream or headers changed on reload). */
  dropRoutes(names: ReadonlySet<string>): number {
    let n = 0;
    for (const route of names) {
      n += this.drop({ route });
      void this.parts.tiers.second?.deleteSelected({ route });
    }
    return n;
  }

  private reached(reach: Reach | void | undefined): Reach | undefined {
    this.lastUnreached = reach ? { ...reach, at: this.parts.now() } : undefined;
    return reach ?? undefined;
  }

  /**
   * Fetches the dropped query-less entries again, and a selected exact-path route when nothing of
   * it was cached (an earlier invalidation, a restart), in the representation Prometheus asks
   * for, as prefetch does: "drop and fetch again now, so the next scrape is a hit" holds whatever
   * came before. Not a route with query_keys: it is scraped with a query (blackbox's /probe?target=...).
   */
  private async refetchDropped(selection: EntrySelection, dropped: StoredResponse[]): Promise<number> {
    let refreshed = 0;
    const fills: Promise<unknown>[] = [];
    const refetched = new Set<string>();
    const refetch = (key: string, target: ScrapeTarget) => {
      refetched.add(key);
      // A new fetch even when one is in flight: that one started before the data changed.
      fills.push(this.parts.fill(key, target, undefined).then((r) => r.stored && refreshed++, () => undefined));
    };
    for (const old of dropped) {
      const target = this.refetchTarget(old);
      if (target) refetch(old.key, target);
      // Entries are stored under what the upstream answered: the route's start-up key may differ.
      if (target && old.path === target.route.path) refetched.add(keyOf(startupTarget(target.route, old.path)));
    }
    for (const route of this.parts.routes().values()) {
      if (!route.cache || route.path === undefined || route.queryKeys !== null || !selects(selection, { route: route.name, path: route.path, query: '' })) continue;
      const target = startupTarget(route, route.path);
      const key = keyOf(target);
      if (!refetched.has(key)) refetch(key, target);
    }
    await Promise.all(fills);
    return refreshed;
  }

  /** The target that fetches an entry again; undefined for keys with a query (fetched on their next scrape) or a route gone. */
  private refetchTarget(entry: StoredResponse): ScrapeTarget | undefined {
    const route = this.parts.routes().get(entry.route);
    if (!route || entry.query !== '') return undefined;
    return { route, path: entry.path, query: '', representation: entry.representation, accept: entry.accept };
  }

  /** Fills in flight for selected keys answer their waiters but store nothing; reads below that started before keep nothing. */
  private begin(selection: EntrySelection): void {
    this.parts.tiers.invalidating();
    this.parts.flights.supersede(selection, this.parts.release);
  }

  /**
   * Marks the selected entries stale without refetching. Entries past every window are
   * dropped, not revived.
   */
  private markStale(selection: EntrySelection): { marked: StoredResponse[]; dropped: number } {
    const now = this.parts.now();
    const { memory } = this.parts.tiers;
    this.begin(selection);
    const marked: StoredResponse[] = [];
    let dropped = 0;
    for (const entry of memory.selected(selection)) {
      if (isDead(entry, now)) {
        if (memory.deleteIf(entry)) dropped++;
        continue;
      }
      marked.push(entry);
      entry.markStale(now, this.parts.routes().get(entry.route)?.timeoutMs ?? 0);
      // One refetch now, not after a back-off from failures before the data changed.
      this.parts.failures.clear(entry.key);
    }
    return { marked, dropped };
  }

  /** Drops the selected entries from memory at once. */
  private drop(selection: EntrySelection): number {
    this.begin(selection);
    let n = 0;
    for (const entry of this.parts.tiers.memory.selected(selection)) if (this.dropEntry(entry)) n++;
    return n;
  }

  /** drop() for a selection of any size; resolves to the entries dropped once the last slice is done. */
  private async dropInSlices(selection: EntrySelection): Promise<StoredResponse[]> {
    this.begin(selection);
    const chosen = this.parts.tiers.memory.selected(selection);
    const dropped: StoredResponse[] = [];
    for (let i = 0; i < chosen.length; i += INVALIDATION_SLICE) {
      if (i > 0) await yieldToScrapes();
      for (const entry of chosen.slice(i, i + INVALIDATION_SLICE)) if (this.dropEntry(entry)) dropped.push(entry);
    }
    return dropped;
  }

  /** An entry stored meanwhile was fetched after the invalidation began: it stays. */
  private dropEntry(entry: StoredResponse): boolean {
    if (!this.parts.tiers.memory.deleteIf(entry)) return false;
    this.parts.failures.clear(entry.key);
    return true;
  }
}

/** Lets the I/O waiting (scrapes) run before going on. */
function yieldToScrapes(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
