/**
 * What the other caches tell this one on the bus (issue 9): a record stored (taken here, or
 * read from the shared level on a notice), a fill failed (its back-off is this cache's too),
 * entries invalidated. A `stored` or `failed` event also answers the fills waiting for it.
 */
import type { Route } from '../config/types.js';
import { isPrefetched } from './cache-policy.js';
import type { CacheTiers } from './cache-tiers.js';
import type { CacheEvent } from './event-bus.js';
import type { FailureBook } from './failure-book.js';
import type { ScrapeTarget } from './filler.js';
import type { Invalidation } from './invalidation.js';
import { routeOfKey } from './key.js';
import type { PeerFill } from './peer-fill.js';
import type { Prefetcher } from './prefetcher.js';
import type { StoredResponse } from './stored-response.js';

export interface CacheEventParts {
  tiers: CacheTiers;
  failures: FailureBook;
  invalidation: Invalidation;
  peer: PeerFill;
  prefetcher: Prefetcher;
  /** The current routes by name. */
  routes: () => ReadonlyMap<string, Route>;
}

export class CacheEvents {
  private closed = false;

  constructor(private readonly parts: CacheEventParts) {}

  /** Applies another cache's event; for an invalidation, resolves once it is applied (the last slice dropped). */
  heard(event: CacheEvent): Promise<unknown> | undefined {
    switch (event.type) {
      case 'stored':
        this.heardStored(event);
        break;
      case 'failed':
        this.parts.failures.learn(event.key, event.retryAt, event.fwdStatus, this.parts.tiers.memory.peek(event.key)?.fetchedAt);
        break;
      case 'invalidated':
        // Soft: keep serving the copy; the next scrape's fill joins the publisher's refetch.
        return this.parts.invalidation.heard(event.selection, event.soft === true);
    }
    this.parts.peer.heard(event);
    return undefined;
  }

  close(): void {
    this.closed = true;
  }

  /** Never a record of a route that fetches differently here (a rolling change of its upstream, headers or identity). */
  private heardStored(event: Extract<CacheEvent, { type: 'stored' }>): void {
    const route = this.parts.routes().get(event.record?.route ?? routeOfKey(event.key));
    if (!route || route.recordFingerprint !== (event.record?.fingerprint ?? event.fingerprint)) return;
    if (event.record) this.adopted(this.parts.tiers.adopt(event.record));
    else if (event.fetchedAt !== undefined) this.readNotice(event.key, route, event.fetchedAt);
  }

  /** A record adopted from another cache: a prefetched key is kept fresh here too. */
  private adopted(entry: StoredResponse | undefined): void {
    const target = entry && this.targetOf(entry);
    if (entry && target && isPrefetched(target)) this.parts.prefetcher.schedule(target, entry);
  }

  /**
   * Another replica stored a newer record of a key (a notice: SPEC 2.2). A copy held here is
   * replaced by it, read from the second level; a key not held here is read there on its next
   * scrape. An invalidation while the read is out wins (see CacheTiers.fromSecond).
   */
  private readNotice(key: string, route: Route, fetchedAt: number): void {
    const held = this.parts.tiers.memory.peek(key);
    if (!held || held.fetchedAt >= fetchedAt || this.closed) return;
    const target: ScrapeTarget = { route, path: held.path, query: held.query, representation: held.representation, accept: held.accept };
    this.parts.tiers.fromSecond(key, target, { previous: held }).then(
      (entry) => this.adopted(entry),
      () => undefined,
    );
  }

  private targetOf(entry: StoredResponse): ScrapeTarget | undefined {
    const route = this.parts.routes().get(entry.route);
    return route && { route, path: entry.path, query: entry.query, representation: entry.representation, accept: entry.accept };
  }
}
