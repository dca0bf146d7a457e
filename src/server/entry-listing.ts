/**
 * Pages of cache entries for GET /cache and the status page (issue 21): however many entries
 * there are, an answer holds a bounded number of rows, and no listing holds the event loop for
 * long. GET /cache pages in key order with a cursor (the last key of the previous page), which
 * stays right while entries come and go; the status page's default view (by route) takes its
 * page straight from the same order, and its other sorts and filters scan in slices that yield,
 * keeping only the best rows.
 */
import { expiresAt } from '../cache/freshness.js';
import { parseKey, routeKeyPrefix } from '../cache/key.js';
import type { StoredResponse } from '../cache/stored-response.js';
import type { EntryView, SortKey } from '../pages/status-model.js';

export interface KeyOrdered {
  inKeyOrder(after?: string): IterableIterator<StoredResponse>;
}

/** Entries looked at between two turns of the event loop while scanning. */
const SCAN_SLICE = 2000;
/** Rows a sorted or filtered view can page through: its pages are the best this many. */
export const MAX_RANKED_ROWS = 5000;

/**
 * One page in key order after `after` (a key, from the previous page's cursor), of one route or
 * all; `next` is the cursor of the following page, undefined on the last one.
 */
export function keyOrderPage(source: KeyOrdered, limit: number, after: string | undefined, route: string | undefined): { entries: StoredResponse[]; next: string | undefined } {
  const entries: StoredResponse[] = [];
  const prefix = route === undefined ? undefined : routeKeyPrefix(route);
  // A route's keys are contiguous in key order: start at its first one.
  const from = prefix !== undefined && (after === undefined || after < prefix) ? `${route}` : after;
  for (const entry of source.inKeyOrder(from)) {
    if (prefix !== undefined && !entry.key.startsWith(prefix)) {
      if (entry.key > prefix) break;
      continue;
    }
    if (entries.length === limit) return { entries, next: entries.at(-1)!.key };
    entries.push(entry);
  }
  return { entries, next: undefined };
}

/** The cursor as it travels in a URL: the key (which holds NUL bytes) in base64url. */
export function encodeCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): string | undefined {
  if (!/^[A-Za-z0-9_-]{1,8192}$/.test(cursor)) return undefined;
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  return parseKey(key) ? key : undefined;
}

type Compare = (a: StoredResponse, b: StoredResponse) => number;

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function comparator(sort: SortKey, hits: (e: StoredResponse) => number): Compare {
  switch (sort) {
    case 'route':
      return (a, b) => byText(a.key, b.key);
    case 'path':
      return (a, b) => byText(a.path, b.path) || byText(a.query, b.query);
    case 'query':
      return (a, b) => byText(a.query, b.query);
    case 'representation':
      return (a, b) => byText(a.representation, b.representation);
    case 'bytes':
      return (a, b) => a.bytes - b.bytes;
    // By age: ascending is the one fetched last first.
    case 'age':
      return (a, b) => b.fetchedAt - a.fetchedAt;
    case 'ttl':
      return (a, b) => expiresAt(a) - expiresAt(b);
    case 'hits':
      return (a, b) => hits(a) - hits(b);
  }
}

function matchesFilter(entry: StoredResponse, needle: string): boolean {
  return (
    entry.route.toLowerCase().includes(needle) ||
    entry.path.toLowerCase().includes(needle) ||
    entry.query.toLowerCase().includes(needle) ||
    entry.representation.toLowerCase().includes(needle)
  );
}

export interface ViewPage {
  entries: StoredResponse[];
  /** Entries the filter admits (all when there is none). */
  matched: number;
  /** The page shown (1-based), after clamping to the pages there are. */
  page: number;
  pages: number;
}

/**
 * A page of the status page's entry table: sorted, filtered, paged here, not in the browser.
 * The default view (by route, no filter) reads its page from key order; any other view scans
 * every entry in slices that yield to scrapes, keeping the best `page * pageSize` rows (at most
 * MAX_RANKED_ROWS).
 */
export async function viewPage(source: KeyOrdered & { count: number }, view: EntryView, page: number, pageSize: number, hits: (e: StoredResponse) => number): Promise<ViewPage> {
  const needle = view.filter.toLowerCase();
  if (view.sort === 'route' && needle === '') {
    const pages = Math.max(1, Math.ceil(source.count / pageSize));
    const shown = Math.min(Math.max(1, page), pages);
    const skip = (shown - 1) * pageSize;
    const entries: StoredResponse[] = [];
    if (view.order === 'asc') {
      // A later page walks past the rows before it, in slices that yield like the scans below.
      let skipped = 0;
      let after: string | undefined;
      while (skipped < skip) {
        let seen = 0;
        for (const entry of source.inKeyOrder(after)) {
          after = entry.key;
          skipped++;
          if (++seen === SCAN_SLICE || skipped === skip) break;
        }
        if (seen === 0) break;
        if (skipped < skip) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      for (const entry of source.inKeyOrder(after)) {
        entries.push(entry);
        if (entries.length === pageSize) break;
      }
      return { entries, matched: source.count, page: shown, pages };
    }
  }
  const base = comparator(view.sort, hits);
  const tie = (a: StoredResponse, b: StoredResponse) => byText(a.key, b.key);
  const compare: Compare = view.order === 'asc' ? (a, b) => base(a, b) || tie(a, b) : (a, b) => base(b, a) || tie(a, b);
  const keep = Math.min(Math.max(1, page) * pageSize, MAX_RANKED_ROWS);
  let best: StoredResponse[] = [];
  let matched = 0;
  let after: string | undefined;
  for (;;) {
    let seen = 0;
    let last: string | undefined;
    for (const entry of source.inKeyOrder(after)) {
      last = entry.key;
      if (needle === '' || matchesFilter(entry, needle)) {
        matched++;
        best.push(entry);
        if (best.length >= 2 * keep) best = best.sort(compare).slice(0, keep);
      }
      if (++seen === SCAN_SLICE) break;
    }
    if (seen < SCAN_SLICE || last === undefined) break;
    after = last;
    // Resumed after the last key seen: entries that came or went meanwhile are taken as they are now.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  best.sort(compare);
  const pages = Math.max(1, Math.ceil(Math.min(matched, MAX_RANKED_ROWS) / pageSize));
  const shown = Math.min(Math.max(1, page), pages);
  return { entries: best.slice((shown - 1) * pageSize, shown * pageSize), matched, page: shown, pages };
}
