/**
 * Cache keys. SPEC 3.2: key = route + canonical query + representation. The path is part of
 * the key too, for prefix routes where one route serves many paths.
 */
import type { Representation } from './representation.js';

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

export function cacheKey(route: string, path: string, query: string, representation: Representation): string {
  return `${route}\0${path}\0${query}\0${representation}`;
}
