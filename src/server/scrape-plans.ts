/**
 * Which entry answers a scraper (SPEC 3.2, issue 16): what the proxy knows of each upstream
 * (learned from every answer a fill brings, and from the entries held at start-up), the plan
 * that follows for a client's Accept, and the cap on entries kept per exact Accept.
 */
import { scrapeKey } from '../cache/key.js';
import type { StoredResponse } from '../cache/stored-response.js';
import { AcceptBudget, exactRepresentation, MAX_EXACT_ACCEPTS_PER_KEY, type Representation } from '../cache/representation.js';
import { longestLifetimeMs } from '../cache/route-windows.js';
import type { ScrapeCache, ScrapeTarget } from '../cache/scrape-cache.js';
import { probeAccept, SOURCE, UpstreamProfiles, type Plan, type UpstreamProfile } from '../cache/upstream-profile.js';
import type { Route } from '../config/types.js';
import { ProxyError } from '../errors.js';

/** A plan that names an entry to serve (not a refusal). */
export type ServingPlan = Exclude<Plan, { via: 'refuse' }>;

/** What a profile learns from: an answer the upstream gave to a fill's Accept. */
type Answered = Pick<StoredResponse, 'accept' | 'contentType'> & { representation: Representation };

/** Whether a plan is answered by this entry. */
export function servedBy(plan: Plan, entry: StoredResponse): boolean {
  return plan.via === 'source' ? entry.isSource : plan.via === 'answer' && entry.representation === plan.representation;
}

/** Whether the entry is the upstream's answer to this client's own Accept (an unpinned route's first fills). */
export function isOwnAnswer(route: Route, entry: StoredResponse, accept: string | undefined): boolean {
  return route.format === undefined && !entry.isSource && (entry.accept === accept || entry.accept === probeAccept(accept));
}

export function targetOf(plan: ServingPlan, route: Route, path: string, query: string, accept: string | undefined): ScrapeTarget {
  switch (plan.via) {
    case 'source':
      return { route, path, query, representation: SOURCE, accept: plan.fillAccept };
    case 'answer':
      return { route, path, query, representation: plan.representation, accept: plan.fillAccept };
    case 'exact':
      return { route, path, query, representation: exactRepresentation(accept), accept };
  }
}

/** A 406 of the proxy's own: the route has nothing this client asks for (Vary: the answer depends on Accept). */
export function notAcceptable(route: Route, reason: string): ProxyError {
  return new ProxyError('NOT_ACCEPTABLE', `route ${route.name} ${reason}`, { headers: { Vary: 'Accept' } });
}

/** Past the cap of exact-Accept entries for a key: 406, never a new fetch. */
export function beyondAcceptCap(target: ScrapeTarget): ProxyError {
  return new ProxyError(
    'NOT_ACCEPTABLE',
    `route ${target.route.name}: too many distinct Accept headers for this target (at most ${MAX_EXACT_ACCEPTS_PER_KEY} get an entry of their own)`,
  );
}

export class ScrapePlans {
  private readonly acceptBudget = new AcceptBudget();

  /** `profiles`: with workers, the primary's (it learns and tells them; a worker's only follows). */
  constructor(
    private readonly cache: ScrapeCache,
    private readonly now: () => number,
    private readonly profiles = new UpstreamProfiles(),
  ) {
    cache.onAnswer((target, entry) => {
      const profile = this.profiles.get(target.route, target.path, this.now());
      this.profiles.learn(target.route, target.path, profile, entry.accept, target.representation, entry.contentType, this.now());
    });
  }

  /** The profile of a route's upstream at a path. */
  profileFor(route: Route, path: string): UpstreamProfile {
    return this.profiles.get(route, path, this.now(), this.seed);
  }

  /** Teaches a profile an answer found held (another process's fill, a warm restart). */
  learnFrom(profile: UpstreamProfile, answered: Answered, route: Route, path: string): void {
    this.profiles.learn(route, path, profile, answered.accept, answered.representation, answered.contentType, this.now());
  }

  /**
   * Whether an exact-Accept target may have an entry of its own (only the protobuf text
   * encodings, which no scraper asks for, get one).
   */
  admitExact(target: ScrapeTarget): boolean {
    const { route } = target;
    // The longest any key of the route may live (its own windows or an override's): a slot is
    // reused no earlier than its entry could be, and no query is parsed on a hit.
    const lifetimeMs = longestLifetimeMs(route);
    return this.acceptBudget.admit(scrapeKey(route.name, target.path, target.query), target.representation, lifetimeMs, this.now());
  }

  /** A new profile learns first from the entries held for its route and path (a warm restart). */
  private readonly seed = (fresh: UpstreamProfile, route: Route, path: string): void => {
    // A few are enough (a probe route may hold thousands of targets, all the same exporter).
    for (const held of this.cache.entriesAt(route.name, path).slice(0, 16)) {
      if (held.status === 200) this.profiles.learn(route, path, fresh, held.accept, held.representation, held.contentType, held.fetchedAt);
    }
  };
}
