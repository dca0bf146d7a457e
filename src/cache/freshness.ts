/**
 * Freshness arithmetic (SPEC 3.4), pure and with no I/O, like undici's lib/util/cache.js.
 * Times are milliseconds since the epoch.
 */

export interface FreshnessPolicy {
  ttlMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
  /** Upper bound on one upstream fetch: how long a soft invalidation's refetch may run. */
  timeoutMs: number;
}

export interface Dated {
  /** When the upstream fetch completed. */
  fetchedAt: number;
  /** Set by a soft invalidation (SPEC 4 `soft`): stale from then on, though still servable. */
  staleFrom?: number | undefined;
}

/** When freshness ends: ttl after the fetch, or earlier when a soft invalidation said so. */
export function expiresAt(entry: Dated, policy: FreshnessPolicy): number {
  const natural = entry.fetchedAt + policy.ttlMs;
  return entry.staleFrom !== undefined && entry.staleFrom < natural ? entry.staleFrom : natural;
}

/** Fresh for ttl after the fetch completed, unless soft-invalidated before. */
export function isFresh(entry: Dated, policy: FreshnessPolicy, now: number): boolean {
  return now < expiresAt(entry, policy);
}

/** Within the stale-while-revalidate window: serve at once, refresh in the background. */
export function canServeWhileRevalidating(entry: Dated, policy: FreshnessPolicy, now: number): boolean {
  return now < expiresAt(entry, policy) + policy.staleWhileRevalidateMs;
}

/** Within the stale-if-error window: serve instead of an upstream error. */
export function canServeOnError(entry: Dated, policy: FreshnessPolicy, now: number): boolean {
  return now < expiresAt(entry, policy) + policy.staleIfErrorMs;
}

/**
 * A soft-invalidated entry is served at once while it is refetched, whatever the stale windows:
 * until its ttl would have ended, and in any case for one fetch timeout past that (or past the
 * invalidation), so that a refetch started within that time finishes inside the window. No
 * scrape then waits for the upstream, even for an exporter that takes minutes.
 */
export function canServeWhileSoftRefetching(entry: Dated, policy: FreshnessPolicy, now: number): boolean {
  if (entry.staleFrom === undefined) return false;
  return now < Math.max(entry.fetchedAt + policy.ttlMs, entry.staleFrom) + policy.timeoutMs;
}

/** Past every window: the entry can never be served again and may be dropped. */
export function isDead(entry: Dated, policy: FreshnessPolicy, now: number): boolean {
  const staleUntil = expiresAt(entry, policy) + Math.max(policy.staleWhileRevalidateMs, policy.staleIfErrorMs);
  return now >= staleUntil && !canServeWhileSoftRefetching(entry, policy, now);
}

/** Whole seconds since the fetch (RFC 9111 5.1: Age is a non-negative integer). */
export function ageSeconds(entry: Dated, now: number): number {
  return Math.max(0, Math.floor((now - entry.fetchedAt) / 1000));
}

/** Whole seconds of freshness left, for Cache-Status ttl= (RFC 9211 2.5); negative once stale. */
export function ttlSeconds(entry: Dated, policy: FreshnessPolicy, now: number): number {
  const left = expiresAt(entry, policy) - now;
  return left >= 0 ? Math.floor(left / 1000) : -Math.ceil(-left / 1000);
}

/**
 * When to refresh a prefetched entry: ahead of expiry by a tenth of the ttl, at most the
 * fetch's own timeout and at least a second, so that a scrape never finds it expired.
 */
export function prefetchAt(entry: Dated, policy: FreshnessPolicy): number {
  const lead = Math.max(Math.min(policy.ttlMs / 10, policy.timeoutMs), Math.min(1000, policy.ttlMs / 2));
  return entry.fetchedAt + policy.ttlMs - lead;
}

/**
 * Back-off before the next refresh after a failed one: requests in between are answered from the
 * stale entry instead of each going upstream (nginx trac #1000). Doubles per failure from 1 s,
 * capped at the ttl and at a minute.
 */
export function retryBackoffMs(failures: number, policy: FreshnessPolicy): number {
  const base = 1000 * 2 ** Math.max(0, failures - 1);
  return Math.min(base, Math.max(policy.ttlMs, 1000), 60_000);
}
