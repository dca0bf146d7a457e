/**
 * What the proxy has learned about one upstream (route and path) from its answers, and the plan
 * for a client's Accept that follows from it (SPEC 3.2): which entry answers the client and what
 * to ask the upstream for when that entry is missing.
 *
 * The model is client_golang's promhttp: protobuf always, OpenMetrics when the exporter enables
 * it (promhttp's default is off), text always, an escaping term in the Content-Type since
 * prometheus/common v0.60. What the upstream actually returns corrects the model: an exporter that
 * answers text to an OpenMetrics-first Accept does not speak OpenMetrics; one that answers text to
 * a protobuf-first Accept does not speak protobuf; one whose Content-Type has no escaping term
 * ignores `escaping=`. Anything else it answers differently from the model (an OpenMetrics 0.0.1
 * request answered with 1.0.0) is remembered as an alias: clients predicted to get the one get the
 * entry of the other.
 *
 * Plans are pure functions of the Accept header and the profile's state, memoised per distinct
 * header value (scrapers repeat theirs), so the hit path pays two Map lookups.
 */
import type { Format, Route } from '../config/types.js';
import { negotiate, parseWireContentType, type Answer, type Escaping, type WireAnswer } from './negotiate.js';
import type { Representation } from './representation.js';

/** 0: not known yet; 1: yes; 2: no. */
export type Knowledge = 0 | 1 | 2;

/** Relearned after this long: an exporter upgraded to offer OpenMetrics or protobuf is noticed. */
export const PROFILE_LIFETIME_MS = 60 * 60 * 1000;
const MAX_ALIASES = 16;
const MAX_PATHS_PER_ROUTE = 1024;

const PROTOBUF_CLAUSE = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';

/** The source fetch: protobuf with names as they are, so that every escaping can be rendered. */
export const SOURCE_ACCEPT = `${PROTOBUF_CLAUSE};escaping=allow-utf-8`;

/** The representation of the entry that holds an upstream protobuf answer and its renderings. */
export const SOURCE: Representation = 'protobuf';

export class UpstreamProfile {
  protobuf: Knowledge = 0;
  openmetrics: Knowledge = 0;
  /** Whether the upstream writes (and so honours) an escaping term. */
  escaping: Knowledge = 0;
  readonly aliases = new Map<Representation, Representation>();
  expiresAt = 0;

  get state(): number {
    return this.protobuf + 3 * this.openmetrics + 9 * this.escaping;
  }

  reset(): void {
    this.protobuf = 0;
    this.openmetrics = 0;
    this.escaping = 0;
    this.aliases.clear();
  }

  /** What the profile says, for the status page and /cache. */
  describe(): string {
    const word = (k: Knowledge) => (k === 0 ? 'unknown' : k === 1 ? 'yes' : 'no');
    return `protobuf ${word(this.protobuf)}, OpenMetrics ${word(this.openmetrics)}, escaping ${word(this.escaping)}`;
  }
}

export type Plan =
  /** Render `wire` from the protobuf source entry, fetched with fillAccept when missing. */
  | { via: 'source'; fillAccept: string; wire: Answer; representation: Representation }
  /** The entry of one upstream answer, fetched with fillAccept (the client's own Accept, or the pinned format's). */
  | { via: 'answer'; representation: Representation; fillAccept: string | undefined }
  /** A protobuf text encoding the proxy cannot render: an entry keyed by the exact Accept. */
  | { via: 'exact' }
  | { via: 'refuse'; reason: string };

/** The representation key of an upstream answer; undefined for encodings keyed by exact Accept. */
export function representationOf(answer: WireAnswer): Representation | undefined {
  switch (answer.kind) {
    case 'protobuf':
      return SOURCE;
    case 'text':
    case 'openmetrics':
      return answer.escaping === undefined ? `${answer.kind};${answer.version}` : `${answer.kind};${answer.version};${answer.escaping}`;
    default:
      return undefined;
  }
}

/** The representation a stored Content-Type stands for (a fill is stored under what it got). */
export function representationOfContentType(contentType: string | undefined): Representation | undefined {
  const wire = parseWireContentType(contentType);
  return wire && representationOf(wire);
}

function answerKey(a: Answer, escapingKnown: boolean): Representation {
  return representationOf({ kind: a.kind, version: a.version, escaping: escapingKnown ? a.escaping : undefined })!;
}

/**
 * Where this client's answer is kept if the upstream does not speak protobuf, with and without
 * an escaping term: before the profile knows, an entry another process stored there serves it.
 */
export function answerCandidates(accept: string | undefined): Representation[] {
  const a = negotiate(accept, { protobuf: false, openmetrics: true });
  return [answerKey(a, true), answerKey(a, false)];
}

/** The fill Accept of a source plan before the upstream is known to speak protobuf: protobuf first, then the client's own. */
export function probeAccept(accept: string | undefined): string {
  return accept ? `${SOURCE_ACCEPT},${accept}` : SOURCE_ACCEPT;
}

function withEscaping(clause: string, escaping: Escaping, escapingKnown: boolean): string {
  return escapingKnown ? `${clause};escaping=${escaping}` : clause;
}

function computePlan(accept: string | undefined, p: { protobuf: Knowledge; openmetrics: Knowledge; escaping: Knowledge }, format: Format | undefined): Plan {
  const esc = p.escaping !== 2;
  const om = p.openmetrics !== 2;
  switch (format) {
    case undefined: {
      if (p.protobuf === 2) {
        const a = negotiate(accept, { protobuf: false, openmetrics: om });
        return { via: 'answer', representation: answerKey(a, esc), fillAccept: accept };
      }
      const a = negotiate(accept, { protobuf: true, openmetrics: om });
      if (a.kind === 'proto-text' || a.kind === 'proto-compact') return { via: 'exact' };
      // Not known yet whether the upstream speaks protobuf: ask for it first, and after it for
      // what this client asks for, which is its answer where protobuf is not spoken.
      if (p.protobuf === 0) return { via: 'source', fillAccept: probeAccept(accept), wire: a, representation: answerKey(a, esc) };
      // Whether a protobuf exporter enables OpenMetrics only its answer to an OpenMetrics request tells.
      if (a.kind === 'openmetrics' && p.openmetrics === 0) return { via: 'answer', representation: answerKey(a, esc), fillAccept: accept };
      return { via: 'source', fillAccept: SOURCE_ACCEPT, wire: a, representation: answerKey(a, esc) };
    }
    case 'protobuf': {
      if (p.protobuf === 2) {
        const a = negotiate(accept, { protobuf: false, openmetrics: false });
        return { via: 'answer', representation: answerKey(a, esc), fillAccept: SOURCE_ACCEPT };
      }
      // A pinned protobuf route cannot learn whether the exporter enables OpenMetrics: it
      // answers as promhttp does by default, without it.
      const a = negotiate(accept, { protobuf: true, openmetrics: false });
      if (a.kind === 'proto-text' || a.kind === 'proto-compact') {
        return { via: 'refuse', reason: 'serves the delimited protobuf format and its text renderings (format: protobuf); this client asks for a protobuf text encoding' };
      }
      return { via: 'source', fillAccept: SOURCE_ACCEPT, wire: a, representation: answerKey(a, esc) };
    }
    case 'text': {
      const a = negotiate(accept, { protobuf: false, openmetrics: false });
      return { via: 'answer', representation: answerKey(a, esc), fillAccept: withEscaping('text/plain;version=0.0.4', a.escaping, esc) };
    }
    case 'openmetrics': {
      const a = negotiate(accept, { protobuf: false, openmetrics: om });
      if (a.kind === 'openmetrics') {
        return { via: 'answer', representation: answerKey(a, esc), fillAccept: withEscaping(`application/openmetrics-text;version=${a.version}`, a.escaping, esc) };
      }
      if (om) return { via: 'refuse', reason: 'serves OpenMetrics only (format: openmetrics), which this client does not ask for' };
      // The upstream answers text to OpenMetrics requests: serve that text to text clients.
      return { via: 'answer', representation: answerKey(a, esc), fillAccept: withEscaping('application/openmetrics-text;version=1.0.0', a.escaping, esc) };
    }
  }
}

const FORMAT_INDEX = { text: 1, openmetrics: 2, protobuf: 3 } as const;
const STATES = 27;
const MEMO_LIMIT = 256;

/** Plans per distinct Accept value and profile state; bounded like the other per-header memos. */
const memo = new Map<string, Plan[]>();
/**
 * The last header looked up and its plans: a fleet sends a few Accept values, each the same on
 * every scrape, and comparing a header with the last one is cheaper than hashing it (a header is a
 * new string per request, whose hash a Map look-up computes over its 200-odd characters).
 */
let lastHeader: string | undefined;
let lastPlans: Plan[] = [];

/** The plans memoised for one Accept value. */
function plansOf(header: string): Plan[] {
  if (header === lastHeader) return lastPlans;
  let plans = memo.get(header);
  if (plans === undefined) {
    // A client sending endless distinct headers only costs recomputation, never memory.
    if (memo.size >= MEMO_LIMIT) memo.clear();
    plans = [];
    memo.set(header, plans);
  }
  lastHeader = header;
  lastPlans = plans;
  return plans;
}

/** The plan for a client of this upstream profile on a route with this format (if pinned). */
export function planFor(accept: string | undefined, profile: UpstreamProfile, format: Format | undefined): Plan {
  const plans = plansOf(accept ?? '');
  const slot = profile.state + STATES * (format === undefined ? 0 : FORMAT_INDEX[format]);
  let plan = plans[slot];
  if (plan === undefined) plan = plans[slot] = computePlan(accept || undefined, profile, format);
  if (plan.via === 'answer' && profile.aliases.size > 0) {
    const alias = profile.aliases.get(plan.representation);
    if (alias !== undefined) return { ...plan, representation: alias };
  }
  return plan;
}

/**
 * Learns from one upstream answer: `asked` is the Accept the fill sent, `plannedAs` the
 * representation it was planned as, `contentType` what came back (a 200).
 */
export function learn(profile: UpstreamProfile, asked: string | undefined, plannedAs: Representation, contentType: string, now: number, format?: Format): void {
  const wire = parseWireContentType(contentType);
  if (!wire) return;
  if (profile.protobuf === 0 && profile.openmetrics === 0 && profile.escaping === 0) profile.expiresAt = now + PROFILE_LIFETIME_MS;
  profile.escaping = wire.escaping === undefined ? 2 : 1;
  if (wire.kind === 'protobuf') profile.protobuf = 1;
  else if (plannedAs === SOURCE || negotiate(asked, { protobuf: true, openmetrics: true }).kind === 'protobuf') profile.protobuf = 2;
  if (wire.kind === 'openmetrics') profile.openmetrics = 1;
  else if (wire.kind === 'text' && negotiate(asked, { protobuf: false, openmetrics: true }).kind === 'openmetrics') profile.openmetrics = 2;
  const actual = representationOf(wire);
  // Aliases come from answers to a client's own Accept (unpinned routes) only; a protobuf probe
  // answered without protobuf is the answer to the client's Accept that follows it.
  if (format !== undefined || actual === undefined || actual === SOURCE || plannedAs.startsWith('accept:')) return;
  const own = plannedAs === SOURCE ? (asked?.startsWith(`${SOURCE_ACCEPT},`) ? asked.slice(SOURCE_ACCEPT.length + 1) : undefined) : asked;
  if (own === undefined && plannedAs === SOURCE) return;
  // An answer the model did not predict: clients predicted to get what this one was share the entry it went to.
  const predicted = planFor(own, profile, undefined);
  const expected = predicted.via === 'answer' || predicted.via === 'source' ? predicted.representation : undefined;
  if (expected === undefined) return;
  if (actual === expected) profile.aliases.delete(expected);
  else if (profile.aliases.size < MAX_ALIASES || profile.aliases.has(expected)) profile.aliases.set(expected, actual);
}

/**
 * One profile as the primary of a worker group sends it to its workers (SPEC 2 `workers`): the
 * route by name and fingerprint, since each process has its own Route objects.
 */
export interface ProfileNews {
  route: string;
  fingerprint: string;
  path: string;
  protobuf: Knowledge;
  openmetrics: Knowledge;
  escaping: Knowledge;
  aliases: Array<[Representation, Representation]>;
  expiresAt: number;
}

export interface UpstreamProfilesOptions {
  /**
   * A cluster worker: it learns nothing from answers itself and plans with what its primary
   * learned (assign), so that every worker of the group plans one client under one key.
   */
  follows?: boolean;
  /** Told each time a profile learned something (a cluster primary tells its workers). */
  learned?: (news: ProfileNews) => void;
}

function signature(p: UpstreamProfile): string {
  return p.aliases.size === 0 ? String(p.state) : `${p.state}${[...p.aliases].join()}`;
}

/**
 * Profiles per route and path. A route that a reload leaves as it was (same name, same way of
 * fetching) keeps its profiles; a changed one starts afresh. Paths of a prefix route are bounded.
 */
export class UpstreamProfiles {
  private readonly byRoute = new WeakMap<Route, Map<string, UpstreamProfile>>();
  private readonly byFingerprint = new Map<string, Map<string, UpstreamProfile>>();

  constructor(private readonly options: UpstreamProfilesOptions = {}) {}

  /**
   * The profile of a route and path. A new one is first taught by `seed` (the entries held for
   * it, say from a warm restart), so that knowledge survives what the cache itself keeps.
   */
  get(route: Route, path: string, now: number, seed?: (profile: UpstreamProfile, route: Route, path: string) => void): UpstreamProfile {
    let paths = this.byRoute.get(route);
    if (!paths) {
      paths = this.pathsOf(route.name, route.recordFingerprint);
      this.byRoute.set(route, paths);
    }
    let profile = paths.get(path);
    if (!profile) {
      if (paths.size >= MAX_PATHS_PER_ROUTE) paths.clear();
      paths.set(path, (profile = new UpstreamProfile()));
      seed?.(profile, route, path);
    } else if (profile.state !== 0 && now > profile.expiresAt) {
      profile.reset();
    }
    return profile;
  }

  /** learn() for a profile of this store: nothing in a follower; a change is told to `learned`. */
  learn(route: Route, path: string, profile: UpstreamProfile, asked: string | undefined, plannedAs: Representation, contentType: string, now: number): void {
    if (this.options.follows) return;
    const told = this.options.learned;
    const before = told && signature(profile);
    learn(profile, asked, plannedAs, contentType, now, route.format);
    if (told && signature(profile) !== before) told(newsOf(route.name, route.recordFingerprint, path, profile));
  }

  /** Takes a profile as the primary has it (a follower). */
  assign(news: ProfileNews): void {
    const paths = this.pathsOf(news.route, news.fingerprint);
    let profile = paths.get(news.path);
    if (!profile) {
      if (paths.size >= MAX_PATHS_PER_ROUTE) paths.clear();
      paths.set(news.path, (profile = new UpstreamProfile()));
    }
    profile.protobuf = news.protobuf;
    profile.openmetrics = news.openmetrics;
    profile.escaping = news.escaping;
    profile.aliases.clear();
    for (const [from, to] of news.aliases.slice(0, MAX_ALIASES)) profile.aliases.set(from, to);
    profile.expiresAt = news.expiresAt;
  }

  /** Every profile that knows something: what a new worker of the group starts from. */
  known(): ProfileNews[] {
    const all: ProfileNews[] = [];
    for (const [id, paths] of this.byFingerprint) {
      const cut = id.indexOf('\0');
      for (const [path, profile] of paths) {
        if (profile.state !== 0 || profile.aliases.size > 0) all.push(newsOf(id.slice(0, cut), id.slice(cut + 1), path, profile));
      }
    }
    return all;
  }

  private pathsOf(name: string, fingerprint: string): Map<string, UpstreamProfile> {
    const id = `${name}\0${fingerprint}`;
    let paths = this.byFingerprint.get(id);
    if (!paths) {
      for (const [other] of this.byFingerprint) if (other.startsWith(`${name}\0`)) this.byFingerprint.delete(other);
      this.byFingerprint.set(id, (paths = new Map()));
    }
    return paths;
  }
}

function newsOf(route: string, fingerprint: string, path: string, p: UpstreamProfile): ProfileNews {
  return { route, fingerprint, path, protobuf: p.protobuf, openmetrics: p.openmetrics, escaping: p.escaping, aliases: [...p.aliases], expiresAt: p.expiresAt };
}
