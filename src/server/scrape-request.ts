/**
 * What a request to the scrape listener must be before a route's cache sees it (SPEC 3.1): a
 * path without dot segments, GET or HEAD without a body, a query the route admits. Each check
 * gives the refusal to write, or nothing.
 */
import type { IncomingMessage } from 'node:http';
import { canonicalQuery, QueryError } from '../cache/key.js';
import type { Route } from '../config/types.js';
import { ProxyError } from '../errors.js';

export const ALLOW_GET_AND_HEAD = { Allow: 'GET, HEAD' };
/** The unread body makes the connection's framing untrustworthy: answer, then close it. */
export const CLOSE = { Connection: 'close' };

// Made once: a scan of random paths costs no error object (and no stack trace) per request.
const NOT_A_PATH = new ProxyError('BAD_REQUEST', 'request target must be a path such as /metrics');
const DOT_SEGMENT = new ProxyError('BAD_REQUEST', 'path must not contain . or .. segments');
export const NO_ROUTE = new ProxyError('NOT_FOUND', 'no route for this path');

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
export function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const length = h['content-length'];
  return length !== undefined && Number(length) !== 0;
}

/** The refusal of a request target that is not a path, or whose path has dot segments. */
export function targetRefusal(url: string, path: string): ProxyError | undefined {
  if (url.charCodeAt(0) !== 47 /* / */) return NOT_A_PATH;
  return hasDotSegment(path) ? DOT_SEGMENT : undefined;
}

/** The refusal of a request to a route that is not a GET or HEAD without a body. */
export function requestRefusal(req: IncomingMessage, route: Route): ProxyError | undefined {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return new ProxyError('METHOD_NOT_ALLOWED', `route ${route.name} answers GET and HEAD only`, { headers: ALLOW_GET_AND_HEAD });
  }
  if (hasBody(req)) return new ProxyError('BAD_REQUEST', `route ${route.name}: a GET or HEAD request must not carry a body`, { headers: CLOSE });
  return undefined;
}

/** The query part of a route's cache key, canonical; or the refusal of a malformed query or of a parameter not in query_keys. */
export function routeQuery(route: Route, rawQuery: string): string | ProxyError {
  let canonical: ReturnType<typeof canonicalQuery>;
  try {
    canonical = canonicalQuery(rawQuery);
  } catch (err) {
    if (!(err instanceof QueryError)) throw err;
    return new ProxyError('BAD_REQUEST', `route ${route.name}: ${err.message}`);
  }
  if (route.queryKeys !== null) {
    const refused = canonical.params.find(([name]) => !route.queryKeys!.has(name));
    if (refused) {
      return new ProxyError('BAD_REQUEST', `route ${route.name}: query parameter "${refused[0].slice(0, 64)}" is not in query_keys (${[...route.queryKeys].join(', ')})`);
    }
  }
  return canonical.query;
}
