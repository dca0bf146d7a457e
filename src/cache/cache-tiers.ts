/**
 * The cache's levels seen as one store: memory, the optional second level (disk or Redis) and
 * the bus that tells the other caches what was stored (SPEC 2.1, 2.2). Writes go to every level
 * and out on the bus; reads come from memory, then from below, never a record an invalidation
 * has removed meanwhile nor one of a route that fetches differently now. Warm load at start-up.
 */
import type { Logger } from 'pino';
import type { Route } from '../config/types.js';
import type { EventBus } from './event-bus.js';
import type { FailureBook } from './failure-book.js';
import type { ScrapeTarget } from './filler.js';
import { canServeWhileSoftRefetching, isDead, isFresh } from './freshness.js';
import { answeredKeys, type AnsweredKeys } from './answered-keys.js';
import { keyOf } from './key.js';
import type { Representation } from './representation.js';
import { assertStore, selects, type EntrySelection, type LevelStatus, type MemoryLevel, type Store } from './store.js';
import type { StoredRecord } from './stored-record.js';
import { StoredResponse } from './stored-response.js';

export interface TierParts {
  memory: MemoryLevel;
  second: Store | undefined;
  bus: EventBus | undefined;
  /** Replicas share the second level: the bus tells of a record once it is written there. */
  shared: boolean;
  failures: FailureBook;
  /** Where misses were answered under another key (see AnsweredKeys). */
  answered: AnsweredKeys;
  log: Logger;
  now: () => number;
}

/** What a read from the second level is for. */
export interface ReadBelow {
  /** The entry a refresh replaces: only a newer record is one. */
  previous?: StoredResponse | undefined;
  /** A fill with nothing to serve takes a soft-invalidated record too (served stale while refetched). */
  soft?: boolean;
}

export class CacheTiers {
  readonly memory: MemoryLevel;
  readonly second: Store | undefined;
  private readonly bus: EventBus | undefined;
  private readonly shared: boolean;
  private readonly failures: FailureBook;
  private readonly answered: AnsweredKeys;
  private readonly log: Logger;
  private readonly now: () => number;
  /**
   * Counts invalidations: a read from the second level that an invalidation overtook is not
   * taken into memory, since it may hold a body the invalidation removed.
   */
  private invalidations = 0;
  /** Invalidations whose second-level part is still running: reads below skip what they select. */
  private readonly clearing = new Set<EntrySelection>();
  private closed = false;

  constructor(parts: TierParts) {
    // Where stores plug in (undici's assertCacheStore): a level missing a method fails at start-up, not on the first miss.
    assertStore(parts.memory, 'memory level');
    if (parts.second) assertStore(parts.second, 'second level');
    this.memory = parts.memory;
    this.second = parts.second;
    this.bus = parts.bus;
    this.shared = parts.shared;
    this.failures = parts.failures;
    this.answered = parts.answered;
    this.log = parts.log;
    this.now = parts.now;
  }

  /**
   * The live entry held in memory for a key (marking it recently used), or a fresh one held under
   * a key the upstream answered a miss of this key and Accept with: a process that has not
   * learned the upstream yet (a new worker, another replica) asks as the first did.
   */
  lookup(key: string, accept: string | undefined, now: number): StoredResponse | undefined {
    const own = this.memory.lookup(key, now);
    if (own) return own;
    for (const other of this.answered.candidates(key, accept)) {
      const entry = this.memory.lookup(other, now);
      if (entry && isFresh(entry, now)) return entry;
    }
    return undefined;
  }

  /**
   * A fresh entry held for one of these representations of the target's key, here or in the
   * second level: what another process stored as the upstream's answer to a client like this
   * one, before this process knows whether the upstream speaks protobuf.
   */
  async heldAnswer(target: ScrapeTarget, representations: readonly Representation[]): Promise<StoredResponse | undefined> {
    for (const representation of representations) {
      const key = keyOf({ ...target, representation });
      const held = this.memory.peek(key);
      if (held && isFresh(held, this.now())) return held;
      const below = await this.fromSecond(key, { ...target, representation });
      if (below) return below;
    }
    return undefined;
  }

  /** A fresh entry held in memory under a key, newer than `previous` if one is given. */
  freshHeld(key: string, previous: StoredResponse | undefined): StoredResponse | undefined {
    const held = this.memory.peek(key);
    return held && isFresh(held, this.now()) && (!previous || held.fetchedAt > previous.fetchedAt) ? held : undefined;
  }

  /**
   * Puts a record this cache filled in memory and below, and tells the others. Returns the
   * entry now held: this one, or the same record already taken from an event (a cluster
   * worker hears the primary's `stored` before its answer). Undefined when nothing was stored.
   * With `release` (a shared lease), the others hear of it once the write below is done and
   * only if the lease was still this fill's: an invalidation that deleted it overtook the fill,
   * which then keeps nothing (Facebook's memcache leases).
   */
  store(entry: StoredResponse, release?: () => Promise<boolean>, asked = entry.key): StoredResponse | undefined {
    if (this.closed) return undefined;
    const held = this.memory.peek(entry.key);
    if (held && held.fetchedAt === entry.fetchedAt && held.fingerprint === entry.fingerprint) return held;
    if (held && held.fetchedAt > entry.fetchedAt) return undefined;
    if (!this.memory.set(entry)) return undefined;
    this.failures.clear(entry.key);
    const written = this.second?.set(entry);
    const event = { type: 'stored' as const, key: entry.key, record: entry, ...(asked !== entry.key ? { asked } : {}) };
    if (!release) {
      // Replicas read the record from the shared level on the notice: it is told once written there.
      if (this.shared && written instanceof Promise) void written.then(() => this.bus?.publish(event));
      else void this.bus?.publish(event);
      return entry;
    }
    void Promise.resolve(written)
      .then(release)
      .then((kept) => {
        if (kept) return this.bus?.publish(event);
        this.memory.deleteIf(entry);
        return undefined;
      });
    return entry;
  }

  /** Takes a record another cache stored, unless this one holds a newer copy. */
  adopt(record: StoredRecord): StoredResponse | undefined {
    const held = this.memory.peek(record.key);
    if (held && held.fetchedAt >= record.fetchedAt) return held;
    if (this.closed || isDead(record, this.now())) return undefined;
    const entry = StoredResponse.fromRecord(record);
    if (!this.memory.set(entry)) return undefined;
    this.failures.clear(record.key);
    return entry;
  }

  /**
   * A live record of the second level for this target, taken into memory, or one stored under
   * what another replica's fill of the key was answered with (see answeredKeys).
   */
  async fromSecond(key: string, target: ScrapeTarget, read: ReadBelow = {}): Promise<StoredResponse | undefined> {
    if (!this.second) return undefined;
    for (const at of [key, ...answeredKeys(key, target.accept)]) {
      const held = await this.fromSecondAt(at, target, read);
      if (held) return held;
    }
    return undefined;
  }

  private async fromSecondAt(key: string, target: ScrapeTarget, { previous, soft = false }: ReadBelow): Promise<StoredResponse | undefined> {
    const epoch = this.invalidations;
    const record = await this.second!.get(key);
    if (epoch !== this.invalidations || this.beingCleared(target)) return undefined;
    if (!record || record.fingerprint !== target.route.recordFingerprint) return undefined;
    // A soft-invalidated record is taken by a fill that has nothing to serve (soft): it answers
    // stale while its refetch runs, no scrape waits for the upstream.
    const now = this.now();
    if (!isFresh(record, now) && !(soft && !previous && canServeWhileSoftRefetching(record, now))) return undefined;
    // A refresh (prefetch, stale-while-revalidate) wants a newer copy than the one it refreshes,
    // which may well be the fresh record below: that one is no refresh.
    if (previous && record.fetchedAt <= previous.fetchedAt) return undefined;
    return this.adopt(record);
  }

  private beingCleared(target: ScrapeTarget): boolean {
    for (const selection of this.clearing) if (selects(selection, { route: target.route.name, path: target.path, query: target.query })) return true;
    return false;
  }

  /** An invalidation began: reads from below that started before it keep nothing. */
  invalidating(): void {
    this.invalidations++;
  }

  /** Runs `clear` (an invalidation) while nothing the selection names is read back from below. */
  async whileClearing<T>(selection: EntrySelection, clear: () => Promise<T>): Promise<T> {
    this.clearing.add(selection);
    try {
      return await clear();
    } finally {
      this.clearing.delete(selection);
    }
  }

  /** Removes an entry found unservable (a corrupt gzip body), here and below. */
  discard(entry: StoredResponse): void {
    if (this.memory.deleteIf(entry)) void this.second?.delete(entry.key);
  }

  /**
   * Fills the memory level from the second level (start-up, SPEC 2.1): records of routes that
   * exist and still fetch the same way. The others are removed from the second level.
   */
  async load(routes: readonly Route[]): Promise<{ loaded: number; dropped: number }> {
    const byName = new Map(routes.map((r) => [r.name, r]));
    let loaded = 0;
    let dropped = 0;
    if (!this.second?.records) return { loaded, dropped };
    for await (const record of this.second.records()) {
      const why = whyDropped(byName.get(record.route), record);
      if (why !== undefined) {
        dropped++;
        this.log.info({ route: record.route, path: record.path, query: record.query, representation: record.representation, store: this.second.name }, `stored entry dropped: ${why}`);
        await this.second.delete(record.key);
        continue;
      }
      const held = this.memory.peek(record.key);
      if (held && held.fetchedAt >= record.fetchedAt) continue;
      if (this.memory.set(record)) loaded++;
    }
    return { loaded, dropped };
  }

  /** How each level is doing: memory, then the second level (the status page). */
  async levels(): Promise<LevelStatus[]> {
    const second = this.second?.status ? await this.second.status() : undefined;
    return second ? [this.memory.status(), second] : [this.memory.status()];
  }

  /** From now on nothing is stored or adopted (the cache is closing). */
  stop(): void {
    this.closed = true;
  }

  async close(): Promise<void> {
    this.stop();
    this.memory.close();
    await this.second?.close();
  }
}

function whyDropped(route: Route | undefined, record: StoredRecord): string | undefined {
  if (!route) return 'its route is gone';
  if (!route.cache) return 'its route is pass-through now';
  if (route.recordFingerprint !== record.fingerprint) return 'its route fetches differently now';
  return undefined;
}
