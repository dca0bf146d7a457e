/** The admin listener (SPEC 4): health, readiness, reload, invalidation, cache listing, metrics. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ageSeconds, isFresh, ttlSeconds } from '../cache/freshness.js';
import { canonicalQuery, QueryError } from '../cache/key.js';
import type { EntryIdentity, ScrapeCache } from '../cache/scrape-cache.js';
import type { Metrics } from '../metrics.js';
import { writeText } from './respond.js';
import type { RouteTable } from './route-table.js';

const MAX_BODY = 64 * 1024;

export interface AdminDeps {
  token(): string;
  ready(): boolean;
  /** Re-reads the config file; resolves to the error text when it is invalid. */
  reload(): Promise<string | undefined>;
  table(): RouteTable;
  cache: ScrapeCache;
  metrics: Metrics;
  log: Logger;
  /** Cluster primary: the workers drop the same selection from their copies. */
  afterInvalidate?: (selection: Selection) => void;
  /** Cluster primary: metrics gathered from every process. */
  metricsText?: () => Promise<{ contentType: string; text: string }>;
  /** Cluster primary: hits per cache key, counted where they happen, in the workers. */
  cacheHits?: () => Promise<Map<string, number>>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Constant-time bearer check: both sides are hashed first, so lengths leak nothing either. */
export function authorized(header: string | undefined, token: string): boolean {
  if (token === '') return true;
  // RFC 9110 11.1: the scheme name is case-insensitive.
  const presented = header !== undefined && /^bearer /i.test(header) ? header.slice(7).trim() : '';
  return timingSafeEqual(digest(presented), digest(token));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface Selection {
  route?: string;
  path?: string;
  query?: string;
  refresh: boolean;
}

const SELECTION_KEYS = new Set(['route', 'path', 'query', 'refresh']);

async function readSelection(req: IncomingMessage, params: URLSearchParams): Promise<Selection> {
  // No prototype: `__proto__` (from the query or a JSON body) is then a field like any other, and unknown.
  const fields: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of params) fields[k] = k === 'refresh' ? v === 'true' || v === '1' : v;
  const body = (await readBody(req)).trim();
  if (body !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new HttpError(400, 'body must be a JSON object such as {"route": "node"}');
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new HttpError(400, 'body must be a JSON object such as {"route": "node"}');
    }
    Object.assign(fields, parsed);
  }
  for (const key of Object.keys(fields)) {
    if (!SELECTION_KEYS.has(key)) throw new HttpError(400, `unknown field "${key}" (expected route, path, query, refresh)`);
  }
  for (const key of ['route', 'path', 'query'] as const) {
    if (fields[key] !== undefined && typeof fields[key] !== 'string') throw new HttpError(400, `${key} must be a string`);
  }
  if (fields['refresh'] !== undefined && typeof fields['refresh'] !== 'boolean') throw new HttpError(400, 'refresh must be true or false');
  if (fields['query'] !== undefined && fields['path'] === undefined) throw new HttpError(400, 'query needs a path');
  const selection: Selection = { refresh: fields['refresh'] === true };
  if (fields['route'] !== undefined) selection.route = fields['route'] as string;
  if (fields['path'] !== undefined) selection.path = fields['path'] as string;
  if (fields['query'] !== undefined) selection.query = (fields['query'] as string).replace(/^\?/, '');
  return selection;
}

/** The entries a selection names; throws HttpError 404 for an unknown route or path. */
export function selector(selection: Selection, table: RouteTable): (entry: EntryIdentity) => boolean {
  let routeName = selection.route;
  if (routeName !== undefined && !table.byName.has(routeName)) throw new HttpError(404, `unknown route "${routeName}"`);
  if (selection.path === undefined) return routeName === undefined ? () => true : (e) => e.route === routeName;
  const path = selection.path;
  const route = table.match(path);
  if (!route || (routeName !== undefined && route.name !== routeName)) throw new HttpError(404, `no route serves path "${path}"`);
  routeName = route.name;
  if (selection.query === undefined) return (e) => e.route === routeName && e.path === path;
  let query: string;
  try {
    query = canonicalQuery(selection.query).query;
  } catch (err) {
    throw err instanceof QueryError ? new HttpError(400, err.message) : err;
  }
  return (e) => e.route === routeName && e.path === path && e.query === query;
}

export function createAdminHandler(deps: AdminDeps) {
  const { cache, metrics, log } = deps;

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    const only = (...allowed: string[]) => {
      if (!allowed.includes(method)) throw Object.assign(new HttpError(405, `${url.pathname} answers ${allowed.join(', ')}`), { allow: allowed });
    };
    switch (url.pathname) {
      case '/-/healthy':
        only('GET', 'HEAD');
        return writeText(res, 200, 'OK', {}, method === 'HEAD');
      case '/-/ready':
        only('GET', 'HEAD');
        return deps.ready() ? writeText(res, 200, 'OK', {}, method === 'HEAD') : writeText(res, 503, 'not ready', {}, method === 'HEAD');
    }
    if (!authorized(req.headers.authorization, deps.token())) {
      res.writeHead(401, { 'WWW-Authenticate': 'Bearer', 'Content-Length': 0 });
      res.end();
      return;
    }
    switch (url.pathname) {
      case '/-/reload': {
        only('POST', 'PUT');
        const error = await deps.reload();
        return error === undefined ? writeText(res, 200, 'config reloaded') : writeText(res, 400, error);
      }
      case '/invalidate': {
        only('POST');
        const selection = await readSelection(req, url.searchParams);
        const select = selector(selection, deps.table());
        // Workers drop their copies first, so a refresh the primary then stores reaches them after.
        deps.afterInvalidate?.(selection);
        const { invalidated, refreshed } = await cache.invalidate(select, selection.refresh);
        log.info({ ...selection, invalidated, refreshed }, 'invalidated');
        return json(res, 200, selection.refresh ? { invalidated, refreshed } : { invalidated });
      }
      case '/cache': {
        only('GET');
        const now = Date.now();
        const route = url.searchParams.get('route');
        const hits = deps.cacheHits ? await deps.cacheHits() : undefined;
        const list = [];
        for (const e of cache.store.entries()) {
          if (route !== null && e.route !== route) continue;
          list.push({
            route: e.route,
            path: e.path,
            query: e.query,
            representation: e.representation,
            content_type: e.contentType,
            content_encoding: e.coding,
            bytes: e.bytes,
            age_seconds: ageSeconds(e, now),
            ttl_seconds: ttlSeconds(e, e.policy, now),
            fresh: isFresh(e, e.policy, now),
            hits: hits ? (hits.get(e.key) ?? 0) : e.hits,
          });
        }
        return json(res, 200, list);
      }
      case '/metrics': {
        only('GET');
        const { contentType, text } = deps.metricsText
          ? await deps.metricsText()
          : { contentType: metrics.registry.contentType, text: await metrics.registry.metrics() };
        res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
    }
    throw new HttpError(404, 'not found (admin calls: /-/healthy, /-/ready, /-/reload, /invalidate, /cache, /metrics)');
  }

  return async function handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await route(req, res, new URL(req.url ?? '/', 'http://admin'));
    } catch (err) {
      if (err instanceof HttpError) {
        const allow = (err as HttpError & { allow?: string[] }).allow;
        writeText(res, err.status, err.message, allow ? { Allow: allow.join(', ') } : {});
      } else {
        log.error({ err }, 'admin call failed');
        writeText(res, 500, 'internal error');
      }
    }
  };
}
