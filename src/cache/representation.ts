/**
 * Accept and Accept-Encoding, parsed once per distinct header value.
 *
 * promhttp (client_golang) picks OpenMetrics, text or protobuf by Accept and gzip by
 * Accept-Encoding, and sends no Vary header. A cache keyed on path and query alone (nginx's
 * default proxy_cache_key) then serves one client's representation to another. Here the
 * representation the exporter would answer is part of the key (see negotiate.ts and
 * upstream-profile.ts); this module holds the key type, the RFC 9110 checks and the codings.
 */

import { LRUCache } from 'lru-cache';

/**
 * Part of the cache key: `protobuf` (an upstream protobuf answer, from which every other answer
 * is rendered), an upstream answer as `text;0.0.4;underscores` or `openmetrics;1.0.0;allow-utf-8`
 * (no escaping part when the upstream writes none), or `accept:<header>` for one exact Accept
 * header. Records written before issue 16 may hold a bare `text` or `openmetrics`.
 */
export type Representation = 'text' | 'openmetrics' | 'protobuf' | `${'text' | 'openmetrics'};${string}` | `accept:${string}`;

interface MediaRange {
  type: string;
  subtype: string;
  params: Array<[string, string]>;
  q: number;
}

/** Parses Accept into media ranges; malformed members are skipped, as browsers and Go do. */
export function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const member of header.split(',')) {
    const [mediaType, ...rawParams] = member.split(';');
    const slash = mediaType!.indexOf('/');
    if (slash === -1) continue;
    const type = mediaType!.slice(0, slash).trim().toLowerCase();
    const subtype = mediaType!.slice(slash + 1).trim().toLowerCase();
    if (!type || !subtype) continue;
    let q = 1;
    const params: Array<[string, string]> = [];
    for (const raw of rawParams) {
      const eq = raw.indexOf('=');
      if (eq === -1) continue;
      const name = raw.slice(0, eq).trim().toLowerCase();
      const value = raw.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
      if (name === 'q') {
        const n = Number(value);
        q = Number.isFinite(n) ? Math.min(Math.max(n, 0), 1) : 1;
      } else {
        params.push([name, value.toLowerCase()]);
      }
    }
    ranges.push({ type, subtype, params, q });
  }
  return ranges;
}

/** Bounded memo for header classifications: real scrapers send a handful of distinct values. */
class Memo<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly limit: number) {}
  get(key: string, compute: (key: string) => V): V {
    let value = this.map.get(key);
    if (value === undefined) {
      value = compute(key);
      // A client sending endless distinct headers only costs recomputation, never memory.
      if (this.map.size >= this.limit) this.map.clear();
      this.map.set(key, value);
    }
    return value;
  }
}

/** A key for one exact Accept header, used when a shared entry's type is not admitted. */
export function exactRepresentation(header: string | undefined): Representation {
  return `accept:${(header ?? '').replace(/\s+/g, '').toLowerCase()}`;
}

/** Entries keyed by an exact Accept header, per cache key (route, path, query): see AcceptBudget. */
export const MAX_EXACT_ACCEPTS_PER_KEY = 8;

/**
 * Bounds the entries (and so the fetches) keyed by an exact Accept header, per cache key: any
 * client can mint Accept headers, and each would otherwise cost one upstream fetch, turning the
 * proxy into an amplifier for an expensive exporter. An Accept keeps its slot while it is used;
 * a slot unused for longer than its entry could live is given to the next one.
 */
export class AcceptBudget {
  private readonly byKey = new LRUCache<string, Map<string, number>>({ max: 10_000 });

  constructor(private readonly perKey = MAX_EXACT_ACCEPTS_PER_KEY) {}

  /** Whether this representation may have an entry of its own under the key; lifetimeMs: how long such an entry may live. */
  admit(key: string, representation: Representation, lifetimeMs: number, now: number): boolean {
    let slots = this.byKey.get(key);
    if (!slots) {
      slots = new Map();
      this.byKey.set(key, slots);
    }
    if (slots.has(representation) || slots.size < this.perKey) {
      slots.set(representation, now);
      return true;
    }
    for (const [held, usedAt] of slots) {
      if (now - usedAt > lifetimeMs) {
        slots.delete(held);
        slots.set(representation, now);
        return true;
      }
    }
    return false;
  }
}

const admitsMemo = new Memo<boolean>(1024);

/**
 * Whether a Content-Type is admitted by an Accept header (RFC 9110 12.5.1): a range matches
 * when type and subtype match or are wildcards, and every parameter it names has the same value
 * in the content type; q=0 refuses. No Accept admits everything.
 */
export function admits(accept: string | undefined, contentType: string): boolean {
  if (accept === undefined || accept === '') return true;
  return admitsMemo.get(`${accept}\n${contentType}`, () => computeAdmits(accept, contentType));
}

function computeAdmits(accept: string, contentType: string): boolean {
  const [ct] = parseAccept(contentType);
  if (!ct) return true;
  let bestQ = -1;
  let bestSpecificity = -1;
  for (const range of parseAccept(accept)) {
    const typeOk = range.type === '*' || range.type === ct.type;
    const subOk = range.subtype === '*' || range.subtype === ct.subtype;
    if (!typeOk || !subOk) continue;
    if (!range.params.every(([k, v]) => ct.params.some(([ck, cv]) => ck === k && cv === v))) continue;
    // The most specific matching range decides (RFC 9110 12.5.1), so `*/*;q=1, text/plain;q=0` refuses text.
    const specificity = (range.type === '*' ? 0 : 2) + (range.subtype === '*' ? 0 : 1) + range.params.length * 4;
    if (specificity > bestSpecificity) {
      bestSpecificity = specificity;
      bestQ = range.q;
    }
  }
  return bestQ > 0;
}

export type Coding = 'gzip' | 'identity';

interface EncodingChoice {
  gzip: boolean;
  identity: boolean;
}

const encodingMemo = new Memo<EncodingChoice>(256);

/** Which of gzip and identity an Accept-Encoding header admits (RFC 9110 12.5.3). */
export function acceptedCodings(header: string | undefined): EncodingChoice {
  if (header === undefined) return IDENTITY_ONLY;
  return encodingMemo.get(header, computeCodings);
}

const IDENTITY_ONLY: EncodingChoice = { gzip: false, identity: true };

function computeCodings(header: string): EncodingChoice {
  let gzip: number | undefined;
  let identity: number | undefined;
  let star: number | undefined;
  for (const member of header.split(',')) {
    const [rawName, ...params] = member.split(';');
    const name = rawName!.trim().toLowerCase();
    if (!name) continue;
    const q = qualityOf(params);
    if (name === 'gzip' || name === 'x-gzip') gzip = q;
    else if (name === 'identity') identity = q;
    else if (name === '*') star = q;
  }
  return {
    gzip: (gzip ?? star ?? 0) > 0,
    // identity is acceptable unless refused explicitly or by `*;q=0`.
    identity: (identity ?? star ?? 1) > 0,
  };
}

/**
 * Whether Accept-Encoding admits one named coding the proxy cannot convert (br, zstd, a list):
 * such a body is passed on only to a client that asked for exactly that.
 */
export function acceptsCoding(header: string | undefined, coding: string): boolean {
  const wanted = coding.trim().toLowerCase();
  if (header === undefined || wanted.includes(',')) return false;
  let named: number | undefined;
  let star: number | undefined;
  for (const member of header.split(',')) {
    const [rawName, ...params] = member.split(';');
    const name = rawName!.trim().toLowerCase();
    const q = qualityOf(params);
    if (name === wanted || (wanted === 'gzip' && name === 'x-gzip')) named = q;
    else if (name === '*') star = q;
  }
  return (named ?? star ?? 0) > 0;
}

function qualityOf(params: string[]): number {
  for (const p of params) {
    const [k, v] = p.split('=');
    if (k?.trim().toLowerCase() === 'q' && v !== undefined) {
      const n = Number(v.trim());
      return Number.isFinite(n) ? n : 1;
    }
  }
  return 1;
}

/** The coding to serve: the stored one when acceptable, else the other; null when neither is. */
export function chooseCoding(acceptEncoding: string | undefined, stored: Coding): Coding | null {
  const ok = acceptedCodings(acceptEncoding);
  if (ok[stored]) return stored;
  const other: Coding = stored === 'gzip' ? 'identity' : 'gzip';
  return ok[other] ? other : null;
}
