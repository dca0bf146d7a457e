/**
 * What the status page shows, built from the same sources as /metrics and /cache: the route
 * table, the metric samples (summed over workers where there are any) and the cache entries.
 * Pure: the admin listener gathers the inputs, the page renders the result.
 */
import type { LevelStatus } from '../cache/store.js';
import { describeOverride } from '../cache/route-windows.js';
import type { Route } from '../config/types.js';
import type { LastFetch } from '../last-fetch.js';
import type { CacheOutcome } from '../metrics.js';

/** One cache entry as GET /cache lists it. */
export interface EntryRow {
  route: string;
  path: string;
  query: string;
  representation: string;
  /** For an upstream protobuf answer: the answers rendered from it, as kind;version;escaping. */
  renderings?: string[];
  bytes: number;
  age_seconds: number;
  ttl_seconds: number;
  fresh: boolean;
  hits: number;
  /** The ttl this copy was stored with (a route override's, or the route's). */
  lifetime_seconds?: number;
  /** The override of the running config that the entry's query matches (`module=inventory`), or null. */
  override?: string | null;
}

/** One page of the entry table, sorted and filtered on the server (issue 21). */
export interface EntryTable {
  rows: EntryRow[];
  /** Entries held. */
  total: number;
  /** Entries the filter admits. */
  matched: number;
  /** The page shown, 1-based, and how many there are. */
  page: number;
  pages: number;
  pageSize: number;
}

/** A route override as the status page shows it. */
export interface OverrideStatus {
  match: string;
  ttlMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
}

/** The shape of prom-client's getMetricsAsJSON(), as much of it as is read here. */
export interface MetricSample {
  name: string;
  values: Array<{ value: number; labels: Partial<Record<string, string | number>> }>;
}

export interface RouteStatus {
  name: string;
  /** The scrape path, or the prefix followed by `*`. */
  match: string;
  upstream: string;
  cache: boolean;
  ttlMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
  overrides: OverrideStatus[];
  prefetch: boolean;
  lastFetch: LastFetch | undefined;
  requests: Record<CacheOutcome, number>;
  /** Scrapes answered. */
  total: number;
  /** (hit + stale) / total, as the README's PromQL computes it; null before the first scrape. */
  hitRatio: number | null;
  upstreamFetches: number;
  /** Scrapes that did not cost an upstream fetch: scrapes minus upstream fetches, at least 0. */
  saved: number;
  entries: number;
  bytes: number;
}

export interface ReloadStatus {
  ok: boolean;
  /** Unix time in seconds of the last successful load. */
  successAt: number | undefined;
  /** The error text of the last failed reload, while the last reload failed. */
  error: string | undefined;
}

export interface StatusModel {
  version: string;
  configFile: string;
  now: number;
  routes: RouteStatus[];
  entries: EntryRow[];
  /** Entries before the filter. */
  totalEntries: number;
  /** Entries the filter admits. */
  matchedEntries: number;
  page: number;
  pages: number;
  pageSize: number;
  reload: ReloadStatus;
  /** The last invalidation that did not reach every replica, while no later one did. */
  unreachedInvalidation?: string | undefined;
  /** Memory, then the second level (disk or Redis) where one is configured. */
  levels: LevelStatus[];
  view: EntryView;
}

export const SORT_KEYS = ['route', 'path', 'query', 'representation', 'bytes', 'age', 'ttl', 'hits'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export interface EntryView {
  sort: SortKey;
  order: 'asc' | 'desc';
  /** Case-insensitive substring of route, path, query or representation. */
  filter: string;
  /** 1-based page of the entry table. */
  page: number;
}

/** The view a page URL asks for; anything unknown falls back to the default, never an error. */
export function parseEntryView(params: URLSearchParams): EntryView {
  const sort = params.get('sort');
  const order = params.get('order');
  return {
    sort: (SORT_KEYS as readonly string[]).includes(sort ?? '') ? (sort as SortKey) : 'route',
    order: order === 'desc' ? 'desc' : 'asc',
    filter: (params.get('filter') ?? '').slice(0, 200),
    page: Math.min(10_000, Math.max(1, Math.floor(Number(params.get('page') ?? '1')) || 1)),
  };
}

export interface StatusInputs {
  version: string;
  configFile: string;
  now: number;
  routes: readonly Route[];
  samples: readonly MetricSample[];
  /** The page of entries to show, already sorted and filtered. */
  entries: EntryTable;
  /** Entries and bytes a route holds (kept by the cache, never summed from rows). */
  usage(route: string): { entries: number; bytes: number };
  lastFetch(route: string): LastFetch | undefined;
  reloadError: string | undefined;
  unreachedInvalidation?: string | undefined;
  levels?: readonly LevelStatus[];
  view: EntryView;
}

const OUTCOMES: readonly CacheOutcome[] = ['hit', 'miss', 'collapsed', 'stale', 'bypass'];

/** The metrics the page reads: all a refresh needs to collect (not the process and runtime ones). */
export const STATUS_METRICS = [
  'scrapecache_requests_total',
  'scrapecache_upstream_requests_total',
  'scrapecache_config_last_reload_successful',
  'scrapecache_config_last_reload_success_timestamp_seconds',
] as const;

function sumBy(samples: readonly MetricSample[], name: string, label: string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const metric of samples) {
    if (metric.name !== name) continue;
    for (const { value, labels } of metric.values) {
      const route = String(labels['route'] ?? '');
      const key = String(labels[label] ?? '');
      const byKey = out.get(route) ?? new Map<string, number>();
      byKey.set(key, (byKey.get(key) ?? 0) + value);
      out.set(route, byKey);
    }
  }
  return out;
}

function gauge(samples: readonly MetricSample[], name: string): number | undefined {
  return samples.find((m) => m.name === name)?.values[0]?.value;
}

export function buildStatusModel(input: StatusInputs): StatusModel {
  const requests = sumBy(input.samples, 'scrapecache_requests_total', 'cache');
  const upstream = sumBy(input.samples, 'scrapecache_upstream_requests_total', 'code');
  const routes = input.routes.map((route): RouteStatus => {
    const counts = Object.fromEntries(OUTCOMES.map((o) => [o, requests.get(route.name)?.get(o) ?? 0])) as Record<CacheOutcome, number>;
    const total = OUTCOMES.reduce((n, o) => n + counts[o], 0);
    let upstreamFetches = 0;
    for (const n of upstream.get(route.name)?.values() ?? []) upstreamFetches += n;
    return {
      name: route.name,
      match: route.path ?? `${route.pathPrefix}*`,
      upstream: route.upstream.href,
      cache: route.cache,
      ttlMs: route.ttlMs,
      staleWhileRevalidateMs: route.staleWhileRevalidateMs,
      staleIfErrorMs: route.staleIfErrorMs,
      overrides: route.overrides.map((o) => ({ match: describeOverride(o), ttlMs: o.ttlMs, staleWhileRevalidateMs: o.staleWhileRevalidateMs, staleIfErrorMs: o.staleIfErrorMs })),
      prefetch: route.prefetch,
      lastFetch: input.lastFetch(route.name),
      requests: counts,
      total,
      hitRatio: total === 0 ? null : (counts.hit + counts.stale) / total,
      upstreamFetches,
      saved: route.cache ? Math.max(0, total - upstreamFetches) : 0,
      entries: input.usage(route.name).entries,
      bytes: input.usage(route.name).bytes,
    };
  });
  const ok = gauge(input.samples, 'scrapecache_config_last_reload_successful') !== 0;
  return {
    version: input.version,
    configFile: input.configFile,
    now: input.now,
    routes,
    entries: input.entries.rows,
    totalEntries: input.entries.total,
    matchedEntries: input.entries.matched,
    page: input.entries.page,
    pages: input.entries.pages,
    pageSize: input.entries.pageSize,
    reload: {
      ok,
      successAt: gauge(input.samples, 'scrapecache_config_last_reload_success_timestamp_seconds'),
      error: ok ? undefined : input.reloadError,
    },
    unreachedInvalidation: input.unreachedInvalidation,
    levels: [...(input.levels ?? [])],
    view: input.view,
  };
}
