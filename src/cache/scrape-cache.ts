/**
 * The cache's decisions: serve fresh, serve stale and refresh, or fill from upstream with at
 * most one fetch per key in flight (SPEC 3.3, 3.4). Fills that outlive their clients run on
 * and are stored. A failed refresh never touches the good entry it was refreshing.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Route } from '../config/types.js';
import type { ProxyError } from '../errors.js';
import { upstreamErrorText } from '../last-fetch.js';
import type { Metrics } from '../metrics.js';
import { contentCodingOf } from '../upstream/content-coding.js';
import { Dispatchers, fetchUpstream, PROMETHEUS_ACCEPT, upstreamTarget, type UpstreamResponse } from '../upstream/fetch-upstream.js';
import { canServeOnError, canServeWhileRevalidating, canServeWhileSoftRefetching, isDead, isFresh, prefetchAt, retryBackoffMs } from './freshness.js';
import { cacheKey } from './key.js';
import { MemoryStore } from './memory-store.js';
import { formatAccept } from './pinned-format.js';
import type { Representation } from './representation.js';
import { storableHeaders, StoredResponse } from './stored-response.js';

export interface ScrapeTarget {
  route: Route;
  path: string;
  /** Canonical query (see canonicalQuery). */
  query: string;
  representation: Representation;
  /** The Accept header sent upstream on a fill. */
  accept: string | undefined;
}

/** A fill failed and nothing stale may be served; says whether this request only waited for it. */
export class FillFailed extends Error {
  constructor(
    readonly error: ProxyError,
    readonly collapsed: boolean,
  ) {
    super(error.message, { cause: error });
  }
}

/** What selects entries for invalidation: a stored response, or the target of a fill in flight. */
export type EntryIdentity = Pick<StoredResponse, 'route' | 'path' | 'query'>;

interface Fill {
  target: ScrapeTarget;
  promise: Promise<FillResult>;
  /** An invalidation or reload selected this key after the fill started: answer, but do not store. */
  superseded: boolean;
}

export type Lookup =
  | { cache: 'hit' | 'stale' | 'miss' | 'collapsed'; entry: StoredResponse; stored: boolean; fwdStatus?: number | string }
  | { cache: 'miss' | 'collapsed'; entry: StoredResponse; stored: false; fwdStatus: number };

export interface FillResult {
  /** The response: stored, or (non-200, Set-Cookie, too large for the store) not. */
  entry: StoredResponse;
  stored: boolean;
  /** Served from a copy another process already held (a worker asking its primary): no fetch. */
  cached?: boolean;
}

/** Refresh failures of a key, kept beside the entry they failed to replace. */
interface FailureState {
  count: number;
  retryAt: number;
  fwdStatus: number | string;
}

/**
 * Where fills come from in a worker process (SPEC 2 `workers`): the primary fetches, so that a
 * key is fetched once for the whole group, and sends the response back.
 */
export type RemoteFill = (target: ScrapeTarget) => Promise<FillResult>;

export interface ScrapeCacheOptions {
  remoteFill?: RemoteFill;
  /** Called with every response this cache stored from its own fetch (the primary broadcasts it). */
  onStored?: (entry: StoredResponse) => void;
}

export interface RouteUsage {
  entries: number;
  bytes: number;
  /** Undefined when no entry of the route can be served. */
  oldestAgeSeconds: number | undefined;
}

export class ScrapeCache {
  readonly store: MemoryStore;
  private readonly dispatchers = new Dispatchers();
  private readonly inflight = new Map<string, Fill>();
  private readonly failures = new WeakMap<StoredResponse, FailureState>();
  private readonly prefetchTimers = new Map<string, NodeJS.Timeout>();
  /** Consecutive failed prefetches per key, for the back-off while no entry exists yet. */
  private readonly prefetchFailures = new Map<string, number>();
  private routesByName = new Map<string, Route>();
  private closed = false;

  constructor(
    maxBytes: number,
    private readonly metrics: Metrics | undefined,
    private readonly log: Logger,
    private readonly options: ScrapeCacheOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.store = new MemoryStore(maxBytes, {
      onEvict: (entry) => {
        metrics?.evictions.inc();
        log.debug({ route: entry.route, path: entry.path, query: entry.query, representation: entry.representation, bytes: entry.bytes }, 'evicted');
      },
    });
  }

  /** Makes a route set current: prefetch starts for new prefetch routes, timers of removed ones stop. */
  setRoutes(routes: readonly Route[]): void {
    this.routesByName = new Map(routes.map((r) => [r.name, r]));
    for (const [key, timer] of this.prefetchTimers) {
      const route = this.routesByName.get(key.slice(0, key.indexOf('\0')));
      if (!route?.prefetch) {
        clearTimeout(timer);
        this.prefetchTimers.delete(key);
      }
    }
    void this.dispatchers.retain(routes);
    // In a worker the primary prefetches for everyone.
    if (this.options.remoteFill) return;
    for (const route of routes) {
      if (!route.prefetch || route.path === undefined) continue;
      const target = startupTarget(route, route.path);
      const key = keyOf(target);
      if (!this.prefetchTimers.has(key) && !this.inflight.has(key)) {
        const entry = this.store.peek(key);
        if (entry) this.schedulePrefetch(target, entry);
        else this.background(target, undefined);
      }
    }
  }

  /**
   * Answers a scrape. Synchronous for hits and stale serves, so the hot path awaits nothing;
   * a promise when the client must wait for a fill. Rejects with ProxyError when the fill
   * fails and nothing stale may be served.
   */
  lookup(target: ScrapeTarget): Lookup | Promise<Lookup> {
    const key = keyOf(target);
    const entry = this.store.get(key);
    const now = this.now();
    if (entry) {
      if (isFresh(entry, entry.policy, now)) {
        entry.hits++;
        return { cache: 'hit', entry, stored: true };
      }
      const failure = this.failures.get(entry);
      // A soft-invalidated entry is served while its refetch runs; once that failed, only the
      // stale windows (stale_if_error) keep it.
      if (canServeWhileRevalidating(entry, entry.policy, now) || (!failure && canServeWhileSoftRefetching(entry, entry.policy, now))) {
        if (!failure || now >= failure.retryAt) this.background(target, entry);
        entry.hits++;
        return failure
          ? { cache: 'stale', entry, stored: true, fwdStatus: failure.fwdStatus }
          : { cache: 'stale', entry, stored: true };
      }
      // A refresh failed a moment ago: answer from the stale entry until the back-off ends,
      // rather than send every scrape upstream (nginx trac #1000).
      if (failure && now < failure.retryAt && canServeOnError(entry, entry.policy, now)) {
        entry.hits++;
        return { cache: 'stale', entry, stored: true, fwdStatus: failure.fwdStatus };
      }
    }
    const joined = this.inflight.get(key)?.promise;
    const collapsed = joined !== undefined;
    const fill = joined ?? this.fill(key, target, entry);
    return fill.then(
      (result): Lookup => {
        if (result.stored) {
          if (result.cached) result.entry.hits++;
          return { cache: result.cached ? 'hit' : collapsed ? 'collapsed' : 'miss', entry: result.entry, stored: true };
        }
        const status = result.entry.status;
        if (entry && status >= 500 && canServeOnError(entry, entry.policy, this.now())) {
          entry.hits++;
          return { cache: 'stale', entry, stored: true, fwdStatus: status };
        }
        return { cache: collapsed ? 'collapsed' : 'miss', entry: result.entry, stored: false, fwdStatus: status };
      },
      (err: ProxyError): Lookup => {
        if (entry && canServeOnError(entry, entry.policy, this.now())) {
          entry.hits++;
          return { cache: 'stale', entry, stored: true, fwdStatus: err.status };
        }
        throw new FillFailed(err, collapsed);
      },
    );
  }

  /**
   * The stale entry for a target, when stale_if_error allows serving it: for a client whose own
   * scrape timeout ends before a refresh does (a timeout is an error too).
   */
  staleOnError(target: ScrapeTarget): Lookup | undefined {
    const entry = this.store.peek(keyOf(target));
    if (!entry || !canServeOnError(entry, entry.policy, this.now())) return undefined;
    entry.hits++;
    return { cache: 'stale', entry, stored: true, fwdStatus: 504 };
  }

  /** Drops entries; with refresh, fetches the dropped query-less keys again and waits for them. */
  async invalidate(select: (entry: EntryIdentity) => boolean, refresh = false): Promise<{ invalidated: number; refreshed: number }> {
    const dropped: StoredResponse[] = [];
    const invalidated = this.drop((entry) => {
      if (!select(entry)) return false;
      if (entry instanceof StoredResponse) dropped.push(entry);
      return true;
    });
    this.metrics?.invalidations.inc(invalidated);
    let refreshed = 0;
    if (refresh) {
      const fills: Promise<unknown>[] = [];
      for (const old of dropped) {
        const target = this.refetchTarget(old);
        // A new fetch even when one is in flight: that one started before the data changed.
        if (target) fills.push(this.fill(old.key, target, undefined).then((r) => r.stored && refreshed++, () => undefined));
      }
      await Promise.all(fills);
    }
    return { invalidated, refreshed };
  }

  /**
   * Soft invalidation (SPEC 4 `soft`): the selected entries turn stale now but stay servable
   * while one refetch per key runs; query-less keys are refetched at once, keys with a query on
   * their next scrape. With wait, resolves once those refetches are done.
   */
  async softInvalidate(
    select: (entry: EntryIdentity) => boolean,
    wait = false,
  ): Promise<{ invalidated: number; refetching: number; refreshed: number }> {
    const { marked, dropped } = this.markStale(select);
    const invalidated = marked.length + dropped;
    this.metrics?.invalidations.inc(invalidated);
    const refetches: Promise<boolean>[] = [];
    for (const entry of marked) {
      const target = this.refetchTarget(entry);
      if (target) refetches.push(this.fill(entry.key, target, entry).then((r) => r.stored, () => false));
    }
    const refreshed = wait ? (await Promise.all(refetches)).filter(Boolean).length : 0;
    return { invalidated, refetching: refetches.length, refreshed };
  }

  /**
   * Marks the selected entries stale without refetching (a worker follows its primary this
   * way: its next scrape joins the primary's refetch). Entries past every window are dropped,
   * not revived; fills in flight for selected keys are superseded, as by drop().
   */
  markStale(select: (entry: EntryIdentity) => boolean): { marked: StoredResponse[]; dropped: number } {
    const now = this.now();
    this.supersedeFills(select);
    const dropped = this.store.invalidate((entry) => select(entry) && isDead(entry, entry.policy, now));
    const marked = [...this.store.entries()].filter(select);
    for (const entry of marked) {
      entry.markStale(now);
      // One refetch now, not after a back-off from failures before the data changed.
      this.failures.delete(entry);
    }
    return { marked, dropped };
  }

  /** The target that fetches an entry again; undefined for keys with a query (fetched on their next scrape) or a route gone. */
  private refetchTarget(entry: StoredResponse): ScrapeTarget | undefined {
    const route = this.routesByName.get(entry.route);
    if (!route || entry.query !== '') return undefined;
    return { route, path: entry.path, query: '', representation: entry.representation, accept: entry.accept };
  }

  /** Drops every entry of the named routes (their upstream or headers changed on reload). */
  dropRoutes(names: ReadonlySet<string>): number {
    return this.drop((entry) => names.has(entry.route));
  }

  /**
   * Drops the selected entries, and the fills in flight for selected keys: those started
   * before the data changed, so they still answer their waiters but store nothing, and new
   * requests do not join them.
   */
  drop(select: (entry: EntryIdentity) => boolean): number {
    this.supersedeFills(select);
    return this.store.invalidate(select);
  }

  /** Fills in flight for selected keys answer their waiters but store nothing; new requests do not join them. */
  private supersedeFills(select: (entry: EntryIdentity) => boolean): void {
    for (const [key, fill] of this.inflight) {
      const { route, path, query } = fill.target;
      if (select({ route: route.name, path, query })) {
        fill.superseded = true;
        this.inflight.delete(key);
      }
    }
  }

  /** Per route: entries, bytes, and the age of the oldest entry that may still be served. */
  usageByRoute(): Map<string, RouteUsage> {
    const usage = new Map<string, RouteUsage>();
    const now = this.now();
    for (const entry of this.store.entries()) {
      let u = usage.get(entry.route);
      if (!u) usage.set(entry.route, (u = { entries: 0, bytes: 0, oldestAgeSeconds: undefined }));
      u.entries++;
      u.bytes += entry.bytes;
      // An entry past every window waits for the sweep; it answers nobody, so it is not "served".
      if (!isDead(entry, entry.policy, now)) {
        const age = Math.max(0, (now - entry.fetchedAt) / 1000);
        if (u.oldestAgeSeconds === undefined || age > u.oldestAgeSeconds) u.oldestAgeSeconds = age;
      }
    }
    return usage;
  }

  /** Fills and background refreshes still running, for graceful shutdown. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()].map((f) => f.promise));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.prefetchTimers.values()) clearTimeout(timer);
    this.prefetchTimers.clear();
    this.store.close();
    await this.dispatchers.close();
  }

  /** A refresh nobody waits for (stale-while-revalidate, prefetch). */
  private background(target: ScrapeTarget, entry: StoredResponse | undefined): void {
    const key = keyOf(target);
    if (this.inflight.has(key) || this.closed) return;
    this.fill(key, target, entry).catch(() => undefined);
  }

  /**
   * For the primary serving a worker: its own fresh entry, or the result of the one fill in
   * flight for the key, or a new fill.
   */
  fillFor(target: ScrapeTarget): Promise<FillResult> {
    const key = keyOf(target);
    const entry = this.store.peek(key);
    if (entry && isFresh(entry, entry.policy, this.now())) return Promise.resolve({ entry, stored: true, cached: true });
    return this.inflight.get(key)?.promise ?? this.fill(key, target, entry);
  }

  /** Stores an entry another process fetched (a worker receiving the primary's broadcast). */
  adopt(entry: StoredResponse): void {
    const held = this.store.peek(entry.key);
    if (held && held.fetchedAt >= entry.fetchedAt) return;
    if (!this.closed) this.store.set(entry);
  }

  private fill(key: string, target: ScrapeTarget, previous: StoredResponse | undefined): Promise<FillResult> {
    const fill: Fill = { target, superseded: false, promise: undefined as unknown as Promise<FillResult> };
    const source = this.options.remoteFill ? this.remote(fill, previous) : this.fetchAndStore(key, fill, previous);
    fill.promise = source.finally(() => {
      if (this.inflight.get(key) === fill) this.inflight.delete(key);
    });
    this.inflight.set(key, fill);
    return fill.promise;
  }

  private async remote(fill: Fill, previous: StoredResponse | undefined): Promise<FillResult> {
    const { target } = fill;
    let result: FillResult;
    try {
      result = await this.options.remoteFill!(target);
    } catch (err) {
      this.recordFailure(target, previous, (err as ProxyError).status);
      throw err;
    }
    if (result.stored && !fill.superseded) this.adopt(result.entry);
    else if (result.entry.status >= 500) this.recordFailure(target, previous, result.entry.status);
    return result;
  }

  private async fetchAndStore(key: string, fill: Fill, previous: StoredResponse | undefined): Promise<FillResult> {
    const { target } = fill;
    const { route } = target;
    const url = upstreamTarget(route, target.path, target.query);
    const started = performance.now();
    const logFields = { route: route.name, path: target.path, query: target.query, representation: target.representation };
    let res: UpstreamResponse;
    try {
      res = await fetchUpstream(route, this.dispatchers.for(route), url, target.accept);
    } catch (e) {
      const err = e as ProxyError;
      this.metrics?.upstream(route.name, err.kind, (performance.now() - started) / 1000, err.message);
      this.log.warn({ ...logFields, err: { code: err.code, message: err.message, cause: causeOf(err) } }, 'upstream fetch failed');
      this.recordFailure(target, previous, err.status);
      throw err;
    }
    const errorText = res.status === 200 ? undefined : upstreamErrorText(res.body, res.headers['content-encoding']);
    this.metrics?.upstream(route.name, String(res.status), res.durationMs / 1000, errorText);
    const coding = contentCodingOf(res.headers['content-encoding']);
    const storable = res.status === 200 && res.headers['set-cookie'] === undefined && coding !== undefined;
    const entry = new StoredResponse({
      key,
      route: route.name,
      path: target.path,
      query: target.query,
      representation: target.representation,
      accept: target.accept,
      status: res.status,
      // An unknown coding (br, zstd) cannot be converted: it is passed on as is, never stored.
      coding: coding ?? 'identity',
      body: res.body,
      headers: storableHeaders(res.headers, coding === undefined),
      fetchedAt: this.now(),
      policy: route,
    });
    const stored = storable && !this.closed && !fill.superseded && this.store.set(entry);
    this.log.info(
      { ...logFields, status: res.status, durationMs: Math.round(res.durationMs), bytes: res.body.length, stored },
      'upstream fetch',
    );
    if (stored) {
      this.options.onStored?.(entry);
      this.prefetchFailures.delete(key);
      if (isPrefetched(target)) this.schedulePrefetch(target, entry);
    } else {
      if (res.status === 200 && !storable) {
        this.log.warn({ ...logFields, reason: coding === undefined ? 'content-encoding' : 'set-cookie' }, 'response not cacheable');
      }
      if (res.status >= 500) this.recordFailure(target, previous, res.status);
    }
    return { entry, stored };
  }

  private recordFailure(target: ScrapeTarget, previous: StoredResponse | undefined, fwdStatus: number | string): void {
    const now = this.now();
    if (previous && this.store.peek(previous.key) === previous) {
      const count = (this.failures.get(previous)?.count ?? 0) + 1;
      this.failures.set(previous, { count, retryAt: now + retryBackoffMs(count, previous.policy), fwdStatus });
    }
    // A prefetch route keeps trying in the background, backing off, so scrapes need not.
    if (isPrefetched(target) && !this.closed && !this.options.remoteFill) {
      const key = keyOf(target);
      const count = (this.prefetchFailures.get(key) ?? 0) + 1;
      this.prefetchFailures.set(key, count);
      this.setPrefetchTimer(target, now + retryBackoffMs(count, target.route));
    }
  }

  private schedulePrefetch(target: ScrapeTarget, entry: StoredResponse): void {
    this.setPrefetchTimer({ ...target, representation: entry.representation, accept: entry.accept }, prefetchAt(entry, target.route));
  }

  private setPrefetchTimer(target: ScrapeTarget, at: number): void {
    const key = keyOf(target);
    clearTimeout(this.prefetchTimers.get(key));
    const timer = setTimeout(
      () => {
        this.prefetchTimers.delete(key);
        const route = this.routesByName.get(target.route.name);
        if (!route?.prefetch || this.closed) return;
        const held = this.store.peek(key);
        // Keep refreshing what is held, and the start-up representation; an evicted other one
        // is fetched again only when a scraper asks for it.
        if (!held && target.representation !== startupTarget(route, target.path).representation) {
          this.prefetchFailures.delete(key);
          return;
        }
        this.background({ ...target, route }, held);
      },
      // setTimeout fires at once past 2^31-1 ms; a ttl of weeks refreshes a little early instead.
      Math.min(MAX_TIMER_MS, Math.max(0, at - this.now())),
    );
    timer.unref();
    this.prefetchTimers.set(key, timer);
  }
}

/**
 * What prefetch fetches at start-up: the route's pinned format, else Prometheus's Accept, which
 * resolves to OpenMetrics.
 */
function startupTarget(route: Route, path: string): ScrapeTarget {
  return route.format === undefined
    ? { route, path, query: '', representation: 'openmetrics', accept: PROMETHEUS_ACCEPT }
    : { route, path, query: '', representation: route.format, accept: formatAccept(route.format) };
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Keys that prefetch keeps fresh: the route's own path, no query, a metrics-format
 * representation (not one keyed by an arbitrary Accept header, which any client could mint).
 */
function isPrefetched(target: ScrapeTarget): boolean {
  const { route } = target;
  return route.prefetch && target.query === '' && target.path === route.path && !target.representation.startsWith('accept:');
}

export function keyOf(target: ScrapeTarget): string {
  return cacheKey(target.route.name, target.path, target.query, target.representation);
}

function causeOf(err: Error): string | undefined {
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return cause ? (cause.code ?? cause.message) : undefined;
}
