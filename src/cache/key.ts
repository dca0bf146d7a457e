/**
 * Cache keys. SPEC 3.2: key = route + canonical query + representation. The path is part of
 * the key too, for prefix routes where one route serves many paths.
 */
import type { ScrapeTarget } from './filler.js';
import type { Representation } from './representation.js';

/** The parts of a key (route, path, canonical query, representation) and of a target. */
export interface KeyParts {
  route: string;
  path: string;
  query: string;
  representation: Representation;
}

/** More query parameters than any exporter takes; past it a request is refused with 400. */
export const MAX_QUERY_PARAMS = 128;

export class QueryError extends Error {}

/**
 * Sorts parameters by name (stable for repeated names) and re-encodes them one way, so that
 * `?b=2&a=1`, `?a=1&b=2` and `?a=%31&b=2` share an entry. `+` means space, as in forms and
 * Go's url.ParseQuery. Throws QueryError on malformed percent-encoding or too many parameters.
 */
export function canonicalQuery(raw: string): { query: string; params: Array<[string, string]> } {
  if (raw === '') return { query: '', params: [] };
  const params: Array<[string, string]> = [];
  for (const member of raw.split('&')) {
    if (member === '') continue;
    if (params.length === MAX_QUERY_PARAMS) throw new QueryError(`more than ${MAX_QUERY_PARAMS} query parameters`);
    const eq = member.indexOf('=');
    const name = decode(eq === -1 ? member : member.slice(0, eq));
    const value = eq === -1 ? '' : decode(member.slice(eq + 1));
    params.push([name, value]);
  }
  params.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { query: params.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&'), params };
}

/** A lone surrogate (possible in a JSON selection on the admin API) has no UTF-8 form. */
function encode(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    throw new QueryError(`query parameter "${text.slice(0, 64)}" is not valid Unicode`);
  }
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text.includes('+') ? text.replaceAll('+', ' ') : text);
  } catch {
    throw new QueryError(`malformed percent-encoding in query parameter "${text.slice(0, 64)}"`);
  }
}

/** Parts are joined by NUL, which no route name, path, canonical query or representation holds. */
const SEPARATOR = '\0';

export function cacheKey(route: string, path: string, query: string, representation: Representation): string {
  return `${route}${SEPARATOR}${path}${SEPARATOR}${query}${SEPARATOR}${representation}`;
}

/** The key of a scrape target (its route is named by the route object's name). */
export function keyOf(target: ScrapeTarget): string {
  return cacheKey(target.route.name, target.path, target.query, target.representation);
}

/** Route, path and query without the representation: one slot of every representation of a scrape. */
export function scrapeKey(route: string, path: string, query: string): string {
  return `${route}${SEPARATOR}${path}${SEPARATOR}${query}`;
}

/** Every key of a route starts with this (key order keeps a route's keys together). */
export function routeKeyPrefix(route: string): string {
  return `${route}${SEPARATOR}`;
}

/** The parts of a key made by cacheKey; undefined for anything else. */
export function parseKey(key: string): KeyParts | undefined {
  const parts = key.split(SEPARATOR);
  if (parts.length !== 4) return undefined;
  const [route, path, query, representation] = parts as [string, string, string, Representation];
  return { route, path, query, representation };
}

/** The route name a key starts with (the hot path of a bus event: no split). */
export function routeOfKey(key: string): string {
  const end = key.indexOf(SEPARATOR);
  return end === -1 ? key : key.slice(0, end);
}

/** The key of the same scrape in another representation. */
export function withRepresentation(key: string, representation: Representation): string {
  return key.slice(0, key.lastIndexOf(SEPARATOR) + 1) + representation;
}

/** The representation part of a key. */
export function representationOfKey(key: string): Representation {
  return key.slice(key.lastIndexOf(SEPARATOR) + 1) as Representation;
}
