/**
 * The in-memory store: an LRU bounded by the bytes its entries really hold (SPEC 2
 * cache.max_bytes), from lru-cache. Freshness is not its business; it keeps entries until they
 * are evicted, invalidated, replaced, or found past every serving window.
 */
import { LRUCache } from 'lru-cache';
import { isDead } from './freshness.js';
import type { StoredResponse } from './stored-response.js';

export interface StoreEvents {
  /** An entry was pushed out to make room. */
  onEvict?(entry: StoredResponse): void;
}

export class MemoryStore {
  private readonly lru: LRUCache<string, StoredResponse>;
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(maxBytes: number, events: StoreEvents = {}) {
    this.lru = new LRUCache<string, StoredResponse>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (entry) => Math.max(1, entry.bytes),
      dispose: (entry, _key, reason) => {
        if (reason === 'evict') events.onEvict?.(entry);
      },
    });
    // Entries past every window are dead weight; drop them now and then rather than wait for LRU.
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), 30_000).unref();
  }

  /** The entry for a key, marking it recently used. */
  get(key: string): StoredResponse | undefined {
    return this.lru.get(key);
  }

  /** The entry without touching recency (for background work and admin reads). */
  peek(key: string): StoredResponse | undefined {
    return this.lru.peek(key);
  }

  /** Stores an entry, replacing any under its key. False when it alone is larger than the bound. */
  set(entry: StoredResponse): boolean {
    this.lru.set(entry.key, entry);
    return this.lru.peek(entry.key) === entry;
  }

  /** Re-accounts an entry whose size changed (a converted variant was added). */
  resize(entry: StoredResponse): void {
    if (this.lru.peek(entry.key) !== entry) return;
    this.lru.delete(entry.key);
    this.lru.set(entry.key, entry);
  }

  /** Removes the entry under a key only if it is still this one. */
  deleteIf(entry: StoredResponse): void {
    if (this.lru.peek(entry.key) === entry) this.lru.delete(entry.key);
  }

  /** Drops every entry the predicate selects; returns how many. */
  invalidate(select: (entry: StoredResponse) => boolean): number {
    let n = 0;
    for (const [key, entry] of this.lru.entries()) {
      if (select(entry)) {
        this.lru.delete(key);
        n++;
      }
    }
    return n;
  }

  entries(): IterableIterator<StoredResponse> {
    return this.lru.values();
  }

  get count(): number {
    return this.lru.size;
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }

  sweep(now: number): number {
    return this.invalidate((entry) => isDead(entry, entry.policy, now));
  }

  close(): void {
    clearInterval(this.sweepTimer);
    this.lru.clear();
  }
}
