/** A ScrapeCache as one process builds it (memory level, upstream filler), on a clock of the test's. */
import type { Logger } from 'pino';
import { MemoryStore } from '../../src/cache/memory-store.js';
import { ScrapeCache } from '../../src/cache/scrape-cache.js';
import type { Metrics } from '../../src/metrics.js';
import { UpstreamFiller } from '../../src/upstream/upstream-filler.js';
import { clockWith } from './test-clock.js';

export function newScrapeCache(maxBytes: number, metrics: Metrics | undefined, log: Logger, now: () => number = Date.now): ScrapeCache {
  return new ScrapeCache({
    memory: new MemoryStore(maxBytes, {}, now),
    filler: new UpstreamFiller(metrics, log, now),
    ...(metrics ? { metrics } : {}),
    log,
    clock: clockWith(now),
  });
}
