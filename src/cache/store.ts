/**
 * The store contract (issue 9), modelled on undici's CacheStore (types/cache-interceptor.d.ts)
 * and its assertCacheStore. A store keeps StoredRecords by key. The memory level answers
 * synchronously, so a hit awaits nothing; a second level (disk, Redis) may answer with a
 * promise. Every store runs the one conformance suite in test/helpers/store-conformance.ts.
 *
 * Rules every store keeps:
 * - get never returns a record past its deadAt by the store's clock, nor one that does not
 *   decode (it is dropped and reported instead); the record it returns is a copy or immutable,
 *   never something a later set mutates.
 * - set replaces whatever the key held (last writer wins: the caller decides whether a record
 *   is newer, see ScrapeCache). It resolves to false when the store refused the record (larger
 *   than its bound, or a failing medium); a refusal never removes the record it would replace
 *   unless that record is gone for good anyway.
 * - delete and deleteSelected take effect before they resolve; a later get does not see the
 *   records they removed.
 * - A failing medium never throws out of get (it answers undefined) and never rejects set
 *   (it answers false): the proxy goes on from memory. Failures are the store's to log.
 */
import type { RouteUsage } from './entry-index.js';
import type { StoredRecord } from './stored-record.js';
import type { StoredResponse } from './stored-response.js';

export type MaybePromise<T> = T | Promise<T>;

/**
 * Which entries an invalidation selects, as data so that it can cross a process or a network.
 * No field: every entry. `route`: that route's. `path`: that scrape path's (`route` is then
 * the route serving it). `query` (with `path`): that one key, every representation. Route names
 * and canonical queries are resolved before a selection is made (see selector in the admin
 * listener).
 */
export interface EntrySelection {
  route?: string;
  path?: string;
  query?: string;
}

/** The fields of a record a selection looks at. */
export type EntryIdentity = Pick<StoredRecord, 'route' | 'path' | 'query'>;

export function selects(selection: EntrySelection, entry: EntryIdentity): boolean {
  return (
    (selection.route === undefined || selection.route === entry.route) &&
    (selection.path === undefined || selection.path === entry.path) &&
    (selection.query === undefined || selection.query === entry.query)
  );
}

/** How a cache level is doing, for the status page (what `scrapecache_store_up` says, and more). */
export interface LevelStatus {
  /** memory, disk or redis. */
  name: string;
  /** The directory, or the Redis URL without credentials; empty for memory. */
  where: string;
  up: boolean;
  /** Unix ms since which `up` has held (the level opened, or last went down or came back). */
  since: number;
  /** Records the level holds (Redis: under the key prefix, counted at `countedAt`); undefined when unknown. */
  entries?: number;
  /** Bytes the level holds (Redis: the server's used_memory, every key included). */
  bytes?: number;
  /** The level's bound, where it has one of its own. */
  maxBytes?: number;
  /** Redis: when `entries` and `bytes` were read (they are read at most every few seconds). */
  countedAt?: number;
  /** The last failure, while up too: what went wrong, and when (unix ms). */
  lastError?: { message: string; at: number };
}

export interface Store {
  /** A name for logs and the `store` label of scrapecache_store_* metrics: memory, disk, redis. */
  readonly name: string;
  /** How the level is doing (second levels: the status page shows it). */
  status?(): LevelStatus | Promise<LevelStatus>;
  get(key: string): MaybePromise<StoredRecord | undefined>;
  set(record: StoredRecord): MaybePromise<boolean>;
  /** Resolves to whether the key held a record. */
  delete(key: string): MaybePromise<boolean>;
  /** Removes every record the selection names; resolves to how many. */
  deleteSelected(selection: EntrySelection): MaybePromise<number>;
  /**
   * Every live record, for loading the memory level at start-up. Optional: a shared level
   * (Redis) is read through on a miss instead.
   */
  records?(): AsyncIterable<StoredRecord> | Iterable<StoredRecord>;
  close(): MaybePromise<void>;
}

/** The memory level: everything synchronous, so that a hit awaits nothing. */
export interface SyncStore extends Store {
  get(key: string): StoredRecord | undefined;
  set(record: StoredRecord): boolean;
  delete(key: string): boolean;
  deleteSelected(selection: EntrySelection): number;
}

/**
 * The memory level as the cache uses it (MemoryStore is the one): a SyncStore that holds the
 * entries it serves, answers by key without an await, and keeps an index by route and path for
 * invalidations, listings and per-route usage. An entry it holds is replaced, never changed in
 * place by the store; `resize` re-accounts one whose renditions grew.
 */
export interface MemoryLevel extends SyncStore {
  /** The live entry for a key, marking it recently used; `now` is the clock read once per request. */
  lookup(key: string, now: number): StoredResponse | undefined;
  /** The entry without touching recency, dead or alive. */
  peek(key: string): StoredResponse | undefined;
  resize(entry: StoredResponse): void;
  /** Puts `next` in the place of `current` if that is still the entry under its key. */
  replace(current: StoredResponse, next: StoredResponse): boolean;
  /** Removes the entry under its key only if it is still this one. */
  deleteIf(entry: StoredResponse): boolean;
  selected(selection: EntrySelection): StoredResponse[];
  countSelected(selection: EntrySelection): number;
  inKeyOrder(after?: string): IterableIterator<StoredResponse>;
  usage(route: string): RouteUsage;
  entries(): IterableIterator<StoredResponse>;
  readonly count: number;
  readonly bytes: number;
  status(): LevelStatus;
  close(): void;
}

/** Throws a TypeError naming what is missing when a value is not a Store (undici: assertCacheStore). */
export function assertStore(value: unknown, name = 'store'): asserts value is Store {
  if (value === null || typeof value !== 'object') throw new TypeError(`${name} must be an object`);
  const v = value as Record<string, unknown>;
  if (typeof v['name'] !== 'string') throw new TypeError(`${name}.name must be a string`);
  for (const method of ['get', 'set', 'delete', 'deleteSelected', 'close']) {
    if (typeof v[method] !== 'function') throw new TypeError(`${name}.${method} must be a function`);
  }
  if (v['records'] !== undefined && typeof v['records'] !== 'function') throw new TypeError(`${name}.records must be a function`);
}
