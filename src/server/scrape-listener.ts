/**
 * The scrape listener (SPEC 3): route, key, cache, response. Hits are answered synchronously
 * from bytes prepared when the entry was stored.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ageSeconds, ttlSeconds } from '../cache/freshness.js';
import { canonicalQuery, QueryError, scrapeKey } from '../cache/key.js';
import type { Answer } from '../cache/negotiate.js';
import { AcceptBudget, acceptsCoding, chooseCoding, exactRepresentation, MAX_EXACT_ACCEPTS_PER_KEY } from '../cache/representation.js';
import { renderingKey, type StoredResponse, type Variant } from '../cache/stored-response.js';
import { answerCandidates, learn, planFor, probeAccept, SOURCE, UpstreamProfiles, type Plan, type UpstreamProfile } from '../cache/upstream-profile.js';
import { longestLifetimeMs } from '../cache/route-windows.js';
import { FillFailed, type Lookup, type ScrapeCache, type ScrapeTarget } from '../cache/scrape-cache.js';
import type { Route } from '../config/types.js';
import { ProxyError } from '../errors.js';
import { ExpfmtError } from '../expfmt/index.js';
import type { Metrics } from '../metrics.js';
import { serveLandingPage, type AdminWhere } from '../pages/landing-page.js';
import type { PassThrough } from '../upstream/pass-through.js';
import { writeError, writeHit, writeText, writeVariant } from './respond.js';
import type { RouteTable } from './route-table.js';

const ALLOW = { Allow: 'GET, HEAD' };
/** Whether a plan is answered by this entry. */
function servedBy(plan: Plan, entry: StoredResponse): boolean {
  return plan.via === 'source' ? entry.isSource : plan.via === 'answer' && entry.representation === plan.representation;
}

/** Rendering keys of source plans, made once per plan object (plans are memoised per Accept). */
const renderingKeys = new WeakMap<Answer, string>();
function keyOfRendering(wire: Answer): string {
  let key = renderingKeys.get(wire);
  if (key === undefined) renderingKeys.set(wire, (key = renderingKey(wire)));
  return key;
}
const VARY = { Vary: 'Accept' };
/** Every answer has a Cache-Status (issue 17 #11): a 406 is the cache's own, nothing forwarded. */
const NOT_ACCEPTABLE = { 'Cache-Status': 'scrapecache; detail=not-acceptable' };
const VARY_NOT_ACCEPTABLE = { ...VARY, ...NOT_ACCEPTABLE };

/** Where the scrape listener answers with the proxy's own metrics when no route serves the path. */
export const SELF_METRICS_PATH = '/metrics';

export interface SelfMetricsText {
  contentType: string;
  text: string;
}

async function serveSelfMetrics(req: IncomingMessage, res: ServerResponse, selfMetrics: () => Promise<SelfMetricsText>): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    writeText(res, 405, `${SELF_METRICS_PATH} (the proxy's own metrics) answers GET and HEAD only`, ALLOW);
    return;
  }
  if (hasBody(req)) {
    writeText(res, 400, `${SELF_METRICS_PATH}: a GET or HEAD request must not carry a body`, { Connection: 'close' });
    return;
  }
  let metrics: SelfMetricsText;
  try {
    metrics = await selfMetrics();
  } catch (err) {
    writeText(res, 503, `the proxy's own metrics are not available: ${(err as Error).message}`, {}, req.method === 'HEAD');
    return;
  }
  const body = Buffer.from(metrics.text);
  res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export interface ScrapeListenerDeps {
  table(): RouteTable;
  cache: ScrapeCache;
  /** Present once a config has a pass-through route (see app.ts). */
  passThrough(): PassThrough | undefined;
  metrics: Metrics;
  log: Logger;
  /** Responses still waiting for an upstream (fills, pass-through): shutdown answers them 503. */
  waiting?: Set<ServerResponse>;
  /** Where the admin listener is, for the landing page's link to the status page. */
  adminAddress?: () => AdminWhere | undefined;
  /** The proxy's own metrics (the whole group's, with workers) for `GET /metrics`; without, that path is 404. */
  selfMetrics?: () => Promise<SelfMetricsText>;
}

/** Time kept back from the client's scrape timeout so that our 504 arrives before it gives up. */
export function deadlineMs(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string') return undefined;
  const seconds = Number(header);
  if (!Number.isFinite(seconds) || seconds <= 0) return undefined;
  const ms = seconds * 1000;
  return Math.max(1, ms - Math.min(500, ms / 10));
}

/**
 * A path with a `.` or `..` segment, raw or percent-encoded, or a backslash (which URL parsers
 * read as `/`, turning `/\host` into another host) never reaches an upstream.
 */
export function hasDotSegment(path: string): boolean {
  if (path.includes('\\')) return true;
  if (!path.includes('.') && !path.includes('%')) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return true;
  }
  return /(^|\/)\.{1,2}(\/|$)/.test(decoded) || decoded.includes('\\') || decoded.includes('\0');
}

/** SPEC 3.1: a GET or HEAD with a body is refused, so nothing after the headers reaches an upstream. */
function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const length = h['content-length'];
  return length !== undefined && Number(length) !== 0;
}

/** The unread body makes the connection's framing untrustworthy: answer, then close it. */
function refuseBody(res: ServerResponse, route: string): void {
  writeText(res, 400, `route ${route}: a GET or HEAD request must not carry a body`, { Connection: 'close' });
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

export function createScrapeHandler(deps: ScrapeListenerDeps) {
  const { cache, metrics, log } = deps;

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

  /**
   * Writes an entry, or (wire given) its rendering of that answer, in a coding the client takes.
   * A rendering is made once per entry, by the first client that needs it.
   */
  async function serve(req: IncomingMessage, res: ServerResponse, lookup: Lookup, route: Route, wire?: Answer): Promise<void> {
    const entry = lookup.entry;
    const coding = chooseCoding(req.headers['accept-encoding'], entry.coding);
    metrics.route(route.name)[lookup.cache]++;
    if (!lookup.stored && refusesPassedCoding(req, entry)) {
      writeText(res, 502, `route ${route.name}: upstream sent a content coding (${passedCoding(entry)}) this client does not accept`);
      return;
    }
    if (coding === null) {
      writeText(res, 406, `route ${route.name}: the client accepts neither gzip nor identity`, NOT_ACCEPTABLE);
      return;
    }
    const rendering = wire !== undefined && !entry.isItself(wire) ? wire : undefined;
    let variant: Variant | undefined = rendering ? entry.rendered(keyOfRendering(rendering), coding) : entry.variant(coding);
    if (variant === undefined) {
      try {
        variant = rendering ? await entry.render(rendering, coding, route.maxBodyBytes) : await entry.convert(coding, route.maxBodyBytes);
      } catch (err) {
        const message = unservable(route, err);
        // A body that cannot be decoded serves nobody; one that cannot be written in one format may serve others.
        if (!rendering || !(err instanceof ExpfmtError)) cache.discard(entry);
        log.warn({ route: route.name, path: entry.path, rendering: rendering && keyOfRendering(rendering), err: (err as Error).message }, message);
        writeText(res, 502, message);
        return;
      }
      if (lookup.stored) cache.resized(entry);
    }
    const now = Date.now();
    if (lookup.cache === 'hit') writeHit(res, entry.status, variant, ageSeconds(entry, now), ttlSeconds(entry, now), req.method === 'HEAD');
    else writeVariant(res, entry.status, variant, lookup.stored ? ageSeconds(entry, now) : 0, cacheStatus(lookup, now) + (variant.detail ?? ''), req.method === 'HEAD');
  }

  function unservable(route: Route, err: unknown): string {
    if (err instanceof ExpfmtError) return `route ${route.name}: the upstream's protobuf answer cannot be rendered for this client: ${err.message}`;
    return (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
      ? `route ${route.name}: upstream gzip body decodes to more than max_body_bytes (${route.maxBodyBytes})`
      : `route ${route.name}: upstream sent a corrupt gzip body`;
  }

  function fail(req: IncomingMessage, res: ServerResponse, route: Route, err: unknown): void {
    const cause = err instanceof FillFailed ? err.error : err;
    if (!(cause instanceof ProxyError)) throw cause; // a bug of ours: app.ts answers 500 and logs it
    const e = cause;
    metrics.route(route.name)[err instanceof FillFailed && err.collapsed ? 'collapsed' : 'miss']++;
    if (e.code === 'SCRAPE_DEADLINE') log.info({ route: route.name, url: req.url }, e.message);
    writeError(res, e, { fwd: 'miss', head: req.method === 'HEAD' });
  }

  /** Waits for a fill, but answers 504 shortly before the client's own scrape timeout. */
  function waitForFill(req: IncomingMessage, pending: Promise<Lookup>, target: ScrapeTarget): Promise<Lookup> {
    const route = target.route;
    const ms = deadlineMs(req.headers['x-prometheus-scrape-timeout-seconds']);
    if (ms === undefined || ms >= route.timeoutMs) return pending;
    pending.catch(() => undefined); // the fill runs on; its failure is logged where it happens
    return new Promise<Lookup>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          const stale = cache.staleOnError(target);
          if (stale) return resolve(stale);
          reject(
            new ProxyError(
              'SCRAPE_DEADLINE',
              `route ${route.name}: upstream did not answer within the scrape timeout (${req.headers['x-prometheus-scrape-timeout-seconds']}s); the fetch goes on and the next scrape gets its result`,
            ),
          );
        },
        ms,
      );
      pending.then(resolve, reject).finally(() => clearTimeout(timer));
    });
  }

  const acceptBudget = new AcceptBudget();

  function admitExact(target: ScrapeTarget): boolean {
    const { route } = target;
    // The longest any key of the route may live (its own windows or an override's): a slot is
    // reused no earlier than its entry could be, and no query is parsed on a hit.
    const lifetimeMs = longestLifetimeMs(route);
    return acceptBudget.admit(scrapeKey(route.name, target.path, target.query), target.representation, lifetimeMs, Date.now());
  }

  /**
   * Past the cap of exact-Accept entries for a key: 406, never a new fetch. (Exact entries are
   * only for the protobuf text encodings, which no scraper asks for.)
   */
  function beyondAcceptCap(req: IncomingMessage, res: ServerResponse, target: ScrapeTarget): void {
    metrics.acceptOverCap.labels(target.route.name, 'not_acceptable').inc();
    writeText(
      res,
      406,
      `route ${target.route.name}: too many distinct Accept headers for this target (at most ${MAX_EXACT_ACCEPTS_PER_KEY} get an entry of their own)`,
      NOT_ACCEPTABLE,
      req.method === 'HEAD',
    );
  }

  const profiles = new UpstreamProfiles();
  /** A new profile learns first from the entries held for its route and path (a warm restart). */
  function seedProfile(fresh: UpstreamProfile, route: Route, path: string): void {
    // A few are enough (a probe route may hold thousands of targets, all the same exporter).
    for (const held of cache.entriesAt(route.name, path).slice(0, 16)) {
      if (held.status === 200) learn(fresh, held.accept, held.representation, held.contentType, held.fetchedAt, route.format);
    }
  }
  cache.onAnswer((target, entry) => {
    const profile = profiles.get(target.route, target.path, Date.now());
    learn(profile, entry.accept, target.representation, entry.contentType, Date.now(), target.route.format);
  });

  function targetOf(plan: Exclude<Plan, { via: 'refuse' }>, route: Route, path: string, query: string, accept: string | undefined): ScrapeTarget {
    switch (plan.via) {
      case 'source':
        return { route, path, query, representation: SOURCE, accept: plan.fillAccept };
      case 'answer':
        return { route, path, query, representation: plan.representation, accept: plan.fillAccept };
      case 'exact':
        return { route, path, query, representation: exactRepresentation(accept), accept };
    }
  }

  async function lookupTarget(req: IncomingMessage, res: ServerResponse, target: ScrapeTarget): Promise<Lookup> {
    const found = cache.lookup(target);
    if (!(found instanceof Promise)) return found;
    track(res);
    return waitForFill(req, found, target);
  }

  /** Only responses that wait are tracked: a hit never pays for it. */
  function track(res: ServerResponse): void {
    const waiting = deps.waiting;
    if (!waiting) return;
    waiting.add(res);
    res.once('close', () => waiting.delete(res));
  }

  return async function handleScrape(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '';
    if (url.charCodeAt(0) !== 47 /* / */) {
      writeText(res, 400, 'request target must be a path such as /metrics');
      return;
    }
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (hasDotSegment(path)) {
      writeText(res, 400, 'path must not contain . or .. segments');
      return;
    }
    const route = deps.table().match(path);
    if (route === undefined) {
      // The landing page: `/` exactly (a route may still claim it above), GET or HEAD.
      if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) return serveLandingPage(req, res, deps.table().routes, deps.adminAddress?.(), deps.selfMetrics !== undefined && deps.table().match(SELF_METRICS_PATH) === undefined);
      // The proxy's own metrics where Prometheus looks first, read only (a route may claim the path above).
      if (path === SELF_METRICS_PATH && deps.selfMetrics) return serveSelfMetrics(req, res, deps.selfMetrics);
      writeText(res, 404, 'no route for this path');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      writeText(res, 405, `route ${route.name} answers GET and HEAD only`, ALLOW);
      return;
    }
    if (hasBody(req)) {
      refuseBody(res, route.name);
      return;
    }
    if (!route.cache) {
      metrics.route(route.name).bypass++;
      track(res);
      deps.passThrough()!.forward(req, res, route, path, q === -1 ? '' : url.slice(q + 1));
      return;
    }
    let query: string;
    try {
      const canonical = canonicalQuery(q === -1 ? '' : url.slice(q + 1));
      query = canonical.query;
      if (route.queryKeys !== null) {
        const refused = canonical.params.find(([name]) => !route.queryKeys!.has(name));
        if (refused) {
          writeText(res, 400, `route ${route.name}: query parameter "${refused[0].slice(0, 64)}" is not in query_keys (${[...route.queryKeys].join(', ')})`);
          return;
        }
      }
    } catch (err) {
      if (!(err instanceof QueryError)) throw err;
      writeText(res, 400, `route ${route.name}: ${err.message}`);
      return;
    }
    const accept = req.headers.accept;
    const profile = profiles.get(route, path, Date.now(), seedProfile);
    let plan = planFor(accept, profile, route.format);
    if (plan.via === 'refuse') {
      writeText(res, 406, `route ${route.name} ${plan.reason}`, VARY_NOT_ACCEPTABLE, req.method === 'HEAD');
      return;
    }
    let target = targetOf(plan, route, path, query, accept);
    if (plan.via === 'exact' && !admitExact(target)) return beyondAcceptCap(req, res, target);
    if (plan.via === 'source' && profile.protobuf === 0) {
      // Not known here yet whether the upstream speaks protobuf (a new process, another
      // replica): what another one stored as the upstream's answer to such a client serves it.
      const held = await cache.heldAnswer(target, answerCandidates(accept));
      if (held) {
        learn(profile, held.accept, held.representation, held.contentType, Date.now(), route.format);
        plan = { via: 'answer', representation: held.representation, fillAccept: accept };
        target = targetOf(plan, route, path, query, accept);
      }
    }
    try {
      let found = await lookupTarget(req, res, target);
      let entry = found.entry;
      const unplanned = plan.via === 'source' ? !entry.isSource : plan.via === 'answer' && entry.representation !== plan.representation;
      if (entry.status === 200 && plan.via !== 'exact' && (found.cache !== 'hit' || unplanned)) {
        // A hit on another representation: what another process learned (see ScrapeCache.answeredFor).
        if (found.cache === 'hit') learn(profile, entry.accept, entry.representation, entry.contentType, Date.now(), route.format);
        // The fill taught the profile (see onAnswer above). Where the upstream answered otherwise
        // than planned (no protobuf, no OpenMetrics, another version), the corrected plan's
        // entry answers this client: this one when it is that entry, or when this client's own
        // Accept was what the upstream answered (first fills); else another fill.
        const replanned = planFor(accept, profile, route.format);
        if (replanned.via === 'refuse') {
          writeText(res, 406, `route ${route.name} ${replanned.reason}`, VARY_NOT_ACCEPTABLE, req.method === 'HEAD');
          return;
        }
        const ownAnswer = route.format === undefined && !entry.isSource && (entry.accept === accept || entry.accept === probeAccept(accept));
        if (servedBy(replanned, entry)) plan = replanned;
        else if (!ownAnswer) {
          plan = replanned;
          target = targetOf(plan, route, path, query, accept);
          if (plan.via === 'exact' && !admitExact(target)) return beyondAcceptCap(req, res, target);
          found = await lookupTarget(req, res, target);
          entry = found.entry;
        }
      }
      await serve(req, res, found, route, plan.via === 'source' && entry.isSource ? plan.wire : undefined);
    } catch (err) {
      fail(req, res, route, err);
    }
  };
}
