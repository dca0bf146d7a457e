/**
 * Single flight across replicas (SPEC 2.2): a fill takes the key's lease, or waits for whoever
 * holds it. The holder's result comes on the bus (`stored` or `failed`) or shows in the second
 * level, looked at again every PEER_POLL_MS, so that a holder that died costs one lease time and
 * then one fetch. A failure the holder reports is this fill's too: the holder's back-off is the
 * fleet's, and nobody else fetches before its retry time.
 */
import { ProxyError, upstreamAddress } from '../errors.js';
import type { CacheTiers } from './cache-tiers.js';
import type { CacheEvent } from './event-bus.js';
import type { FailureBook } from './failure-book.js';
import type { FillLease } from './fill-lease.js';
import type { ScrapeTarget } from './filler.js';
import { MAX_TIMER_MS } from './prefetcher.js';
import type { FillResult, Flight } from './single-flight.js';
import type { StoredResponse } from './stored-response.js';

/** Beyond the route's timeout, so that a lease outlives the fetch it guards. */
const LEASE_MARGIN_MS = 5000;
/** How often a fill waiting for another replica looks again (a missed event, a holder that died). */
export const PEER_POLL_MS = 500;

/** This fill fetches: under a lease `token` (to free once stored), or without one. */
export interface Fetch {
  token?: string;
}

export interface PeerFillParts {
  lease: FillLease | undefined;
  tiers: CacheTiers;
  failures: FailureBook;
  now: () => number;
}

export class PeerFill {
  private readonly lease: FillLease | undefined;
  private readonly tiers: CacheTiers;
  private readonly failures: FailureBook;
  private readonly now: () => number;
  /** Fills another cache holds the lease for: resolved by its `stored` or `failed` event. */
  private readonly waiting = new Map<string, Array<(event: CacheEvent | undefined) => void>>();
  private closed = false;

  constructor(parts: PeerFillParts) {
    this.lease = parts.lease;
    this.tiers = parts.tiers;
    this.failures = parts.failures;
    this.now = parts.now;
  }

  /**
   * Whether this fill fetches (a Fetch, holding the lease if there is one), or the result a peer
   * fetched meanwhile. Rejects with the peer's failure.
   */
  async acquire(key: string, flight: Flight, previous: StoredResponse | undefined): Promise<Fetch | FillResult> {
    if (!this.lease) return {};
    const { target } = flight;
    // The whole fetch and a margin: a holder that dies frees the key after that.
    const leaseMs = target.route.timeoutMs + LEASE_MARGIN_MS;
    const giveUpAt = this.now() + leaseMs + PEER_POLL_MS;
    for (;;) {
      const token = await this.lease.acquire(key, leaseMs);
      if (token !== undefined) {
        // The holder may have stored and released between the read before and this acquire.
        const meanwhile = await this.tiers.fromSecond(key, target, { previous });
        if (!meanwhile) return { token };
        void this.lease.release(key, token);
        return { entry: meanwhile, stored: true, via: 'joined' };
      }
      const peer = await this.wait(key, PEER_POLL_MS);
      const failure = peer?.type === 'failed' ? peer : this.failures.pending(key, previous);
      if (failure) throw peerFailed(target, failure.fwdStatus, failure.retryAt - this.now());
      const entry = await this.peerResult(key, target, previous, peer);
      if (entry) return { entry, stored: true, via: 'joined' };
      // The holder vanished and its lease outlived the wait: fetch here rather than fail the scrape.
      if (flight.superseded || this.closed || this.now() >= giveUpAt) return {};
    }
  }

  /** Frees a lease this cache holds; resolves to whether it was still this cache's. */
  release(key: string, token: string): Promise<boolean> {
    return Promise.resolve(this.lease?.release(key, token) ?? false);
  }

  /** A `stored` or `failed` event for a key: who waits for that key (or the key it was asked as) has its answer. */
  heard(event: Extract<CacheEvent, { key: string }>): void {
    for (const key of event.type === 'stored' && event.asked !== undefined ? [event.key, event.asked] : [event.key]) {
      const waiters = this.waiting.get(key);
      this.waiting.delete(key);
      for (const w of waiters ?? []) w(event);
    }
  }

  close(): void {
    this.closed = true;
    for (const waiters of this.waiting.values()) for (const w of waiters) w(undefined);
    this.waiting.clear();
  }

  /** What the holder stored, here from its event or below; possibly under what the upstream answered (SPEC 3.2). */
  private async peerResult(key: string, target: ScrapeTarget, previous: StoredResponse | undefined, peer: CacheEvent | undefined): Promise<StoredResponse | undefined> {
    const stored = peer?.type === 'stored' ? peer : undefined;
    const answeredKey = stored && stored.key !== key ? stored.key : undefined;
    return (
      (stored && this.tiers.freshHeld(stored.key, previous)) ||
      (answeredKey !== undefined ? await this.tiers.fromSecond(answeredKey, target, { previous }) : undefined) ||
      (await this.tiers.fromSecond(key, target, { previous }))
    );
  }

  private wait(key: string, timeoutMs: number): Promise<CacheEvent | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), Math.min(timeoutMs, MAX_TIMER_MS)).unref();
      const done = (event: CacheEvent | undefined) => {
        clearTimeout(timer);
        const list = this.waiting.get(key);
        const i = list?.indexOf(done) ?? -1;
        if (i >= 0) list!.splice(i, 1);
        if (list?.length === 0) this.waiting.delete(key);
        resolve(event);
      };
      const list = this.waiting.get(key) ?? [];
      list.push(done);
      this.waiting.set(key, list);
    });
  }
}

/** Another replica's fill failed: this one answers that failure rather than fetch again. */
function peerFailed(target: ScrapeTarget, fwdStatus: number | string, retryInMs: number): ProxyError {
  const code = fwdStatus === 504 || fwdStatus === 'timeout' ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNREACHABLE';
  return new ProxyError(code, `route ${target.route.name}: the upstream fetch from ${upstreamAddress(target.route.upstream)} failed (${fwdStatus}); next try in ${Math.max(1, Math.ceil(retryInMs / 1000))}s`);
}
