/**
 * The scrape listener (SPEC 3): route, key, cache, response. A hit waits for nothing (the cache
 * finds it without I/O) and is written from bytes prepared when the entry was stored.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Lookup, ScrapeCache, ScrapeTarget } from '../cache/scrape-cache.js';
import type { StoredResponse } from '../cache/stored-response.js';
import type { Answer } from '../cache/negotiate.js';
import { answerCandidates, planFor, type Plan, type UpstreamProfile, type UpstreamProfiles } from '../cache/upstream-profile.js';
import type { Route } from '../config/types.js';
import type { Metrics } from '../metrics.js';
import { serveLandingPage, type AdminWhere } from '../pages/landing-page.js';
import type { PassThrough } from '../upstream/pass-through.js';
import { CacheLookup } from './cache-lookup.js';
import { EntryWriter } from './entry-writer.js';
import { writeError } from './respond.js';
import type { RouteTable } from './route-table.js';
import { beyondAcceptCap, isOwnAnswer, notAcceptable, ScrapePlans, servedBy, targetOf, type ServingPlan } from './scrape-plans.js';
import { NO_ROUTE, requestRefusal, routeQuery, targetRefusal } from './scrape-request.js';
import { SELF_METRICS_PATH, serveSelfMetrics, type SelfMetricsText } from './self-metrics.js';

/** One scrape on its way: the plan and target change where the upstream answered otherwise than planned. */
interface Scrape {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly route: Route;
  readonly path: string;
  readonly query: string;
  readonly accept: string | undefined;
  readonly profile: UpstreamProfile;
  plan: ServingPlan;
  target: ScrapeTarget;
}

/** Whether the entry found is another representation than the plan asked for. */
function unplanned(plan: ServingPlan, entry: StoredResponse): boolean {
  return plan.via === 'source' ? !entry.isSource : plan.via === 'answer' && entry.representation !== plan.representation;
}

/** What a source plan's client is written: a rendering of the protobuf entry (undefined: the entry itself). */
function wireFor(plan: ServingPlan, entry: StoredResponse): Answer | undefined {
  return plan.via === 'source' && entry.isSource ? plan.wire : undefined;
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
  /** What the upstreams speak; with workers, the primary's (cluster/): every worker plans alike. */
  profiles?: UpstreamProfiles;
  /** Age and Cache-Status ttl read it, and what the upstream profiles learn (default: the real clock). */
  clock?: Clock;
}

export function createScrapeHandler(deps: ScrapeListenerDeps): (req: IncomingMessage, res: ServerResponse) => void | Promise<void> {
  return new ScrapeListener(deps).handle;
}

class ScrapeListener {
  private readonly plans: ScrapePlans;
  private readonly lookups: CacheLookup;
  private readonly writer: EntryWriter;

  constructor(private readonly deps: ScrapeListenerDeps) {
    // The time Age, ttl and what the profiles learn read (the system clock's now is Date.now itself).
    const now = (deps.clock ?? systemClock).now;
    // In a cluster primary this handler never listens: its plans learn from the primary's fills.
    this.plans = new ScrapePlans(deps.cache, now, deps.profiles);
    this.lookups = new CacheLookup(deps.cache, deps.waiting);
    this.writer = new EntryWriter(deps.cache, deps.metrics, deps.log, now);
  }

  /**
   * Synchronous up to the lookup, and through the write when the cache holds the entry in memory
   * with the bytes this client takes: a hit makes no promise (issue 21's hit path). Only a fill, a
   * conversion or a rendering not made yet, or a plan learned from another process waits.
   */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void | Promise<void> => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const badTarget = targetRefusal(url, path);
    if (badTarget) return writeError(res, badTarget);
    const route = this.deps.table().match(path);
    if (route === undefined) return this.serveUnrouted(req, res, path);
    const refused = requestRefusal(req, route);
    if (refused) return writeError(res, refused);
    const rawQuery = q === -1 ? '' : url.slice(q + 1);
    if (!route.cache) return this.bypass(req, res, route, path, rawQuery);
    const query = routeQuery(route, rawQuery);
    if (typeof query !== 'string') return writeError(res, query);
    const accept = req.headers.accept;
    const profile = this.plans.profileFor(route, path);
    const plan = planFor(accept, profile, route.format);
    if (plan.via === 'refuse') return writeError(res, notAcceptable(route, plan.reason), { fwd: 'none', head: req.method === 'HEAD' });
    const target = targetOf(plan, route, path, query, accept);
    if (plan.via === 'exact' && !this.plans.admitExact(target)) return this.refuseBeyondCap(req, res, route, target);
    if (plan.via === 'source' && profile.protobuf === 0) return this.serveHeld({ req, res, route, path, query, accept, profile, plan, target });
    // A lookup fails only by rejecting (FillFailed); what it throws is a bug of ours, which the guard answers 500.
    const found = this.deps.cache.lookup(target);
    // The hit path: the planned entry, fresh, in memory; written at once when its bytes are ready.
    if (!(found instanceof Promise) && found.cache === 'hit' && !unplanned(plan, found.entry)) {
      return this.writer.write(req, res, found, route, wireFor(plan, found.entry));
    }
    return this.serveFound({ req, res, route, path, query, accept, profile, plan, target }, found);
  };

  /** A plan held by another process (see heldAnswerPlan), then the lookup as usual. */
  private async serveHeld(scrape: Scrape): Promise<void> {
    const held = await this.heldAnswerPlan(scrape.route, scrape.profile, scrape.target, scrape.accept);
    if (held) {
      scrape.plan = held;
      scrape.target = targetOf(held, scrape.route, scrape.path, scrape.query, scrape.accept);
    }
    return this.serveFound(scrape, this.deps.cache.lookup(scrape.target));
  }

  /** What a lookup found, waited for and re-planned where the upstream answered otherwise than planned. */
  private async serveFound(scrape: Scrape, first: Lookup | Promise<Lookup>): Promise<void> {
    const { req, res, route, path, query, accept, profile } = scrape;
    try {
      let found = await this.lookups.settle(req, res, scrape.target, first);
      let entry = found.entry;
      if (entry.status === 200 && scrape.plan.via !== 'exact' && (found.cache !== 'hit' || unplanned(scrape.plan, entry))) {
        // A hit on another representation: what another process learned (see ScrapeCache.answeredFor).
        if (found.cache === 'hit') this.plans.learnFrom(profile, entry, route, path);
        // The fill taught the profile (see onAnswer in ScrapePlans). Where the upstream answered
        // otherwise than planned (no protobuf, no OpenMetrics, another version), the corrected
        // plan's entry answers this client: this one when it is that entry, or when this
        // client's own Accept was what the upstream answered (first fills); else another fill.
        const replanned = planFor(accept, profile, route.format);
        if (replanned.via === 'refuse') return writeError(res, notAcceptable(route, replanned.reason), { fwd: 'none', head: req.method === 'HEAD' });
        if (servedBy(replanned, entry)) scrape.plan = replanned;
        else if (!isOwnAnswer(route, entry, accept)) {
          scrape.plan = replanned;
          scrape.target = targetOf(replanned, route, path, query, accept);
          if (replanned.via === 'exact' && !this.plans.admitExact(scrape.target)) return this.refuseBeyondCap(req, res, route, scrape.target);
          found = await this.lookups.settle(req, res, scrape.target, this.deps.cache.lookup(scrape.target));
          entry = found.entry;
        }
      }
      await this.writer.write(req, res, found, route, wireFor(scrape.plan, entry));
    } catch (err) {
      this.writer.fail(req, res, route, err);
    }
  }

  /** No route serves the path: the landing page at `/`, the proxy's own metrics, or 404. */
  private serveUnrouted(req: IncomingMessage, res: ServerResponse, path: string): void | Promise<void> {
    const { deps } = this;
    // The landing page: `/` exactly (a route may still claim it above), GET or HEAD.
    if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
      const selfMetricsLinked = deps.selfMetrics !== undefined && deps.table().match(SELF_METRICS_PATH) === undefined;
      return serveLandingPage(req, res, deps.table().routes, deps.adminAddress?.(), selfMetricsLinked);
    }
    // The proxy's own metrics where Prometheus looks first, read only (a route may claim the path above).
    if (path === SELF_METRICS_PATH && deps.selfMetrics) return serveSelfMetrics(req, res, deps.selfMetrics);
    return writeError(res, NO_ROUTE);
  }

  /** A route without a cache: straight to the pass-through. */
  private bypass(req: IncomingMessage, res: ServerResponse, route: Route, path: string, rawQuery: string): void {
    this.deps.metrics.route(route.name).bypass++;
    this.lookups.track(res);
    this.deps.passThrough()!.forward(req, res, route, path, rawQuery);
  }

  /**
   * Not known here yet whether the upstream speaks protobuf (a new process, another replica):
   * what another one stored as the upstream's answer to such a client serves it.
   */
  private async heldAnswerPlan(route: Route, profile: UpstreamProfile, target: ScrapeTarget, accept: string | undefined): Promise<ServingPlan | undefined> {
    const held = await this.deps.cache.heldAnswer(target, answerCandidates(accept));
    if (!held) return undefined;
    this.plans.learnFrom(profile, held, route, target.path);
    return { via: 'answer', representation: held.representation, fillAccept: accept } satisfies Plan;
  }

  /** Past the cap of exact-Accept entries for a key (only the protobuf text encodings get one): 406. */
  private refuseBeyondCap(req: IncomingMessage, res: ServerResponse, route: Route, target: ScrapeTarget): void {
    this.deps.metrics.acceptOverCap.labels(route.name, 'not_acceptable').inc();
    writeError(res, beyondAcceptCap(target), { fwd: 'none', head: req.method === 'HEAD' });
  }
}
