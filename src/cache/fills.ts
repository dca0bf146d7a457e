/**
 * One fill of a key (SPEC 3.3): from the second level, or by the lease holder elsewhere, or by
 * this cache's filler. Fills that outlive their clients run on and are stored; a failed refresh
 * never touches the good entry it was refreshing, but backs the key off. One `upstream fetch`
 * log line per fetch, with whether it was stored.
 */
import type { Logger } from 'pino';
import type { ProxyError } from '../errors.js';
import { asAnswered, type AnsweredKeys } from './answered-keys.js';
import { isPrefetched } from './cache-policy.js';
import type { CacheTiers } from './cache-tiers.js';
import type { EventBus } from './event-bus.js';
import type { FailureBook } from './failure-book.js';
import type { Filler, FillOutcome, ScrapeTarget } from './filler.js';
import { keyOf } from './key.js';
import type { PeerFill } from './peer-fill.js';
import type { Prefetcher } from './prefetcher.js';
import type { FillResult, Flight, SingleFlight } from './single-flight.js';
import { renderingKey, StoredResponse } from './stored-response.js';

export interface FillParts {
  flights: SingleFlight;
  peer: PeerFill;
  tiers: CacheTiers;
  failures: FailureBook;
  prefetcher: Prefetcher;
  answered: AnsweredKeys;
  filler: Filler;
  bus: EventBus | undefined;
  log: Logger;
}

export class Fills {
  /** Told of every 200 a fill brings, whoever waits for it (see ScrapeCache.onAnswer). */
  observer: ((target: ScrapeTarget, entry: StoredResponse) => void) | undefined;
  private stopped = false;

  constructor(private readonly parts: FillParts) {}

  /** Closed: no new background fill starts. */
  get closed(): boolean {
    return this.stopped;
  }

  /** A new fill of the key (new joiners join it rather than one in flight). */
  fill(key: string, target: ScrapeTarget, previous: StoredResponse | undefined): Promise<FillResult> {
    return this.parts.flights.start(key, target, (flight) =>
      this.fillOnce(key, flight, previous).then((result) => {
        if (result.entry.status === 200) this.observer?.(target, result.entry);
        // A copy another replica fetched is kept fresh here too: whoever's timer fires first refreshes it for all.
        if (result.via && result.stored && isPrefetched(target)) this.parts.prefetcher.schedule(target, result.entry);
        return result;
      }),
    );
  }

  /** The fill in flight for the key, or a new one. */
  joinOrFill(key: string, target: ScrapeTarget, previous: StoredResponse | undefined): { promise: Promise<FillResult>; joined: boolean } {
    const joined = this.parts.flights.joinable(key);
    return joined ? { promise: joined, joined: true } : { promise: this.fill(key, target, previous), joined: false };
  }

  /** A refresh nobody waits for (stale-while-revalidate, prefetch). */
  background(target: ScrapeTarget, entry: StoredResponse | undefined): void {
    const key = keyOf(target);
    if (this.parts.flights.has(key) || this.stopped) return;
    this.fill(key, target, entry).catch(() => undefined);
  }

  close(): void {
    this.stopped = true;
  }

  private async fillOnce(key: string, flight: Flight, previous: StoredResponse | undefined): Promise<FillResult> {
    const { tiers, peer, filler } = this.parts;
    const { target } = flight;
    const below = await tiers.fromSecond(key, target, { previous, soft: true });
    if (below) return { entry: below, stored: true, via: 'held' };
    const fetch = await peer.acquire(key, flight, previous);
    if ('entry' in fetch) return fetch;
    const { token } = fetch;
    if (token !== undefined) flight.token = token;
    const release = token === undefined ? undefined : () => peer.release(key, token);
    let outcome: FillOutcome;
    try {
      outcome = await filler.fill(target, key);
    } catch (err) {
      void release?.();
      this.failed(target, key, previous, (err as ProxyError).status);
      throw err;
    }
    return this.keep(key, flight, previous, outcome, release);
  }

  /** Stores what the fetch brought (under the key of what the upstream answered), logs it, and plans the next refresh. */
  private keep(key: string, flight: Flight, previous: StoredResponse | undefined, outcome: FillOutcome, release: (() => Promise<boolean>) | undefined): FillResult {
    const { tiers, answered } = this.parts;
    const { target } = flight;
    const answer = StoredResponse.fromRecord(asAnswered(outcome.record));
    if (answer.key !== key) answered.remember(key, target.accept, answer.key);
    // The entry this one replaces, whose renderings are made again for the new body right away.
    const replaced = tiers.memory.peek(answer.key) ?? (previous?.key === answer.key ? previous : undefined);
    const kept = outcome.storable && !flight.superseded ? tiers.store(answer, release, key) : undefined;
    if (kept === undefined) void release?.();
    const entry = kept ?? answer;
    const stored = kept !== undefined;
    const renders = stored && entry === answer && replaced?.isSource && entry.isSource ? this.rerender(entry, replaced, target.route.maxBodyBytes) : [];
    if (outcome.fetchedMs !== undefined) this.logFetch(target, entry, stored, renders, outcome.fetchedMs);
    if (stored) {
      if (isPrefetched(target)) this.parts.prefetcher.schedule(target, entry);
    } else if (entry.status >= 500) {
      this.failed(target, key, previous, entry.status);
    }
    return outcome.via ? { entry, stored, via: outcome.via } : { entry, stored };
  }

  /** A fetch failed: the entry it refreshed backs off (here and, told on the bus, elsewhere); prefetch tries again. */
  private failed(target: ScrapeTarget, key: string, previous: StoredResponse | undefined, fwdStatus: number | string): void {
    if (previous && this.parts.tiers.memory.peek(key) === previous) {
      const { retryAt } = this.parts.failures.failed(key, previous, fwdStatus);
      void this.parts.bus?.publish({ type: 'failed', key, fwdStatus, retryAt });
    }
    // A prefetch route keeps trying in the background, backing off, so scrapes need not.
    if (isPrefetched(target) && !this.stopped) this.parts.prefetcher.failed(target, key);
  }

  /**
   * Makes for a refreshed protobuf entry the renderings its predecessor held, in the codings it
   * held them, so that the first scrapes after a refresh are hits that wait for nothing.
   */
  private rerender(entry: StoredResponse, replaced: StoredResponse, maxBytes: number): string[] {
    const made: Promise<unknown>[] = [];
    for (const answer of replaced.renderedAnswers()) {
      const key = renderingKey(answer);
      for (const coding of ['identity', 'gzip'] as const) {
        if (replaced.rendered(key, coding)) made.push(entry.render(answer, coding, maxBytes).catch(() => undefined));
      }
    }
    const { memory } = this.parts.tiers;
    if (made.length > 0) void Promise.all(made).then(() => memory.peek(entry.key) === entry && memory.resize(entry));
    return replaced.renderingKeys();
  }

  private logFetch(target: ScrapeTarget, entry: StoredResponse, stored: boolean, renders: string[], fetchedMs: number): void {
    // Not built at all below info: a fill at level warn leaves no garbage for a line nobody reads.
    if (!this.parts.log.isLevelEnabled('info')) return;
    this.parts.log.info(
      {
        route: target.route.name,
        path: target.path,
        query: target.query,
        representation: entry.representation,
        ...(entry.representation !== target.representation ? { asked: target.representation } : {}),
        accept: target.accept,
        format: entry.status === 200 ? entry.contentType : undefined,
        ...(entry.isSource ? { renderings: renders } : {}),
        status: entry.status,
        durationMs: Math.round(fetchedMs),
        bytes: entry.body.length,
        stored,
      },
      'upstream fetch',
    );
  }
}
