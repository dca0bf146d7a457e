/**
 * The cache's decisions: serve fresh, serve stale and refresh, or fill with at most one fetch
 * per key in flight (SPEC 3.3, 3.4). Fills that outlive their clients run on and are stored. A
 * failed refresh never touches the good entry it was refreshing.
 *
 * The parts it decides for are given to it (issue 9): the memory level, an optional second
 * level, the filler (who fetches), the fill lease (who may fetch now) and the event bus (what
 * the other caches are told). It knows nothing of processes, files or networks.
 */
import type { Logger } from 'pino';
import { systemClock, type Clock, type ClockTimer } from '../clock.js';
import type { Route } from '../config/types.js';
import { ProxyError, upstreamAddress } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { PROMETHEUS_ACCEPT } from '../upstream/fetch-upstream.js';
import type { CacheEvent, EventBus, Reach } from './event-bus.js';
import type { FillLease } from './fill-lease.js';
import type { Filler, FillOutcome, ScrapeTarget } from './filler.js';
import { canServeOnError, canServeWhileRevalidating, canServeWhileSoftRefetching, isDead, isFresh, prefetchAt, retryBackoffMs } from './freshness.js';
import { cacheKey } from './key.js';
import { windowsFor } from './route-windows.js';
import type { RouteUsage } from './entry-index.js';
import type { MemoryStore } from './memory-store.js';
import { selects, type EntrySelection, type LevelStatus, type Store } from './store.js';
import type { StoredRecord } from './stored-record.js';
import type { Representation } from './representation.js';
import { renderingKey, StoredResponse } from './stored-response.js';
import { answerCandidates, representationOfContentType, SOURCE, SOURCE_ACCEPT } from './upstream-profile.js';

const PROBE_PREFIX = `${SOURCE_ACCEPT},`;

export type { ScrapeTarget } from './filler.js';
export type { EntryIdentity } from './store.js';

/** A fill failed and nothing stale may be served; says whether this request only waited for it. */
export class FillFailed extends Error {
  constructor(
    readonly error: ProxyError,
    readonly collapsed: boolean,
  ) {
    super(error.message, { cause: error });
  }
}

interface Fill {
  target: ScrapeTarget;
  promise: Promise<FillResult>;
  /** An invalidation or reload selected this key after the fill started: answer, but do not store. */
  superseded: boolean;
  /** The lease this fill holds, if any: freed early when the fill is superseded. */
  token?: string;
}

export type Lookup =
  | { cache: 'hit' | 'stale' | 'miss' | 'collapsed'; entry: StoredResponse; stored: boolean; fwdStatus?: number | string }
  | { cache: 'miss' | 'collapsed'; entry: StoredResponse; stored: false; fwdStatus: number };

export interface FillResult {
  /** The response: stored, or (non-200, Set-Cookie, too large for the store) not. */
  entry: StoredResponse;
  stored: boolean;
  /** Not this cache's own fetch: another's fill joined (`collapsed`), or a copy held elsewhere (`hit`). */
  via?: 'joined' | 'held';
}

/** Refresh failures of a key, valid for the entry fetched at `fetchedAt` (a new entry starts clean). */
interface FailureState {
  count: number;
  retryAt: number;
  fwdStatus: number | string;
  fetchedAt: number | undefined;
}

export type { RouteUsage } from './entry-index.js';

export interface ScrapeCacheParts {
  memory: MemoryStore;
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

export class ScrapeCache {
  private readonly memory: MemoryStore;
  private readonly filler: Filler;
  private readonly second: Store | undefined;
  private readonly lease: FillLease | undefined;
  private readonly bus: EventBus | undefined;
  private readonly prefetches: boolean;
  private readonly metrics: Metrics | undefined;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly clock: Clock;
  private readonly inflight = new Map<string, Fill>();
  private readonly failures = new Map<string, FailureState>();
  private readonly prefetchTimers = new Map<string, ClockTimer>();
  /** Fills another cache holds the lease for: resolved by its `stored` or `failed` event. */
  private readonly peerFills = new Map<string, Array<(event: CacheEvent | undefined) => void>>();
  private readonly unsubscribe: () => void;
  private routesByName = new Map<string, Route>();
  private closed = false;
  /** Told of every 200 a fill of this cache brings, whoever waits for it (see onAnswer). */
  private answered: ((target: ScrapeTarget, entry: StoredResponse) => void) | undefined;
  /**
   * Counts invalidations (drop and markStale): a read from the second level that an invalidation
   * overtook is not taken into memory, since it may hold a body the invalidation removed.
   */
  private invalidations = 0;
  /** Invalidations whose second-level part is still running: reads below skip what they select. */
  private readonly clearing = new Set<EntrySelection>();

  constructor(parts: ScrapeCacheParts) {
    this.memory = parts.memory;
    this.filler = parts.filler;
    this.second = parts.second;
    this.clock = parts.clock ?? systemClock;
    this.now = this.clock.now;
    this.lease = parts.lease;
    this.bus = parts.bus;
    this.prefetches = parts.prefetch !== false;
    this.metrics = parts.metrics;
    this.log = parts.log;
    this.unsubscribe = this.bus?.subscribe((event) => this.onEvent(event)) ?? (() => undefined);
  }

  /**
   * Calls `observer` with each 200 a fill brings (fetched here, or by a peer this fill waited
   * for), with the target it was planned for: the scrape listener learns from what the upstream
   * answers, also when the client that asked gave up before the answer came.
   */
  onAnswer(observer: (target: ScrapeTarget, entry: StoredResponse) => void): void {
    this.answered = observer;
  }

  /** Makes a route set current: prefetch starts for new prefetch routes, timers of removed ones stop. */
  setRoutes(routes: readonly Route[]): void {
    this.routesByName = new Map(routes.map((r) => [r.name, r]));
    for (const [key, timer] of this.prefetchTimers) {
      const route = this.routesByName.get(key.slice(0, key.indexOf('\0')));
      if (!route?.prefetch) {
        this.clock.clearTimeout(timer);
        this.prefetchTimers.delete(key);
      }
    }
    this.filler.retain?.(routes);
    if (!this.prefetches) return;
    for (const route of routes) {
      if (!route.prefetch || route.path === undefined) continue;
      const target = startupTarget(route, route.path);
      const key = keyOf(target);
      if (!this.prefetchTimers.has(key) && !this.inflight.has(key)) {
        const entry = this.memory.peek(key);
        if (entry) this.schedulePrefetch(target, entry);
        // Entries loaded under what the upstream answered are kept fresh by the loop below.
        else if (!this.holdsPath(route.name, route.path)) this.background(target, undefined);
      }
      // Other representations loaded from a second level are kept fresh as they were before.
      for (const entry of this.memory.selected({ route: route.name, path: route.path, query: '' })) {
        if (entry.key === key) continue;
        const other = { ...target, representation: entry.representation, accept: entry.accept };
        if (isPrefetched(other) && !this.prefetchTimers.has(entry.key)) this.schedulePrefetch(other, entry);
      }
    }
  }

  /**
   * Fills the memory level from the second level (start-up, SPEC 2.1): records of routes that
   * exist and still fetch the same way. The others are removed from the second level. Call
   * after setRoutes' routes are known and before the first answer.
   */
  async load(routes: readonly Route[]): Promise<{ loaded: number; dropped: number }> {
    const byName = new Map(routes.map((r) => [r.name, r]));
    let loaded = 0;
    let dropped = 0;
    if (!this.second?.records) return { loaded, dropped };
    for await (const record of this.second.records()) {
      const route = byName.get(record.route);
      const why = !route ? 'its route is gone' : !route.cache ? 'its route is pass-through now' : route.recordFingerprint !== record.fingerprint ? 'its route fetches differently now' : undefined;
      if (why !== undefined) {
        dropped++;
        this.log.info({ route: record.route, path: record.path, query: record.query, representation: record.representation, store: this.second.name }, `stored entry dropped: ${why}`);
        await this.second.delete(record.key);
        continue;
      }
      const held = this.memory.peek(record.key);
      if (held && held.fetchedAt >= record.fetchedAt) continue;
      if (this.memory.set(record)) loaded++;
    }
    return { loaded, dropped };
  }

  /**
   * Answers a scrape. Synchronous for hits and stale serves, so the hot path awaits nothing;
   * a promise when the client must wait for a fill. Rejects with FillFailed when the fill
   * fails and nothing stale may be served.
   */
  lookup(target: ScrapeTarget): Lookup | Promise<Lookup> {
    const key = keyOf(target);
    const now = this.now();
    const entry = this.memory.lookup(key, now) ?? this.answeredFor(key, target.accept, now);
    if (entry) {
      if (isFresh(entry, now)) {
        entry.hits++;
        return { cache: 'hit', entry, stored: true };
      }
      const failure = this.failureOf(key, entry);
      // A soft-invalidated entry is served while its refetch runs; once that failed, only the
      // stale windows (stale_if_error) keep it.
      if (canServeWhileRevalidating(entry, now) || (!failure && canServeWhileSoftRefetching(entry, now))) {
        if (!failure || now >= failure.retryAt) this.background(target, entry);
        entry.hits++;
        return failure
          ? { cache: 'stale', entry, stored: true, fwdStatus: failure.fwdStatus }
          : { cache: 'stale', entry, stored: true };
      }
      // A refresh failed a moment ago: answer from the stale entry until the back-off ends,
      // rather than send every scrape upstream (nginx trac #1000).
      if (failure && now < failure.retryAt && canServeOnError(entry, now)) {
        entry.hits++;
        return { cache: 'stale', entry, stored: true, fwdStatus: failure.fwdStatus };
      }
    }
    const joined = this.inflight.get(key)?.promise;
    const collapsed = joined !== undefined;
    const fill = joined ?? this.fill(key, target, entry);
    return fill.then(
      (result): Lookup => {
        const as = result.via === 'held' ? 'hit' : collapsed || result.via === 'joined' ? 'collapsed' : 'miss';
        if (result.stored && as === 'hit' && !isFresh(result.entry, this.now())) {
          // A soft-invalidated record read from below: served stale while it is refetched.
          this.background(target, result.entry);
          result.entry.hits++;
          return { cache: 'stale', entry: result.entry, stored: true };
        }
        if (result.stored) {
          if (as === 'hit') result.entry.hits++;
          return { cache: as, entry: result.entry, stored: true };
        }
        const status = result.entry.status;
        if (entry && status >= 500 && canServeOnError(entry, this.now())) {
          entry.hits++;
          return { cache: 'stale', entry, stored: true, fwdStatus: status };
        }
        return { cache: as === 'hit' ? 'miss' : as, entry: result.entry, stored: false, fwdStatus: status };
      },
      (err: ProxyError): Lookup => {
        if (entry && canServeOnError(entry, this.now())) {
          entry.hits++;
          return { cache: 'stale', entry, stored: true, fwdStatus: err.status };
        }
        throw new FillFailed(err, collapsed);
      },
    );
  }

  /**
   * Keys whose fill the upstream answered with another representation (stored under that one,
   * see asAnswered), per Accept sent: a protobuf request answered with text, say. A later miss
   * of the same key and Accept is that entry while it is fresh, not another fetch: a process
   * that has not learned the upstream yet (a new worker, another replica) asks as the first did.
   */
  private readonly answeredAs = new Map<string, string>();

  private rememberAnswer(key: string, accept: string | undefined, answeredKey: string): void {
    if (this.answeredAs.size >= MAX_ANSWERED_AS) this.answeredAs.clear();
    this.answeredAs.set(`${key}\n${accept ?? ''}`, answeredKey);
  }

  private answeredFor(key: string, accept: string | undefined, now: number): StoredResponse | undefined {
    const answeredKey = this.answeredAs.size === 0 ? undefined : this.answeredAs.get(`${key}\n${accept ?? ''}`);
    if (answeredKey !== undefined) {
      const entry = this.memory.lookup(answeredKey, now);
      if (entry && isFresh(entry, now)) return entry;
    }
    for (const other of answeredKeys(key, accept)) {
      const entry = this.memory.lookup(other, now);
      if (entry && isFresh(entry, now)) return entry;
    }
    return undefined;
  }

  /**
   * A fresh entry held for one of these representations of the target's key, here or in the
   * second level: what another process stored as the upstream's answer to a client like this
   * one, before this process knows whether the upstream speaks protobuf.
   */
  async heldAnswer(target: ScrapeTarget, representations: readonly Representation[]): Promise<StoredResponse | undefined> {
    for (const representation of representations) {
      const key = keyOf({ ...target, representation });
      const held = this.memory.peek(key);
      if (held && isFresh(held, this.now())) return held;
      const below = await this.fromSecond(key, { ...target, representation });
      if (below) return below;
    }
    return undefined;
  }

  /** The entry held in memory for a target, fresh or not, without touching recency or counting a hit. */
  peek(target: ScrapeTarget): StoredResponse | undefined {
    return this.memory.peek(keyOf(target));
  }

  /** The entry held under a key, without touching recency (a listing's hit counts). */
  peekKey(key: string): StoredResponse | undefined {
    return this.memory.peek(key);
  }

  /**
   * The stale entry for a target, when stale_if_error allows serving it: for a client whose own
   * scrape timeout ends before a refresh does (a timeout is an error too).
   */
  staleOnError(target: ScrapeTarget): Lookup | undefined {
    const entry = this.memory.peek(keyOf(target));
    if (!entry || !canServeOnError(entry, this.now())) return undefined;
    entry.hits++;
    return { cache: 'stale', entry, stored: true, fwdStatus: 504 };
  }

  /**
   * Drops the selected entries here, in the second level and (through the bus) in the other
   * caches; with refresh, fetches the dropped query-less keys again and waits for them.
   */
  async invalidate(selection: EntrySelection, refresh = false): Promise<{ invalidated: number; refreshed: number; reach?: Reach }> {
    // The answer waits for the last slice (issue 21).
    // Until the second level is cleared too, nothing it holds for the selection is read back.
    this.clearing.add(selection);
    let dropped: StoredResponse[];
    try {
      dropped = await this.dropInSlices(selection);
      // The shared level first (deleting the leases of fills in flight, see store), then the
      // others' copies: once the bus has delivered, no replica holds or can read back an old one.
      await this.second?.deleteSelected(selection);
    } finally {
      this.clearing.delete(selection);
    }
    const invalidated = dropped.length;
    const reach = this.reached(await this.bus?.publish({ type: 'invalidated', selection }));
    this.metrics?.invalidations.inc(invalidated);
    let refreshed = 0;
    if (refresh) {
      const fills: Promise<unknown>[] = [];
      const refetched = new Set<string>();
      const refetch = (key: string, target: ScrapeTarget) => {
        refetched.add(key);
        // A new fetch even when one is in flight: that one started before the data changed.
        fills.push(this.fill(key, target, undefined).then((r) => r.stored && refreshed++, () => undefined));
      };
      for (const old of dropped) {
        const target = this.refetchTarget(old);
        if (target) refetch(old.key, target);
        // Entries are stored under what the upstream answered: the route's start-up key may differ.
        if (target && old.path === target.route.path) refetched.add(keyOf(startupTarget(target.route, old.path)));
      }
      // A selected exact-path route is fetched too when nothing of it was cached (an earlier
      // invalidation, a restart), in the representation Prometheus asks for, as prefetch does:
      // "drop and fetch again now, so the next scrape is a hit" holds whatever came before.
      // Not a route with query_keys: it is scraped with a query (blackbox's /probe?target=...).
      for (const route of this.routesByName.values()) {
        if (!route.cache || route.path === undefined || route.queryKeys !== null || !selects(selection, { route: route.name, path: route.path, query: '' })) continue;
        const target = startupTarget(route, route.path);
        const key = keyOf(target);
        if (!refetched.has(key)) refetch(key, target);
      }
      await Promise.all(fills);
    }
    return reach ? { invalidated, refreshed, reach } : { invalidated, refreshed };
  }

  /** The last invalidation that did not reach the whole fleet, while no later one did (for the status page). */
  lastUnreached: (Reach & { at: number }) | undefined;

  private reached(reach: Reach | void | undefined): Reach | undefined {
    this.lastUnreached = reach ? { ...reach, at: this.now() } : undefined;
    return reach ?? undefined;
  }

  /**
   * Soft invalidation (SPEC 4 `soft`): the selected entries turn stale now but stay servable
   * while one refetch per key runs; query-less keys are refetched at once, keys with a query on
   * their next scrape. The others caches mark theirs the same way (their next scrape joins this
   * refetch). With wait, resolves once those refetches are done.
   */
  async softInvalidate(selection: EntrySelection, wait = false): Promise<{ invalidated: number; refetching: number; refreshed: number; reach?: Reach }> {
    const { marked, dropped } = this.markStale(selection);
    // The mark is written where the record lives (SPEC 2.2), before the refetch can store over
    // it (one key's writes keep their order): a restart during the refetch, or a replica reading
    // the record there, serves it as stale, not fresh.
    for (const entry of marked) void this.second?.set(entry);
    const reach = this.reached(await this.bus?.publish({ type: 'invalidated', selection, soft: true }));
    const invalidated = marked.length + dropped;
    this.metrics?.invalidations.inc(invalidated);
    const refetches: Promise<boolean>[] = [];
    for (const entry of marked) {
      const target = this.refetchTarget(entry);
      if (target) refetches.push(this.fill(entry.key, target, entry).then((r) => r.stored, () => false));
    }
    const refreshed = wait ? (await Promise.all(refetches)).filter(Boolean).length : 0;
    return reach ? { invalidated, refetching: refetches.length, refreshed, reach } : { invalidated, refetching: refetches.length, refreshed };
  }

  /**
   * Marks the selected entries stale without refetching. Entries past every window are
   * dropped, not revived; fills in flight for selected keys are superseded, as by drop().
   */
  private markStale(selection: EntrySelection): { marked: StoredResponse[]; dropped: number } {
    const now = this.now();
    this.invalidations++;
    this.supersedeFills(selection);
    const marked: StoredResponse[] = [];
    let dropped = 0;
    for (const entry of this.memory.selected(selection)) {
      if (isDead(entry, now)) {
        if (this.memory.deleteIf(entry)) dropped++;
        continue;
      }
      marked.push(entry);
      entry.markStale(now, this.routesByName.get(entry.route)?.timeoutMs ?? 0);
      // One refetch now, not after a back-off from failures before the data changed.
      this.failures.delete(entry.key);
    }
    return { marked, dropped };
  }

  private holdsPath(route: string, path: string): boolean {
    return this.memory.countSelected({ route, path, query: '' }) > 0;
  }

  /** The entries held for one route and path, any query (through the index, not a walk of every entry). */
  entriesAt(route: string, path: string): StoredResponse[] {
    return this.memory.selected({ route, path });
  }

  /** The target that fetches an entry again; undefined for keys with a query (fetched on their next scrape) or a route gone. */
  private refetchTarget(entry: StoredResponse): ScrapeTarget | undefined {
    const route = this.routesByName.get(entry.route);
    if (!route || entry.query !== '') return undefined;
    return { route, path: entry.path, query: '', representation: entry.representation, accept: entry.accept };
  }

  /** Drops every entry of the named routes (their upstream or headers changed on reload). */
  dropRoutes(names: ReadonlySet<string>): number {
    let n = 0;
    for (const route of names) {
      n += this.drop({ route });
      void this.second?.deleteSelected({ route });
    }
    return n;
  }

  /**
   * Drops the selected entries from memory, and the fills in flight for selected keys: those
   * started before the data changed, so they still answer their waiters but store nothing, and
   * new requests do not join them.
   */
  private drop(selection: EntrySelection): number {
    this.invalidations++;
    this.supersedeFills(selection);
    let n = 0;
    for (const entry of this.memory.selected(selection)) {
      if (!this.memory.deleteIf(entry)) continue;
      this.failures.delete(entry.key);
      n++;
    }
    return n;
  }

  /**
   * drop() for a selection of any size: fills that started before are superseded at once, and
   * the entries go in slices that let scrapes be answered in between (issue 21). Resolves to the
   * entries dropped once the last slice is done.
   */
  private async dropInSlices(selection: EntrySelection): Promise<StoredResponse[]> {
    this.invalidations++;
    this.supersedeFills(selection);
    const chosen = this.memory.selected(selection);
    const dropped: StoredResponse[] = [];
    for (let i = 0; i < chosen.length; i += INVALIDATION_SLICE) {
      if (i > 0) await yieldToScrapes();
      for (const entry of chosen.slice(i, i + INVALIDATION_SLICE)) {
        // An entry stored meanwhile was fetched after the invalidation began: it stays.
        if (!this.memory.deleteIf(entry)) continue;
        this.failures.delete(entry.key);
        dropped.push(entry);
      }
    }
    return dropped;
  }

  /** Fills in flight for selected keys answer their waiters but store nothing; new requests do not join them. */
  private supersedeFills(selection: EntrySelection): void {
    for (const [key, fill] of this.inflight) {
      const { route, path, query } = fill.target;
      if (selects(selection, { route: route.name, path, query })) {
        fill.superseded = true;
        this.inflight.delete(key);
        if (fill.token !== undefined) void this.lease?.release(key, fill.token);
      }
    }
  }

  /** Every entry in memory, for listings (GET /cache) and hit counts. */
  entries(): IterableIterator<StoredResponse> {
    return this.memory.entries();
  }

  /** Removes an entry found unservable (a corrupt gzip body), here and below. */
  discard(entry: StoredResponse): void {
    if (this.memory.deleteIf(entry)) void this.second?.delete(entry.key);
  }

  /** Re-accounts an entry whose size changed (a converted variant was added). */
  resized(entry: StoredResponse): void {
    this.memory.resize(entry);
  }

  /** Entries, bytes and the age of the oldest entry that may still be served, of one route; kept up to date, never a walk. */
  usage(route: string): RouteUsage {
    return this.memory.usage(route);
  }

  /** Entries in key order (route, path, query, representation) after a key: pages of a listing. */
  inKeyOrder(after?: string): IterableIterator<StoredResponse> {
    return this.memory.inKeyOrder(after);
  }

  /** How many entries a selection names in memory, found through the index. */
  countSelected(selection: EntrySelection): number {
    return this.memory.countSelected(selection);
  }

  get count(): number {
    return this.memory.count;
  }

  get bytes(): number {
    return this.memory.bytes;
  }

  /** How each level is doing: memory, then the second level (the status page). */
  async levels(): Promise<LevelStatus[]> {
    const second = this.second?.status ? await this.second.status() : undefined;
    return second ? [this.memory.status(), second] : [this.memory.status()];
  }

  /** Fills and background refreshes still running, for graceful shutdown. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()].map((f) => f.promise));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    for (const timer of this.prefetchTimers.values()) this.clock.clearTimeout(timer);
    this.prefetchTimers.clear();
    for (const waiters of this.peerFills.values()) for (const w of waiters) w(undefined);
    this.peerFills.clear();
    this.memory.close();
    await this.filler.close?.();
    await this.second?.close();
  }

  /**
   * For another process asking this one (a cluster worker asking its primary): its own fresh
   * entry, or the result of the one fill in flight for the key, or a new fill.
   */
  fillFor(target: ScrapeTarget): Promise<FillResult> {
    const key = keyOf(target);
    const now = this.now();
    const entry = this.memory.lookup(key, now) ?? this.answeredFor(key, target.accept, now);
    if (entry && isFresh(entry, now)) return Promise.resolve({ entry, stored: true, via: 'held' });
    const joined = this.inflight.get(key)?.promise;
    if (joined) return joined.then((r) => ({ ...r, via: r.via ?? 'joined' }));
    return this.fill(key, target, entry);
  }

  /** Takes a record another cache stored, unless this one holds a newer copy. */
  adopt(record: StoredRecord): StoredResponse | undefined {
    const held = this.memory.peek(record.key);
    if (held && held.fetchedAt >= record.fetchedAt) return held;
    if (this.closed || isDead(record, this.now())) return undefined;
    const entry = StoredResponse.fromRecord(record);
    if (!this.memory.set(entry)) return undefined;
    this.failures.delete(record.key);
    return entry;
  }

  /** Applies another cache's event; for an invalidation, resolves once it is applied (the last slice dropped). */
  private onEvent(event: CacheEvent): Promise<unknown> | undefined {
    switch (event.type) {
      case 'stored': {
        // Never a record of a route that fetches differently here (a rolling change of its upstream, headers or identity).
        const route = this.routesByName.get(event.record?.route ?? event.key.slice(0, event.key.indexOf('\0')));
        if (!route || route.recordFingerprint !== (event.record?.fingerprint ?? event.fingerprint)) break;
        if (event.record) this.adopted(this.adopt(event.record));
        else if (event.fetchedAt !== undefined) this.readNotice(event.key, route, event.fetchedAt);
        break;
      }
      case 'failed': {
        const held = this.memory.peek(event.key);
        const count = (this.failures.get(event.key)?.count ?? 0) + 1;
        this.failures.set(event.key, { count, retryAt: event.retryAt, fwdStatus: event.fwdStatus, fetchedAt: held?.fetchedAt });
        break;
      }
      case 'invalidated':
        // Soft: keep serving the copy; the next scrape's fill joins the publisher's refetch.
        // Another cache's invalidation (a cluster worker hearing its primary): in slices too, so
        // that 50 000 entries of a route do not hold this process's scrapes.
        if (event.soft) this.markStale(event.selection);
        else return this.dropInSlices(event.selection);
        break;
    }
    if (event.type !== 'invalidated') {
      for (const key of event.type === 'stored' && event.asked !== undefined ? [event.key, event.asked] : [event.key]) {
        const waiters = this.peerFills.get(key);
        this.peerFills.delete(key);
        for (const w of waiters ?? []) w(event);
      }
    }
  }

  /** A record adopted from another cache: a prefetched key is kept fresh here too. */
  private adopted(entry: StoredResponse | undefined): void {
    if (entry && isPrefetched(this.targetOf(entry))) this.schedulePrefetch(this.targetOf(entry)!, entry);
  }

  /**
   * Another replica stored a newer record of a key (a notice: SPEC 2.2). A copy held here is
   * replaced by it, read from the second level; a key not held here is read there on its next
   * scrape. An invalidation while the read is out wins (see fromSecond).
   */
  private readNotice(key: string, route: Route, fetchedAt: number): void {
    const held = this.memory.peek(key);
    if (!held || held.fetchedAt >= fetchedAt || this.closed) return;
    const target: ScrapeTarget = { route, path: held.path, query: held.query, representation: held.representation, accept: held.accept };
    this.fromSecond(key, target, held).then(
      (entry) => this.adopted(entry),
      () => undefined,
    );
  }

  private targetOf(entry: StoredResponse): ScrapeTarget | undefined {
    const route = this.routesByName.get(entry.route);
    return route && { route, path: entry.path, query: entry.query, representation: entry.representation, accept: entry.accept };
  }

  private failureOf(key: string, entry: StoredResponse): FailureState | undefined {
    const failure = this.failures.get(key);
    return failure && failure.fetchedAt === entry.fetchedAt ? failure : undefined;
  }

  /** A refresh nobody waits for (stale-while-revalidate, prefetch). */
  private background(target: ScrapeTarget, entry: StoredResponse | undefined): void {
    const key = keyOf(target);
    if (this.inflight.has(key) || this.closed) return;
    this.fill(key, target, entry).catch(() => undefined);
  }

  private fill(key: string, target: ScrapeTarget, previous: StoredResponse | undefined): Promise<FillResult> {
    const fill: Fill = { target, superseded: false, promise: undefined as unknown as Promise<FillResult> };
    fill.promise = this.fillOnce(key, fill, previous)
      .then((result) => {
        if (result.entry.status === 200) this.answered?.(target, result.entry);
        // A copy another replica fetched is kept fresh here too: whoever's timer fires first refreshes it for all.
        if (result.via && result.stored && isPrefetched(target)) this.schedulePrefetch(target, result.entry);
        return result;
      })
      .finally(() => {
        if (this.inflight.get(key) === fill) this.inflight.delete(key);
      });
    this.inflight.set(key, fill);
    return fill.promise;
  }

  /** One fill: from the second level, or by the lease holder, or waiting for the holder elsewhere. */
  private async fillOnce(key: string, fill: Fill, previous: StoredResponse | undefined): Promise<FillResult> {
    const { target } = fill;
    const below = await this.fromSecond(key, target, previous, true);
    if (below) return { entry: below, stored: true, via: 'held' };
    const held = this.lease ? await this.leaseOrPeer(key, fill, previous) : NO_LEASE;
    if (typeof held !== 'string') return held;
    const token = held;
    if (token !== NO_LEASE) fill.token = token;
    const release = token === NO_LEASE ? undefined : () => Promise.resolve(this.lease!.release(key, token));
    let outcome: FillOutcome;
    try {
      outcome = await this.filler.fill(target, key);
    } catch (err) {
      void release?.();
      this.recordFailure(target, key, previous, (err as ProxyError).status);
      throw err;
    }
    const answer = StoredResponse.fromRecord(asAnswered(outcome.record));
    if (answer.key !== key) this.rememberAnswer(key, target.accept, answer.key);
    // The entry this one replaces, whose renderings are made again for the new body right away.
    const replaced = this.memory.peek(answer.key) ?? (previous?.key === answer.key ? previous : undefined);
    const kept = outcome.storable && !fill.superseded ? this.store(answer, release, key) : undefined;
    if (kept === undefined) void release?.();
    const entry = kept ?? answer;
    const stored = kept !== undefined;
    const renders = stored && entry === answer && replaced?.isSource && entry.isSource ? this.rerender(entry, replaced, target.route.maxBodyBytes) : [];
    if (outcome.fetchedMs !== undefined) {
      this.log.info(
        {
          route: target.route.name,
          path: target.path,
          query: target.query,
          representation: entry.representation,
          ...(entry.representation !== target.representation ? { asked: target.representation } : {}),
          accept: target.accept,
          format: entry.status === 200 ? entry.contentType : undefined,
          ...(entry.isSource ? { renderings: renders } : {}),
          status: entry.status,
          durationMs: Math.round(outcome.fetchedMs),
          bytes: entry.body.length,
          stored,
        },
        'upstream fetch',
      );
    }
    if (stored) {
      if (isPrefetched(target)) this.schedulePrefetch(target, entry);
    } else if (entry.status >= 500) {
      this.recordFailure(target, key, previous, entry.status);
    }
    return outcome.via ? { entry, stored, via: outcome.via } : { entry, stored };
  }

  /**
   * Makes for a refreshed protobuf entry the renderings its predecessor held, in the codings it
   * held them, so that the first scrapes after a refresh are hits that wait for nothing.
   */
  private rerender(entry: StoredResponse, replaced: StoredResponse, maxBytes: number): string[] {
    const made: Promise<unknown>[] = [];
    for (const answer of replaced.renderedAnswers()) {
      const key = renderingKey(answer);
      for (const coding of ['identity', 'gzip'] as const) {
        if (replaced.rendered(key, coding)) made.push(entry.render(answer, coding, maxBytes).catch(() => undefined));
      }
    }
    if (made.length > 0) void Promise.all(made).then(() => this.memory.peek(entry.key) === entry && this.memory.resize(entry));
    return replaced.renderingKeys();
  }

  /**
   * Takes the key's lease, or waits for whoever holds it (SPEC 2.2): its result comes on the bus
   * or shows in the second level, looked at again every PEER_POLL_MS, so that a holder that died
   * costs one lease time and then one fetch. A failure the holder reports is this fill's too:
   * the holder's back-off is the fleet's, and nobody else fetches before its retry time.
   */
  private async leaseOrPeer(key: string, fill: Fill, previous: StoredResponse | undefined): Promise<string | FillResult> {
    const { target } = fill;
    // The whole fetch and a margin: a holder that dies frees the key after that.
    const leaseMs = target.route.timeoutMs + LEASE_MARGIN_MS;
    const giveUpAt = this.now() + leaseMs + PEER_POLL_MS;
    for (;;) {
      const token = await this.lease!.acquire(key, leaseMs);
      if (token !== undefined) {
        // The holder may have stored and released between the read before and this acquire.
        const meanwhile = await this.fromSecond(key, target, previous);
        if (!meanwhile) return token;
        void this.lease!.release(key, token);
        return { entry: meanwhile, stored: true, via: 'joined' };
      }
      const peer = await this.waitForPeer(key, PEER_POLL_MS);
      const failure = this.failures.get(key);
      if (peer?.type === 'failed' || (failure && failure.retryAt > this.now() && failure.fetchedAt === previous?.fetchedAt)) {
        const { fwdStatus, retryAt } = peer?.type === 'failed' ? peer : failure!;
        throw peerFailed(target, fwdStatus, retryAt - this.now());
      }
      // The holder's fill may have been stored under what the upstream answered (SPEC 3.2).
      const answeredKey = peer?.type === 'stored' && peer.key !== key ? peer.key : undefined;
      const entry =
        (peer?.type === 'stored' && this.freshHeld(peer.key, previous)) ||
        (answeredKey !== undefined ? await this.fromSecond(answeredKey, target, previous) : undefined) ||
        (await this.fromSecond(key, target, previous));
      if (entry) return { entry, stored: true, via: 'joined' };
      // The holder vanished and its lease outlived the wait: fetch here rather than fail the scrape.
      if (fill.superseded || this.closed || this.now() >= giveUpAt) return NO_LEASE;
    }
  }

  private freshHeld(key: string, previous: StoredResponse | undefined): StoredResponse | undefined {
    const held = this.memory.peek(key);
    return held && isFresh(held, this.now()) && (!previous || held.fetchedAt > previous.fetchedAt) ? held : undefined;
  }

  /**
   * Puts a record this cache filled in memory and below, and tells the others. Returns the
   * entry now held: this one, or the same record already taken from an event (a cluster
   * worker hears the primary's `stored` before its answer). Undefined when nothing was stored.
   */
  private store(entry: StoredResponse, release?: () => Promise<boolean>, asked = entry.key): StoredResponse | undefined {
    if (this.closed) return undefined;
    const held = this.memory.peek(entry.key);
    if (held && held.fetchedAt === entry.fetchedAt && held.fingerprint === entry.fingerprint) return held;
    if (held && held.fetchedAt > entry.fetchedAt) return undefined;
    if (!this.memory.set(entry)) return undefined;
    this.failures.delete(entry.key);
    const written = this.second?.set(entry);
    if (!release) {
      // Replicas read the record from the shared level on the notice: it is told once written there.
      const event = { type: 'stored' as const, key: entry.key, record: entry, ...(asked !== entry.key ? { asked } : {}) };
      if (this.lease && written instanceof Promise) void written.then(() => this.bus?.publish(event));
      else void this.bus?.publish(event);
      return entry;
    }
    // Under a shared lease the others hear of it once the write below is done, and only if the
    // lease was still this fill's: an invalidation that deleted it overtook the fill, which then
    // keeps nothing (Facebook's memcache leases; the write below was refused the same way).
    void Promise.resolve(written)
      .then(release)
      .then((kept) => {
        if (kept) return this.bus?.publish({ type: 'stored', key: entry.key, record: entry, ...(asked !== entry.key ? { asked } : {}) });
        this.memory.deleteIf(entry);
        return undefined;
      });
    return entry;
  }

  /** A live record of the second level for this target, taken into memory; never one of a route that fetches differently now. */
  private async fromSecond(key: string, target: ScrapeTarget, previous?: StoredResponse, soft = false): Promise<StoredResponse | undefined> {
    if (!this.second) return undefined;
    const own = await this.fromSecondAt(key, target, previous, soft);
    if (own) return own;
    // What another replica's fill of this key was answered with, and stored under (see answeredKeys).
    for (const other of answeredKeys(key, target.accept)) {
      const held = await this.fromSecondAt(other, target, previous, soft);
      if (held) return held;
    }
    return undefined;
  }

  private async fromSecondAt(key: string, target: ScrapeTarget, previous?: StoredResponse, soft = false): Promise<StoredResponse | undefined> {
    const epoch = this.invalidations;
    const record = await this.second!.get(key);
    if (epoch !== this.invalidations || this.beingCleared(target)) return undefined;
    if (!record || record.fingerprint !== target.route.recordFingerprint) return undefined;
    // A soft-invalidated record is taken by a fill that has nothing to serve (soft): it answers
    // stale while its refetch runs, no scrape waits for the upstream.
    const now = this.now();
    if (!isFresh(record, now) && !(soft && !previous && canServeWhileSoftRefetching(record, now))) return undefined;
    // A refresh (prefetch, stale-while-revalidate) wants a newer copy than the one it refreshes,
    // which may well be the fresh record below: that one is no refresh.
    if (previous && record.fetchedAt <= previous.fetchedAt) return undefined;
    return this.adopt(record);
  }

  private beingCleared(target: ScrapeTarget): boolean {
    for (const selection of this.clearing) if (selects(selection, { route: target.route.name, path: target.path, query: target.query })) return true;
    return false;
  }

  private waitForPeer(key: string, timeoutMs: number): Promise<CacheEvent | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), Math.min(timeoutMs, MAX_TIMER_MS)).unref();
      const done = (event: CacheEvent | undefined) => {
        clearTimeout(timer);
        const list = this.peerFills.get(key);
        const i = list?.indexOf(done) ?? -1;
        if (i >= 0) list!.splice(i, 1);
        if (list?.length === 0) this.peerFills.delete(key);
        resolve(event);
      };
      const list = this.peerFills.get(key) ?? [];
      list.push(done);
      this.peerFills.set(key, list);
    });
  }

  private recordFailure(target: ScrapeTarget, key: string, previous: StoredResponse | undefined, fwdStatus: number | string): void {
    const now = this.now();
    const held = this.memory.peek(key);
    if (previous && held === previous) {
      const count = (this.failureOf(key, previous)?.count ?? 0) + 1;
      const retryAt = now + retryBackoffMs(count, previous.staleAt - previous.fetchedAt);
      this.failures.set(key, { count, retryAt, fwdStatus, fetchedAt: previous.fetchedAt });
      void this.bus?.publish({ type: 'failed', key, fwdStatus, retryAt });
    }
    // A prefetch route keeps trying in the background, backing off, so scrapes need not.
    if (isPrefetched(target) && !this.closed && this.prefetches) {
      const count = (this.prefetchFailureCount.get(key) ?? 0) + 1;
      this.prefetchFailureCount.set(key, count);
      this.setPrefetchTimer(target, now + retryBackoffMs(count, windowsFor(target.route, target.query).ttlMs));
    }
  }

  /** Consecutive failed prefetches per key, for the back-off while no entry exists yet. */
  private readonly prefetchFailureCount = new Map<string, number>();

  private schedulePrefetch(target: ScrapeTarget, entry: StoredResponse): void {
    if (!this.prefetches) return;
    this.prefetchFailureCount.delete(entry.key);
    this.setPrefetchTimer({ ...target, representation: entry.representation, accept: entry.accept }, prefetchAt(entry, target.route.timeoutMs));
  }

  private setPrefetchTimer(target: ScrapeTarget, at: number): void {
    const key = keyOf(target);
    this.clock.clearTimeout(this.prefetchTimers.get(key));
    const timer = this.clock.setTimeout(
      () => {
        this.prefetchTimers.delete(key);
        const route = this.routesByName.get(target.route.name);
        if (!route?.prefetch || this.closed) return;
        const held = this.memory.peek(key);
        // Keep refreshing what is held, and the start-up representation; an evicted other one
        // is fetched again only when a scraper asks for it.
        if (!held && target.representation !== startupTarget(route, target.path).representation) {
          this.prefetchFailureCount.delete(key);
          return;
        }
        this.background({ ...target, route }, held);
      },
      // setTimeout fires at once past 2^31-1 ms; a ttl of weeks refreshes a little early instead.
      Math.min(MAX_TIMER_MS, Math.max(0, at - this.now())),
    );
    this.prefetchTimers.set(key, timer);
  }
}

/**
 * What prefetch fetches at start-up (SPEC 3.4), as a client that names no escaping would be
 * answered: the protobuf source (Prometheus's own Accept after it, for an upstream without
 * protobuf), or the route's pinned format. A fill is stored under what the upstream answers.
 */
function startupTarget(route: Route, path: string): ScrapeTarget {
  switch (route.format) {
    case undefined:
      return { route, path, query: '', representation: SOURCE, accept: `${SOURCE_ACCEPT},${PROMETHEUS_ACCEPT}` };
    case 'protobuf':
      return { route, path, query: '', representation: SOURCE, accept: SOURCE_ACCEPT };
    case 'text':
      return { route, path, query: '', representation: 'text;0.0.4;underscores', accept: 'text/plain;version=0.0.4;escaping=underscores' };
    case 'openmetrics':
      return { route, path, query: '', representation: 'openmetrics;1.0.0;underscores', accept: 'application/openmetrics-text;version=1.0.0;escaping=underscores' };
  }
}
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Bounds answeredAs: a handful per key in practice (one per distinct Accept of a first fill). */
const MAX_ANSWERED_AS = 10_000;
/** Entries dropped between two turns of the event loop in a large invalidation. */
const INVALIDATION_SLICE = 1000;

/** Lets the I/O waiting (scrapes) run before going on. */
function yieldToScrapes(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
const NO_LEASE = '';
/** Beyond the route's timeout, so that a lease outlives the fetch it guards. */
const LEASE_MARGIN_MS = 5000;
/** How often a fill waiting for another replica looks again (a missed event, a holder that died). */
const PEER_POLL_MS = 500;

/** Another replica's fill failed: this one answers that failure rather than fetch again. */
function peerFailed(target: ScrapeTarget, fwdStatus: number | string, retryInMs: number): ProxyError {
  const code = fwdStatus === 504 || fwdStatus === 'timeout' ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNREACHABLE';
  return new ProxyError(code, `route ${target.route.name}: the upstream fetch from ${upstreamAddress(target.route.upstream)} failed (${fwdStatus}); next try in ${Math.max(1, Math.ceil(retryInMs / 1000))}s`);
}

/**
 * Keys that prefetch keeps fresh: the route's own path, no query, a metrics-format
 * representation (not one keyed by an arbitrary Accept header, which any client could mint).
 */
function isPrefetched(target: ScrapeTarget | undefined): boolean {
  if (!target) return false;
  const { route } = target;
  return route.prefetch && target.query === '' && target.path === route.path && !target.representation.startsWith('accept:');
}

/**
 * Keys a fill of `key` with this Accept is stored under when the upstream answers otherwise than
 * planned, as every process that has not yet learned the upstream plans it: a protobuf probe
 * (SOURCE_ACCEPT, then the client's own Accept) answered without protobuf goes under the client's
 * answer; a text or OpenMetrics request with an escaping term, answered without one, under the
 * key without it. A process that finds them held (loaded from disk, stored by another replica,
 * asked by a new worker) needs no fetch of its own.
 */
function answeredKeys(key: string, accept: string | undefined): string[] {
  const cut = key.lastIndexOf('\0') + 1;
  const representation = key.slice(cut);
  if (representation === SOURCE) {
    if (!accept?.startsWith(PROBE_PREFIX)) return [];
    return answerCandidates(accept.slice(PROBE_PREFIX.length)).map((r) => key.slice(0, cut) + r);
  }
  const escaped = /^((?:text|openmetrics);[^;]+);[a-z0-9-]+$/.exec(representation);
  return escaped ? [key.slice(0, cut) + escaped[1]] : [];
}

/**
 * The record under the key of what the upstream actually answered (SPEC 3.2): a protobuf answer
 * is the source entry whatever was planned, a text or OpenMetrics answer the entry of that
 * format, version and escaping. Errors and exact-Accept entries keep the key they were fetched for.
 */
function asAnswered(record: StoredRecord): StoredRecord {
  if (record.status !== 200 || record.representation.startsWith('accept:')) return record;
  let contentType: string | undefined;
  for (let i = 0; i < record.headers.length; i += 2) if (record.headers[i]!.toLowerCase() === 'content-type') contentType = record.headers[i + 1];
  const representation = representationOfContentType(contentType);
  if (representation === undefined || representation === record.representation) return record;
  return { ...record, representation, key: cacheKey(record.route, record.path, record.query, representation) };
}

export function keyOf(target: ScrapeTarget): string {
  return cacheKey(target.route.name, target.path, target.query, target.representation);
}
