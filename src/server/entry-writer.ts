/**
 * Writing what a lookup found: the entry, or its rendering for this client, in a coding the
 * client takes, with Age and Cache-Status; or the failure of its fill as the proxy's own answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ageSeconds, ttlSeconds } from '../cache/freshness.js';
import type { Answer } from '../cache/negotiate.js';
import { acceptsCoding, chooseCoding, type Coding } from '../cache/representation.js';
import { FillFailed, type Lookup, type ScrapeCache } from '../cache/scrape-cache.js';
import { renderingKey, type StoredResponse, type Variant } from '../cache/stored-response.js';
import type { Route } from '../config/types.js';
import { ProxyError } from '../errors.js';
import { ExpfmtError } from '../expfmt/index.js';
import type { Metrics } from '../metrics.js';
import { writeError, writeHit, writeVariant } from './respond.js';

/** Rendering keys of source plans, made once per plan object (plans are memoised per Accept). */
const renderingKeys = new WeakMap<Answer, string>();
function keyOfRendering(wire: Answer): string {
  let key = renderingKeys.get(wire);
  if (key === undefined) renderingKeys.set(wire, (key = renderingKey(wire)));
  return key;
}

/** The Content-Encoding an unstored answer carries as the upstream sent it (br, zstd), if any. */
function passedCoding(entry: StoredResponse): string | undefined {
  const head = entry.variant(entry.coding)!.head;
  for (let i = 0; i < head.length; i += 2) if (head[i]!.toLowerCase() === 'content-encoding') return head[i + 1];
  return undefined;
}

function refusesPassedCoding(req: IncomingMessage, entry: StoredResponse): boolean {
  const coding = passedCoding(entry);
  return coding !== undefined && !acceptsCoding(req.headers['accept-encoding'], coding);
}

function cacheStatus(lookup: Lookup, now: number): string {
  const e = lookup.entry;
  switch (lookup.cache) {
    case 'hit':
      return `scrapecache; hit; ttl=${ttlSeconds(e, now)}`;
    case 'stale':
      return lookup.fwdStatus === undefined
        ? `scrapecache; hit; fwd=stale; ttl=${ttlSeconds(e, now)}`
        : `scrapecache; hit; fwd=stale; fwd-status=${lookup.fwdStatus}; ttl=${ttlSeconds(e, now)}`;
    default: {
      const collapsed = lookup.cache === 'collapsed' ? '; collapsed' : '';
      return lookup.stored ? `scrapecache; fwd=miss; stored${collapsed}` : `scrapecache; fwd=miss; fwd-status=${e.status}${collapsed}`;
    }
  }
}

/** Why an entry cannot be written for this client: a body that does not decode or render. */
function unservable(route: Route, err: unknown): ProxyError {
  if (err instanceof ExpfmtError) {
    return new ProxyError('UPSTREAM_BAD_RESPONSE', `route ${route.name}: the upstream's protobuf answer cannot be rendered for this client: ${err.message}`, { cause: err });
  }
  return (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
    ? new ProxyError('UPSTREAM_BODY_TOO_LARGE', `route ${route.name}: upstream gzip body decodes to more than max_body_bytes (${route.maxBodyBytes})`, { cause: err })
    : new ProxyError('UPSTREAM_BAD_RESPONSE', `route ${route.name}: upstream sent a corrupt gzip body`, { cause: err });
}

export class EntryWriter {
  constructor(
    private readonly cache: ScrapeCache,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /**
   * Writes an entry, or (wire given) its rendering of that answer, in a coding the client takes.
   * A rendering is made once per entry, by the first client that needs it.
   */
  write(req: IncomingMessage, res: ServerResponse, lookup: Lookup, route: Route, wire?: Answer): void | Promise<void> {
    const entry = lookup.entry;
    const coding = chooseCoding(req.headers['accept-encoding'], entry.coding);
    this.metrics.route(route.name)[lookup.cache]++;
    if (!lookup.stored && refusesPassedCoding(req, entry)) {
      return writeError(res, new ProxyError('UPSTREAM_BAD_RESPONSE', `route ${route.name}: upstream sent a content coding (${passedCoding(entry)}) this client does not accept`));
    }
    if (coding === null) {
      return writeError(res, new ProxyError('NOT_ACCEPTABLE', `route ${route.name}: the client accepts neither gzip nor identity`), { fwd: 'none' });
    }
    const rendering = wire !== undefined && !entry.isItself(wire) ? wire : undefined;
    const variant: Variant | undefined = rendering ? entry.rendered(keyOfRendering(rendering), coding) : entry.variant(coding);
    if (variant === undefined) return this.prepareAndSend(req, res, lookup, route, coding, rendering);
    this.send(req, res, lookup, variant);
  }

  private send(req: IncomingMessage, res: ServerResponse, lookup: Lookup, variant: Variant): void {
    const entry = lookup.entry;
    const now = this.now();
    if (lookup.cache === 'hit') writeHit(res, entry.status, variant, ageSeconds(entry, now), ttlSeconds(entry, now), req.method === 'HEAD');
    else writeVariant(res, entry.status, variant, lookup.stored ? ageSeconds(entry, now) : 0, cacheStatus(lookup, now) + (variant.detail ?? ''), req.method === 'HEAD');
  }

  /** The failure of a lookup's fill as the proxy's own answer (502, 504); anything else is a bug of ours. */
  fail(req: IncomingMessage, res: ServerResponse, route: Route, err: unknown): void {
    const cause = err instanceof FillFailed ? err.error : err;
    if (!(cause instanceof ProxyError)) throw cause; // a bug of ours: app.ts answers 500 and logs it
    this.metrics.route(route.name)[err instanceof FillFailed && err.collapsed ? 'collapsed' : 'miss']++;
    if (cause.code === 'SCRAPE_DEADLINE') this.log.info({ route: route.name, url: req.url }, cause.message);
    writeError(res, cause, { fwd: 'miss', head: req.method === 'HEAD' });
  }

  private async prepareAndSend(req: IncomingMessage, res: ServerResponse, lookup: Lookup, route: Route, coding: Coding, rendering: Answer | undefined): Promise<void> {
    const variant = await this.prepare(res, lookup, route, coding, rendering);
    if (variant !== undefined) this.send(req, res, lookup, variant);
  }

  /** Converts or renders the variant a client needs; on failure answers 502 and gives undefined. */
  private async prepare(res: ServerResponse, lookup: Lookup, route: Route, coding: Coding, rendering: Answer | undefined): Promise<Variant | undefined> {
    const entry = lookup.entry;
    let variant: Variant;
    try {
      variant = rendering ? await entry.render(rendering, coding, route.maxBodyBytes) : await entry.convert(coding, route.maxBodyBytes);
    } catch (err) {
      const refusal = unservable(route, err);
      // A body that cannot be decoded serves nobody; one that cannot be written in one format may serve others.
      if (!rendering || !(err instanceof ExpfmtError)) this.cache.discard(entry);
      this.log.warn({ route: route.name, path: entry.path, rendering: rendering && keyOfRendering(rendering), err: (err as Error).message }, refusal.message);
      writeError(res, refusal);
      return undefined;
    }
    if (lookup.stored) this.cache.resized(entry);
    return variant;
  }
}
