/**
 * What the memory level holds, by route and path (issue 21): invalidation finds its keys here
 * instead of walking every entry, and the per-route gauges (entries, bytes, oldest servable age)
 * are kept up to date as entries come and go, so a /metrics scrape costs the same at 50 000
 * entries as at 1 000.
 *
 * The memory store tells it of every entry it takes (add) and lets go (remove); nothing else
 * writes here. An entry is indexed under route -> path -> canonical query; the few
 * representations of one query share a slot.
 */
import SortedTree from 'sorted-btree';
import { isDead } from './freshness.js';
import type { EntrySelection } from './store.js';
import type { StoredResponse } from './stored-response.js';

type Slot = StoredResponse | StoredResponse[];

export interface RouteUsage {
  entries: number;
  bytes: number;
  /** Undefined when no entry of the route can be served. */
  oldestAgeSeconds: number | undefined;
}

class RouteEntries {
  entries = 0;
  bytes = 0;
  readonly byPath = new Map<string, Map<string, Slot>>();
  /** Entries by fetchedAt, oldest first; entries let go or dead are dropped when they come to the top. */
  readonly oldest: FetchedAtHeap;

  constructor(holds: (entry: StoredResponse) => boolean) {
    this.oldest = new FetchedAtHeap(holds);
  }
}


const BTree = SortedTree.default;

export class EntryIndex {
  private readonly routes = new Map<string, RouteEntries>();
  /**
   * Bytes each entry held was counted with (its size grows with a converted variant). Per index:
   * one entry object may sit in two stores of one process (an in-process bus in tests).
   */
  private readonly counted = new WeakMap<StoredResponse, number>();
  /** Every entry by key (route, path, query, representation): pages of a listing in a stable order. */
  private readonly byKey = new BTree<string, StoredResponse>();
  private total = 0;

  add(entry: StoredResponse): void {
    if (this.counted.has(entry)) return this.resized(entry);
    let r = this.routes.get(entry.route);
    if (!r) this.routes.set(entry.route, (r = new RouteEntries((e) => this.counted.has(e))));
    let queries = r.byPath.get(entry.path);
    if (!queries) r.byPath.set(entry.path, (queries = new Map()));
    const slot = queries.get(entry.query);
    if (slot === undefined) queries.set(entry.query, entry);
    else if (Array.isArray(slot)) slot.push(entry);
    else queries.set(entry.query, [slot, entry]);
    this.counted.set(entry, entry.bytes);
    this.byKey.set(entry.key, entry);
    this.total++;
    r.entries++;
    r.bytes += entry.bytes;
    r.oldest.push(entry);
  }

  remove(entry: StoredResponse): void {
    const counted = this.counted.get(entry);
    if (counted === undefined) return;
    this.counted.delete(entry);
    if (this.byKey.get(entry.key) === entry) this.byKey.delete(entry.key);
    this.total--;
    const r = this.routes.get(entry.route)!;
    const queries = r.byPath.get(entry.path)!;
    const slot = queries.get(entry.query)!;
    if (!Array.isArray(slot)) queries.delete(entry.query);
    else {
      slot.splice(slot.indexOf(entry), 1);
      if (slot.length === 1) queries.set(entry.query, slot[0]!);
    }
    if (queries.size === 0) r.byPath.delete(entry.path);
    r.entries--;
    r.bytes -= counted;
    if (r.entries === 0) this.routes.delete(entry.route);
    else r.oldest.compact(r.entries);
  }

  /** An entry held grew (a converted variant): count its new size. */
  resized(entry: StoredResponse): void {
    const counted = this.counted.get(entry);
    if (counted === undefined) return;
    this.routes.get(entry.route)!.bytes += entry.bytes - counted;
    this.counted.set(entry, entry.bytes);
  }

  /** Whether the index holds this entry object. */
  holds(entry: StoredResponse): boolean {
    return this.counted.has(entry);
  }

  /** The entries a selection names, without looking at any other. */
  *selected(selection: EntrySelection): IterableIterator<StoredResponse> {
    const routes = selection.route === undefined ? this.routes.values() : [this.routes.get(selection.route)].filter((r) => r !== undefined);
    for (const r of routes) {
      const paths = selection.path === undefined ? r.byPath.values() : [r.byPath.get(selection.path)].filter((q) => q !== undefined);
      for (const queries of paths) {
        if (selection.query !== undefined) {
          const slot = queries.get(selection.query);
          if (slot !== undefined) yield* Array.isArray(slot) ? [...slot] : [slot];
          continue;
        }
        for (const slot of queries.values()) {
          if (Array.isArray(slot)) yield* [...slot];
          else yield slot;
        }
      }
    }
  }

  /** How many entries a selection names. */
  countSelected(selection: EntrySelection): number {
    if (selection.path === undefined && selection.query === undefined) {
      return selection.route === undefined ? this.total : (this.routes.get(selection.route)?.entries ?? 0);
    }
    let n = 0;
    for (const _ of this.selected(selection)) n++;
    return n;
  }

  /** Entries, bytes and the oldest servable age of one route, in time independent of its size (amortized). */
  usage(route: string, now: number): RouteUsage {
    const r = this.routes.get(route);
    if (!r) return { entries: 0, bytes: 0, oldestAgeSeconds: undefined };
    const oldest = r.oldest.oldest((entry) => this.holds(entry) && !isDead(entry, now));
    return { entries: r.entries, bytes: r.bytes, oldestAgeSeconds: oldest === undefined ? undefined : Math.max(0, (now - oldest.fetchedAt) / 1000) };
  }

  /**
   * Entries in key order, from the first key after `after` (all when undefined): a listing's
   * pages, stable while entries come and go (each entry held throughout is listed once).
   */
  *inKeyOrder(after?: string): IterableIterator<StoredResponse> {
    for (const [key, entry] of this.byKey.entries(after)) {
      if (key === after) continue;
      yield entry;
    }
  }

  get count(): number {
    return this.total;
  }

  routeNames(): IterableIterator<string> {
    return this.routes.keys();
  }

  clear(): void {
    for (const entry of this.byKey.values()) this.counted.delete(entry);
    this.routes.clear();
    this.byKey.clear();
    this.total = 0;
  }
}

/**
 * A binary min-heap of entries by fetchedAt, with lazy deletion: an entry let go stays until it
 * reaches the top, or until entries let go are a fifth of the heap and it is rebuilt (so that it
 * never keeps the bodies of many entries gone).
 */
class FetchedAtHeap {
  private items: StoredResponse[] = [];

  constructor(private readonly holds: (entry: StoredResponse) => boolean) {}

  push(entry: StoredResponse): void {
    const items = this.items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]!.fetchedAt <= entry.fetchedAt) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = entry;
  }

  /** The oldest entry that `keep` accepts; the ones above it that it refuses are dropped for good. */
  oldest(keep: (entry: StoredResponse) => boolean): StoredResponse | undefined {
    while (this.items.length > 0) {
      const top = this.items[0]!;
      if (keep(top)) return top;
      this.pop();
    }
    return undefined;
  }

  /** Drops the entries let go once they are over a quarter of the heap: amortized O(log n) per entry. */
  compact(live: number): void {
    if (this.items.length > live + (live >> 2) + 64) this.rebuild();
  }

  private rebuild(): void {
    this.items = this.items.filter(this.holds).sort((a, b) => a.fetchedAt - b.fetchedAt);
  }

  private pop(): void {
    const items = this.items;
    const last = items.pop()!;
    if (items.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= items.length) break;
      const r = l + 1;
      const c = r < items.length && items[r]!.fetchedAt < items[l]!.fetchedAt ? r : l;
      if (items[c]!.fetchedAt >= last.fetchedAt) break;
      items[i] = items[c]!;
      i = c;
    }
    items[i] = last;
  }
}
