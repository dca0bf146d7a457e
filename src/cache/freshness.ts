/**
 * Freshness arithmetic (SPEC 3.4), pure and with no I/O, like undici's lib/util/cache.js.
 * Times are milliseconds since the epoch, carried by the record itself (see stored-record.ts).
 */
import type { StoredRecord } from './stored-record.js';

export type RecordTimes = Pick<StoredRecord, 'fetchedAt' | 'staleAt' | 'revalidateUntil' | 'errorUntil' | 'deadAt'> & SoftTimes;

/** Set by a soft invalidation (SPEC 4 `soft`) on the copy one process holds. */
export interface SoftTimes {
  /** Stale from then on, though still servable. */
  staleFrom?: number | undefined;
  /** Served while refetched until then, whatever the stale windows (see softTimes). */
  softUntil?: number | undefined;
}

/**
 * The times a soft invalidation at `at` gives an entry: stale from then (or from an earlier soft
 * invalidation), and served while refetched until its ttl would have ended, and in any case for
 * one fetch timeout past that (or past the invalidation), so that a refetch started within that
 * time finishes inside the window. No scrape then waits for the upstream, even for an exporter
 * that takes minutes.
 */
export function softTimes(entry: RecordTimes, at: number, timeoutMs: number): Required<SoftTimes> {
  const staleFrom = entry.staleFrom === undefined || at < entry.staleFrom ? at : entry.staleFrom;
  return { staleFrom, softUntil: Math.max(entry.staleAt, staleFrom) + timeoutMs };
}

/** How much earlier a soft invalidation made the entry stale (it never extends freshness). */
function earlier(entry: RecordTimes): number {
  return entry.staleFrom !== undefined && entry.staleFrom < entry.staleAt ? entry.staleAt - entry.staleFrom : 0;
}

/** When freshness ends: ttl after the fetch, or earlier when a soft invalidation said so. */
export function expiresAt(entry: RecordTimes): number {
  return entry.staleAt - earlier(entry);
}

/** Fresh for ttl after the fetch completed, unless soft-invalidated before. */
export function isFresh(entry: RecordTimes, now: number): boolean {
  return now < entry.staleAt - earlier(entry);
}

/** Within the stale-while-revalidate window: serve at once, refresh in the background. */
export function canServeWhileRevalidating(entry: RecordTimes, now: number): boolean {
  return now < entry.revalidateUntil - earlier(entry);
}

/** Within the stale-if-error window: serve instead of an upstream error. */
export function canServeOnError(entry: RecordTimes, now: number): boolean {
  return now < entry.errorUntil - earlier(entry);
}

/** A soft-invalidated entry within its soft window (see softTimes). */
export function canServeWhileSoftRefetching(entry: RecordTimes, now: number): boolean {
  return entry.softUntil !== undefined && now < entry.softUntil;
}

/** Past every window: the entry can never be served again and may be dropped. */
export function isDead(entry: RecordTimes, now: number): boolean {
  return now >= entry.deadAt - earlier(entry) && !canServeWhileSoftRefetching(entry, now);
}

/** Whole seconds since the fetch (RFC 9111 5.1: Age is a non-negative integer). */
export function ageSeconds(entry: Pick<RecordTimes, 'fetchedAt'>, now: number): number {
  return Math.max(0, Math.floor((now - entry.fetchedAt) / 1000));
}

/** Whole seconds of freshness left, for Cache-Status ttl= (RFC 9211 2.5); negative once stale. */
export function ttlSeconds(entry: RecordTimes, now: number): number {
  const left = expiresAt(entry) - now;
  return left >= 0 ? Math.floor(left / 1000) : -Math.ceil(-left / 1000);
}

/**
 * When to refresh a prefetched entry: ahead of expiry by a tenth of the ttl, at most the
 * fetch's own timeout and at least a second, so that a scrape never finds it expired.
 */
export function prefetchAt(entry: RecordTimes, timeoutMs: number): number {
  const ttlMs = entry.staleAt - entry.fetchedAt;
  const lead = Math.max(Math.min(ttlMs / 10, timeoutMs), Math.min(1000, ttlMs / 2));
  return entry.staleAt - lead;
}

/**
 * Back-off before the next refresh after a failed one: requests in between are answered from the
 * stale entry instead of each going upstream (nginx trac #1000). Doubles per failure from 1 s,
 * capped at the ttl and at a minute.
 */
export function retryBackoffMs(failures: number, ttlMs: number): number {
  const base = 1000 * 2 ** Math.max(0, failures - 1);
  return Math.min(base, Math.max(ttlMs, 1000), 60_000);
}
