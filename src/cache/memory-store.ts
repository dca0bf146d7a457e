/**
 * The in-memory store: an LRU bounded by the bytes its entries really hold (SPEC 2
 * cache.max_bytes), from lru-cache. Freshness is not its business; it keeps entries until they
 * are evicted, invalidated, replaced, or found past every serving window.
 */
import { LRUCache } from 'lru-cache';
import { EntryIndex, type RouteUsage } from './entry-index.js';
import { isDead } from './freshness.js';
import type { EntrySelection, LevelStatus, SyncStore } from './store.js';
import type { StoredRecord } from './stored-record.js';
import { StoredResponse } from './stored-response.js';

export interface MemoryStoreEvents {
  /** An entry was pushed out to make room. */
  onEvict?(entry: StoredResponse): void;
}

export class MemoryStore implements SyncStore {
  readonly name = 'memory';
  private readonly lru: LRUCache<string, StoredResponse>;
  /** By route and path, with per-route usage: kept in step with the LRU by set and dispose. */
  private readonly index = new EntryIndex();
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly openedAt: number;

  constructor(
    private readonly maxBytes: number,
    events: MemoryStoreEvents = {},
    private readonly now: () => number = Date.now,
  ) {
    this.openedAt = now();
    this.lru = new LRUCache<string, StoredResponse>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (entry) => Math.max(1, entry.bytes),
      dispose: (entry, _key, reason) => {
        this.index.remove(entry);
        if (reason === 'evict') events.onEvict?.(entry);
      },
    });
    // Entries past every window are dead weight; drop them now and then rather than wait for LRU.
    this.sweepTimer = setInterval(() => this.sweep(this.now()), 30_000).unref();
  }

  /** The live entry for a key, marking it recently used. */
  get(key: string): StoredResponse | undefined {
    return this.lookup(key, this.now());
  }

  /** get() for a caller that already read the clock (the hit path reads it once). */
  lookup(key: string, now: number): StoredResponse | undefined {
    const entry = this.lru.get(key);
    if (entry === undefined || now < entry.deadAt || !isDead(entry, now)) return entry;
    this.lru.delete(key);
    return undefined;
  }

  /** The entry without touching recency, dead or alive (for background work and admin reads). */
  peek(key: string): StoredResponse | undefined {
    return this.lru.peek(key);
  }

  /** Stores a record, replacing any under its key. False when it alone is larger than the bound. */
  set(record: StoredRecord): boolean {
    const entry = StoredResponse.fromRecord(record);
    this.lru.set(entry.key, entry);
    if (this.lru.peek(entry.key) !== entry) return false;
    this.index.add(entry);
    return true;
  }

  /**
   * Puts `next` where `current` is, if `current` is still the entry under its key (same key, same
   * size: a soft invalidation's new entry). False when it was replaced or dropped meanwhile.
   */
  replace(current: StoredResponse, next: StoredResponse): boolean {
    if (this.lru.peek(current.key) !== current) return false;
    return this.set(next);
  }

  /** Re-accounts an entry whose size changed (a converted variant was added). */
  resize(entry: StoredResponse): void {
    if (this.lru.peek(entry.key) !== entry) return;
    this.lru.delete(entry.key);
    this.lru.set(entry.key, entry);
    if (this.lru.peek(entry.key) === entry) this.index.add(entry);
  }

  delete(key: string): boolean {
    return this.lru.delete(key);
  }

  /** Removes the entry under a key only if it is still this one. */
  deleteIf(entry: StoredResponse): boolean {
    return this.lru.peek(entry.key) === entry && this.lru.delete(entry.key);
  }

  deleteSelected(selection: EntrySelection): number {
    let n = 0;
    for (const entry of this.selected(selection)) if (this.deleteIf(entry)) n++;
    return n;
  }

  /** The entries a selection names, found through the index (not a walk of every entry). */
  selected(selection: EntrySelection): StoredResponse[] {
    return [...this.index.selected(selection)];
  }

  /** How many entries a selection names. */
  countSelected(selection: EntrySelection): number {
    return this.index.countSelected(selection);
  }

  /** Entries in key order after a key (see EntryIndex.inKeyOrder). */
  inKeyOrder(after?: string): IterableIterator<StoredResponse> {
    return this.index.inKeyOrder(after);
  }

  /** Entries, bytes and oldest servable age of a route, kept up to date as entries come and go. */
  usage(route: string): RouteUsage {
    return this.index.usage(route, this.now());
  }

  /** Drops every entry the predicate selects; returns how many. */
  deleteWhere(select: (entry: StoredResponse) => boolean): number {
    let n = 0;
    for (const [key, entry] of this.lru.entries()) {
      if (select(entry)) {
        this.lru.delete(key);
        n++;
      }
    }
    return n;
  }

  /** Every live entry, least recently used last. */
  *records(): IterableIterator<StoredResponse> {
    const now = this.now();
    for (const entry of this.lru.values()) if (now < entry.deadAt) yield entry;
  }

  /** Every entry held, dead ones included until the next sweep. */
  entries(): IterableIterator<StoredResponse> {
    return this.lru.values();
  }

  get count(): number {
    return this.lru.size;
  }

  /** Always up; in a cluster, this process's copy (each process holds its own). */
  status(): LevelStatus {
    return { name: this.name, where: '', up: true, since: this.openedAt, entries: this.count, bytes: this.bytes, maxBytes: this.maxBytes };
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }

  /** Drops entries past every window; returns them. */
  sweep(now: number): StoredResponse[] {
    const dead: StoredResponse[] = [];
    this.deleteWhere((entry) => isDead(entry, now) && dead.push(entry) > 0);
    return dead;
  }

  close(): void {
    clearInterval(this.sweepTimer);
    this.lru.clear();
    this.index.clear();
  }
}
