/**
 * What listings, the status page and the scrape listener read of the memory level through the
 * cache (GET /cache, hit counts, per-route usage): reads that decide nothing. ScrapeCache
 * extends it; nothing here writes but resized, which re-accounts an entry's size.
 */
import type { RouteUsage } from './entry-index.js';
import { HitCounter } from './hit-counter.js';
import type { ScrapeTarget } from './filler.js';
import { keyOf } from './key.js';
import type { EntrySelection, MemoryLevel } from './store.js';
import type { StoredResponse } from './stored-response.js';

export class CacheReads {
  protected readonly hits = new HitCounter();

  constructor(protected readonly memory: MemoryLevel) {}

  /** How often this entry was served (hits and stale serves) by this process. */
  hitsOf(entry: StoredResponse): number {
    return this.hits.of(entry);
  }

  /** The entry held in memory for a target, fresh or not, without touching recency or counting a hit. */
  peek(target: ScrapeTarget): StoredResponse | undefined {
    return this.memory.peek(keyOf(target));
  }

  /** The entry held under a key, without touching recency (a listing's hit counts). */
  peekKey(key: string): StoredResponse | undefined {
    return this.memory.peek(key);
  }

  /** The entries held for one route and path, any query (through the index, not a walk of every entry). */
  entriesAt(route: string, path: string): StoredResponse[] {
    return this.memory.selected({ route, path });
  }

  /** Every entry in memory, for listings (GET /cache) and hit counts. */
  entries(): IterableIterator<StoredResponse> {
    return this.memory.entries();
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
}
