/**
 * Every self-metric (SPEC 5), defined once, on a registry of its own per proxy instance.
 * Labels are route names, never raw paths or queries, so cardinality stays bounded by the config.
 * Hot-path counters are bound per route once, so a hit does no label lookup.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { buildInfo } from './build-info.js';
import { LastFetchRecorder } from './last-fetch.js';

export type CacheOutcome = 'hit' | 'miss' | 'collapsed' | 'stale' | 'bypass';

/**
 * Scrapes answered per outcome for one route: plain numbers, bumped on the hot path without
 * the label hashing and allocation of prom-client's inc(); exported when /metrics is read.
 */
export type RouteCounters = Record<CacheOutcome, number>;

const OUTCOMES: readonly CacheOutcome[] = ['hit', 'miss', 'collapsed', 'stale', 'bypass'];

export interface StoreView {
  /** Entries, bytes and oldest servable age of one route: kept up to date by the store, so reading it walks nothing (issue 21). */
  usage(route: string): { entries: number; bytes: number; oldestAgeSeconds: number | undefined };
}

type Registers = Registry[];

/** Scrapes answered, by route and outcome: read from the plain per-route numbers when exported. */
function defineRequestsCounter(registers: Registers, byRoute: ReadonlyMap<string, RouteCounters>): void {
  new Counter({
    name: 'scrapecache_requests_total',
    help: 'Scrape requests answered, by route and cache outcome (hit, miss, collapsed, stale, bypass).',
    labelNames: ['route', 'cache'],
    registers,
    collect() {
      this.reset();
      for (const [route, counts] of byRoute) for (const cache of OUTCOMES) this.inc({ route, cache }, counts[cache]);
    },
  });
}

/** What each process counts of its own upstream fetches and its cache's turnover. */
function defineTrafficMetrics(registers: Registers) {
  return {
    upstreamRequests: new Counter({
      name: 'scrapecache_upstream_requests_total',
      help: 'Upstream fetches, by route and HTTP status or error kind.',
      labelNames: ['route', 'code'],
      registers,
    }),
    upstreamDuration: new Histogram({
      name: 'scrapecache_upstream_request_duration_seconds',
      help: 'Duration of upstream fetches, body included.',
      labelNames: ['route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    acceptOverCap: new Counter({
      name: 'scrapecache_accept_over_cap_total',
      help: 'Requests whose exact Accept header would have needed a cache entry of its own beyond the cap per key, by answer (shared entry, or 406).',
      labelNames: ['route', 'answer'],
      registers,
    }),
    evictions: new Counter({
      name: 'scrapecache_cache_evictions_total',
      help: 'Entries pushed out of the cache to stay under cache.max_bytes.',
      registers,
    }),
    invalidations: new Counter({
      name: 'scrapecache_invalidations_total',
      help: 'Entries dropped by POST /invalidate.',
      registers,
    }),
  };
}

/** The config's and the second level's state: once per group of processes. */
function defineStateMetrics(registers: Registers) {
  return {
    reloadSuccessful: new Gauge({
      name: 'scrapecache_config_last_reload_successful',
      help: 'Whether the last configuration load succeeded (1) or failed (0).',
      registers,
    }),
    reloadTimestamp: new Gauge({
      name: 'scrapecache_config_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful configuration load.',
      registers,
    }),
    storeUp: new Gauge({
      name: 'scrapecache_store_up',
      help: 'Whether the second-level store answers (1) or the proxy goes on without it (0), by store.',
      labelNames: ['store'],
      registers,
    }),
    storeOperations: new Counter({
      name: 'scrapecache_store_operations_total',
      help: 'Second-level store operations, by store, operation (get, set, delete, load) and result (ok or an error kind).',
      labelNames: ['store', 'operation', 'result'],
      registers,
    }),
  };
}

/** A gauge per route of what the store holds, read from its running totals when exported. */
function defineUsageGauge(registers: Registers, name: string, help: string, routeNames: () => readonly string[], value: (route: string) => number | undefined): void {
  new Gauge({
    name,
    help,
    labelNames: ['route'],
    registers,
    collect() {
      this.reset();
      for (const route of routeNames()) {
        const v = value(route);
        if (v !== undefined) this.set({ route }, v);
      }
    },
  });
}

function defineUsageGauges(registers: Registers, store: StoreView, routeNames: () => readonly string[]): void {
  defineUsageGauge(registers, 'scrapecache_cache_entries', 'Entries held in the cache, by route.', routeNames, (route) => store.usage(route).entries);
  defineUsageGauge(
    registers,
    'scrapecache_cache_bytes',
    'Bytes held in the cache (bodies, converted variants, headers, keys), by route.',
    routeNames,
    (route) => store.usage(route).bytes,
  );
  defineUsageGauge(
    registers,
    'scrapecache_cache_oldest_age_seconds',
    'Age of the oldest answer a route may still serve, by route; absent while it holds none. Well above the ttl: stale answers are covering for a failing upstream.',
    routeNames,
    (route) => store.usage(route).oldestAgeSeconds,
  );
}

function defineBuildInfo(registers: Registers): void {
  const build = buildInfo();
  new Gauge({
    name: 'scrapecache_build_info',
    help: 'Always 1; the labels say which build runs: version, git revision, Node.js version.',
    labelNames: ['version', 'revision', 'nodejs_version'],
    registers,
  }).set({ version: build.version, revision: build.revision, nodejs_version: build.nodejsVersion }, 1);
}

function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  // prom-client exports these totals as gauges, which promtool rejects ("non-counter metrics
  // should not have _total suffix"); the same numbers stay in nodejs_active_{handles,requests,resources}.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly upstreamRequests: Counter<'route' | 'code'>;
  private readonly upstreamDuration: Histogram<'route'>;
  /** Requests whose Accept would have needed an entry beyond the per-key cap, by how they were answered. */
  readonly acceptOverCap: Counter<'route' | 'answer'>;
  readonly evictions: Counter;
  readonly invalidations: Counter;
  readonly reloadSuccessful: Gauge;
  readonly reloadTimestamp: Gauge;
  /** 1 while a second level answers, 0 while the proxy goes on without it (SPEC 5). */
  readonly storeUp: Gauge<'store'>;
  /** Second-level operations by result: ok, or the error kind (enospc, erofs, corrupt, ...). */
  readonly storeOperations: Counter<'store' | 'operation' | 'result'>;
  /** The last fetch of each route, for the status page. */
  readonly lastFetch: LastFetchRecorder;
  private readonly now: () => number;
  private readonly byRoute = new Map<string, RouteCounters>();
  private routeNames: string[] = [];

  /**
   * storeGauges false: a cluster worker, whose cache copy and reload state the primary reports
   * (summing them over processes would count every entry once per worker).
   */
  constructor(store: StoreView, options: { defaultMetrics?: boolean; storeGauges?: boolean; now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
    this.lastFetch = new LastFetchRecorder(this.now);
    const registers = [this.registry];
    // Once per group: a cluster sums its processes' gauges.
    const groupRegisters = options.storeGauges !== false ? registers : [];
    defineRequestsCounter(registers, this.byRoute);
    const traffic = defineTrafficMetrics(registers);
    this.upstreamRequests = traffic.upstreamRequests;
    this.upstreamDuration = traffic.upstreamDuration;
    this.acceptOverCap = traffic.acceptOverCap;
    this.evictions = traffic.evictions;
    this.invalidations = traffic.invalidations;
    const state = defineStateMetrics(groupRegisters);
    this.reloadSuccessful = state.reloadSuccessful;
    this.reloadTimestamp = state.reloadTimestamp;
    this.storeUp = state.storeUp;
    this.storeOperations = state.storeOperations;
    defineUsageGauges(groupRegisters, store, () => this.routeNames);
    defineBuildInfo(groupRegisters);
    if (options.defaultMetrics !== false) collectProcessMetrics(this.registry);
  }

  /** Declares the routes of a (re)loaded config, so that every route has its series from the start. */
  setRoutes(names: readonly string[]): void {
    this.routeNames = [...names];
    for (const name of names) this.route(name);
  }

  route(name: string): RouteCounters {
    let counters = this.byRoute.get(name);
    if (!counters) {
      // Every series exists from the start (at 0), so the first rate() sees every request.
      counters = { hit: 0, miss: 0, collapsed: 0, stale: 0, bypass: 0 };
      this.byRoute.set(name, counters);
    }
    return counters;
  }

  /** One upstream fetch ended; error is our message or the upstream's non-200 body text. */
  upstream(route: string, code: string, seconds: number, error?: string): void {
    this.upstreamRequests.labels(route, code).inc();
    this.upstreamDuration.labels(route).observe(seconds);
    this.lastFetch.record(route, code, seconds, error);
  }

  reloaded(ok: boolean, now = this.now()): void {
    this.reloadSuccessful.set(ok ? 1 : 0);
    if (ok) this.reloadTimestamp.set(Math.floor(now / 1000));
  }
}
