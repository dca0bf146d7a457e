/**
 * What the cache does with a scrape, given the entry it holds, the key's last refresh failure
 * and the time (SPEC 3.4): pure functions with no I/O, like undici's lib/util/cache.js, so the
 * decision is tested without a server.
 */
import type { Route } from '../config/types.js';
import { PROMETHEUS_ACCEPT } from './accept-headers.js';
import type { ScrapeTarget } from './filler.js';
import { canServeOnError, canServeWhileRevalidating, canServeWhileSoftRefetching, isFresh, type RecordTimes } from './freshness.js';
import { SOURCE, SOURCE_ACCEPT } from './upstream-profile.js';

/**
 * - `hit`: fresh, serve it.
 * - `stale-and-refresh`: serve it at once and refresh in the background (stale-while-revalidate,
 *   or a soft invalidation's window).
 * - `stale-under-back-off`: a refresh failed a moment ago; serve it and send nothing upstream
 *   until the back-off ends (nginx trac #1000).
 * - `fill`: nothing servable now; the client waits for a fill.
 */
export type Decision = 'hit' | 'stale-and-refresh' | 'stale-under-back-off' | 'fill';

/** A refresh failure of the entry at hand (see FailureBook): when the next try may go upstream. */
export interface Backoff {
  retryAt: number;
}

export function decide(entry: RecordTimes | undefined, failure: Backoff | undefined, now: number): Decision {
  if (!entry) return 'fill';
  if (isFresh(entry, now)) return 'hit';
  // A soft-invalidated entry is served while its refetch runs; once that failed, only the stale
  // windows (stale_if_error) keep it.
  if (canServeWhileRevalidating(entry, now) || (!failure && canServeWhileSoftRefetching(entry, now))) {
    return !failure || now >= failure.retryAt ? 'stale-and-refresh' : 'stale-under-back-off';
  }
  if (failure && now < failure.retryAt && canServeOnError(entry, now)) return 'stale-under-back-off';
  return 'fill';
}

/**
 * Keys that prefetch keeps fresh: the route's own path, no query, a metrics-format
 * representation (not one keyed by an arbitrary Accept header, which any client could mint).
 */
export function isPrefetched(target: ScrapeTarget | undefined): boolean {
  if (!target) return false;
  const { route } = target;
  return route.prefetch && target.query === '' && target.path === route.path && !target.representation.startsWith('accept:');
}

/**
 * What prefetch fetches at start-up (SPEC 3.4), as a client that names no escaping would be
 * answered: the protobuf source (Prometheus's own Accept after it, for an upstream without
 * protobuf), or the route's pinned format. A fill is stored under what the upstream answers.
 */
export function startupTarget(route: Route, path: string): ScrapeTarget {
  const format: NonNullable<Route['format']> | 'negotiated' = route.format ?? 'negotiated';
  switch (format) {
    case 'negotiated':
      return { route, path, query: '', representation: SOURCE, accept: `${SOURCE_ACCEPT},${PROMETHEUS_ACCEPT}` };
    case 'protobuf':
      return { route, path, query: '', representation: SOURCE, accept: SOURCE_ACCEPT };
    case 'text':
      return { route, path, query: '', representation: 'text;0.0.4;underscores', accept: 'text/plain;version=0.0.4;escaping=underscores' };
    case 'openmetrics':
      return { route, path, query: '', representation: 'openmetrics;1.0.0;underscores', accept: 'application/openmetrics-text;version=1.0.0;escaping=underscores' };
    default:
      return unknownFormat(format);
  }
}

function unknownFormat(format: never): never {
  throw new TypeError(`unknown route format ${String(format)}`);
}
