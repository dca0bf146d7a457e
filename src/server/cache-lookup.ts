/**
 * A scrape's lookup in the cache: a hit at once; a fill waited for, but answered 504 (or with a
 * stale entry that stale_if_error allows) shortly before the client's own scrape timeout. Only
 * responses that wait are tracked for shutdown: a hit never pays for it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Lookup, ScrapeCache, ScrapeTarget } from '../cache/scrape-cache.js';
import { ProxyError } from '../errors.js';

/** Time kept back from the client's scrape timeout so that our 504 arrives before it gives up. */
export function deadlineMs(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string') return undefined;
  const seconds = Number(header);
  if (!Number.isFinite(seconds) || seconds <= 0) return undefined;
  const ms = seconds * 1000;
  return Math.max(1, ms - Math.min(500, ms / 10));
}

export class CacheLookup {
  /** `waiting`: responses still waiting for an upstream; shutdown answers them 503. */
  constructor(
    private readonly cache: ScrapeCache,
    private readonly waiting: Set<ServerResponse> | undefined,
  ) {}

  /** What the cache's lookup of `target` gave: at once, or once its fill is done (within the scrape deadline). */
  settle(req: IncomingMessage, res: ServerResponse, target: ScrapeTarget, found: Lookup | Promise<Lookup>): Lookup | Promise<Lookup> {
    if (!(found instanceof Promise)) return found;
    this.track(res);
    return this.waitForFill(req, found, target);
  }

  /** Counts a response among those waiting for an upstream until it closes. */
  track(res: ServerResponse): void {
    const waiting = this.waiting;
    if (!waiting) return;
    waiting.add(res);
    res.once('close', () => waiting.delete(res));
  }

  /** Waits for a fill, but answers 504 shortly before the client's own scrape timeout. */
  private waitForFill(req: IncomingMessage, pending: Promise<Lookup>, target: ScrapeTarget): Promise<Lookup> {
    const route = target.route;
    const timeout = req.headers['x-prometheus-scrape-timeout-seconds'];
    const ms = deadlineMs(timeout);
    if (ms === undefined || ms >= route.timeoutMs) return pending;
    pending.catch(() => undefined); // the fill runs on; its failure is logged where it happens
    return new Promise<Lookup>((resolve, reject) => {
      const timer = setTimeout(() => {
        const stale = this.cache.staleOnError(target);
        if (stale) return resolve(stale);
        reject(
          new ProxyError(
            'SCRAPE_DEADLINE',
            `route ${route.name}: upstream did not answer within the scrape timeout (${timeout}s); the fetch goes on and the next scrape gets its result`,
          ),
        );
      }, ms);
      pending.then(resolve, reject).finally(() => clearTimeout(timer));
    });
  }
}
