/**
 * Per-target freshness (SPEC 2 `overrides`, issue 21): which windows a key of a route gets, by
 * the values of its query parameters. The first override whose every parameter has one of its
 * values wins, else the route's own. Asked once per fill, never on a hit (a record carries its
 * times, see stored-record.ts).
 */
import type { Route, WindowOverride } from '../config/types.js';
import type { WindowPolicy } from './stored-record.js';

/** The index of the override that applies to a canonical query, or -1 for the route's own windows. */
export function overrideIndex(route: Route, query: string): number {
  if (route.overrides.length === 0 || query === '') return -1;
  const params = new URLSearchParams(query);
  return route.overrides.findIndex((o) => matches(o, params));
}

/** The windows a key with this canonical query gets. */
export function windowsFor(route: Route, query: string): WindowPolicy {
  const i = overrideIndex(route, query);
  return i < 0 ? route : route.overrides[i]!;
}

/** How long the longest-lived key of a route may be served: ttl plus the longer stale window, over the route and its overrides. */
export function longestLifetimeMs(route: Route): number {
  let longest = route.ttlMs + Math.max(route.staleWhileRevalidateMs, route.staleIfErrorMs);
  for (const o of route.overrides) longest = Math.max(longest, o.ttlMs + Math.max(o.staleWhileRevalidateMs, o.staleIfErrorMs));
  return longest;
}

/** `module=inventory`, `target=10.1.*&module=if_mib`: an override's match as a query would say it. */
export function describeOverride(o: WindowOverride): string {
  return o.query.map(({ name, values }) => `${name}=${values.join('|')}`).join('&');
}

function matches(o: WindowOverride, params: URLSearchParams): boolean {
  return o.query.every(({ name, values }) => params.getAll(name).some((v) => values.some((want) => valueMatches(want, v))));
}

const patterns = new Map<string, RegExp>();

/** Exact, or a pattern where `*` matches any run of characters (10.1.*, *.example.com). */
function valueMatches(want: string, value: string): boolean {
  if (!want.includes('*')) return want === value;
  let re = patterns.get(want);
  if (!re) {
    re = new RegExp(`^${want.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
    if (patterns.size > 1000) patterns.clear();
    patterns.set(want, re);
  }
  return re.test(value);
}
