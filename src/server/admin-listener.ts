/** The admin listener (SPEC 4): health, readiness, reload, invalidation, cache listing, metrics. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Reach } from '../cache/event-bus.js';
import { ageSeconds, isFresh, ttlSeconds } from '../cache/freshness.js';
import { canonicalQuery, QueryError } from '../cache/key.js';
import type { ScrapeCache } from '../cache/scrape-cache.js';
import type { EntrySelection } from '../cache/store.js';
import { INTERNAL_ERROR, ProxyError } from '../errors.js';
import { hostHeaderName, isLoopback, isWildcardHost, unbracketHost } from '../net/host-port.js';
import type { LastFetch } from '../last-fetch.js';
import type { Metrics } from '../metrics.js';
import { ResultNotes } from '../pages/result-notes.js';
import { isPageAsset, servePageAsset, serveStatusPage, type PageAuth, type StatusSource } from '../pages/status-handler.js';
import { STATUS_METRICS, type EntryRow, type EntryTable, type EntryView, type MetricSample } from '../pages/status-model.js';
import { describeOverride, overrideIndex } from '../cache/route-windows.js';
import type { StoredResponse } from '../cache/stored-response.js';
import { decodeCursor, encodeCursor, keyOrderPage, viewPage } from './entry-listing.js';
import { isCrossSite } from './csrf.js';
import { writeError, writeText } from './respond.js';
import type { RouteTable } from './route-table.js';

const MAX_BODY = 64 * 1024;
/** GET /cache without a limit: every entry of a small cache, as before paging came (issue 21). */
const CACHE_PAGE_DEFAULT = 1000;
const CACHE_PAGE_MAX = 10_000;
/** Rows per page of the status page's entry table. */
const STATUS_PAGE_ROWS = 100;

export interface AdminDeps {
  token(): string;
  ready(): boolean;
  /** Re-reads the config file; resolves to the error text when it is invalid. */
  reload(): Promise<string | undefined>;
  table(): RouteTable;
  cache: ScrapeCache;
  metrics: Metrics;
  log: Logger;
  /** Cluster primary: metrics gathered from every process. */
  metricsText?: () => Promise<{ contentType: string; text: string }>;
  /** Cluster primary: hits per cache key (of these keys, or all), counted where they happen, in the workers. */
  cacheHits?: (keys?: string[]) => Promise<Map<string, number>>;
  /** Cluster primary: metric samples gathered from every process (for the status page). */
  metricsJson?: () => Promise<MetricSample[]>;
  /** Cluster primary: the last fetch per route, its own and the workers' (pass-through). */
  lastFetches?: () => Promise<Map<string, LastFetch>>;
  /**
   * Without a token: the names a Host header may carry besides the listener's own address
   * (admin.allowed_hosts), and that address as configured (SPEC 4, DNS rebinding).
   */
  allowedHosts?: () => readonly string[];
  listenHost?: () => string;
  /** The config file and the error of the last reload, while it failed (for the status page). */
  configFile?: () => string;
  reloadError?: () => string | undefined;
  /** Ages and ttls of GET /cache and the status page, and its notes' lifetime (default: the real clock). */
  clock?: Clock;
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

/**
 * Whether a Host header names this listener (SPEC 4): a page that rebinds its own DNS name to
 * the listener's address still sends its own name as Host, so without a token only the
 * listener's address, `localhost` on a loopback listener, and the configured names are
 * answered. An IP literal cannot be rebound, so on a wildcard listener (0.0.0.0, ::) any is
 * its own; no browser sends a request without Host.
 */
export function hostAllowed(host: string | undefined, listenHost: string, allowed: readonly string[]): boolean {
  if (host === undefined || host === '') return true;
  const name = hostHeaderName(host);
  if (allowed.includes(name)) return true;
  const listen = unbracketHost(listenHost).toLowerCase();
  const wildcard = isWildcardHost(listen);
  if (name === listen) return true;
  if (isIP(name) !== 0) return wildcard || (isLoopback(listen) && isLoopback(name));
  return name === 'localhost' && (wildcard || isLoopback(listen));
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | number> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new ProxyError('REQUEST_TOO_LARGE', `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A POST's body, read once: a form (the status page without JS) or text (JSON). */
interface PostInput {
  body: string;
  form: URLSearchParams | undefined;
  /** A form the status page posted from a browser: the answer is a 303 back to the page. */
  fromPage: boolean;
}

const NO_INPUT: PostInput = { body: '', form: undefined, fromPage: false };

async function readPost(req: IncomingMessage): Promise<PostInput> {
  const body = (await readBody(req)).trim();
  // curl -d sends JSON as application/x-www-form-urlencoded: a body that is a JSON object stays JSON.
  const isForm = /^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '') && !body.startsWith('{');
  const form = isForm ? new URLSearchParams(body) : undefined;
  return { body, form, fromPage: form !== undefined && /\btext\/html\b/.test(req.headers.accept ?? '') };
}

export interface Selection {
  route?: string;
  path?: string;
  query?: string;
  refresh: boolean;
  /** Mark stale and refetch instead of dropping (SPEC 4 `soft`). */
  soft: boolean;
}

const SELECTION_KEYS = new Set(['route', 'path', 'query', 'refresh', 'soft']);
const FLAGS = new Set(['refresh', 'soft']);

function readSelection(input: PostInput, params: URLSearchParams): Selection {
  // No prototype: `__proto__` (from the query or a JSON body) is then a field like any other, and unknown.
  const fields: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of input.form ? [...params, ...input.form] : params) fields[k] = FLAGS.has(k) ? v === 'true' || v === '1' : v;
  const body = input.body;
  if (body !== '' && !input.form) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new ProxyError('BAD_REQUEST', 'body must be a JSON object such as {"route": "node"}');
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ProxyError('BAD_REQUEST', 'body must be a JSON object such as {"route": "node"}');
    }
    Object.assign(fields, parsed);
  }
  for (const key of Object.keys(fields)) {
    if (!SELECTION_KEYS.has(key)) throw new ProxyError('BAD_REQUEST', `unknown field "${key}" (expected route, path, query, refresh, soft)`);
  }
  for (const key of ['route', 'path', 'query'] as const) {
    if (fields[key] !== undefined && typeof fields[key] !== 'string') throw new ProxyError('BAD_REQUEST', `${key} must be a string`);
  }
  for (const flag of FLAGS) {
    if (fields[flag] !== undefined && typeof fields[flag] !== 'boolean') throw new ProxyError('BAD_REQUEST', `${flag} must be true or false`);
  }
  if (fields['query'] !== undefined && fields['path'] === undefined) throw new ProxyError('BAD_REQUEST', 'query needs a path');
  const selection: Selection = { refresh: fields['refresh'] === true, soft: fields['soft'] === true };
  if (fields['route'] !== undefined) selection.route = fields['route'] as string;
  if (fields['path'] !== undefined) selection.path = fields['path'] as string;
  if (fields['query'] !== undefined) selection.query = (fields['query'] as string).replace(/^\?/, '');
  return selection;
}

/**
 * The entries a selection names, as data (resolved route name, canonical query) that can cross
 * a process or a network; throws a NOT_FOUND ProxyError for an unknown route or path.
 */
export function selector(selection: Selection, table: RouteTable): EntrySelection {
  const routeName = selection.route;
  if (routeName !== undefined && !table.byName.has(routeName)) throw new ProxyError('NOT_FOUND', `unknown route "${routeName}"`);
  if (selection.path === undefined) return routeName === undefined ? {} : { route: routeName };
  const path = selection.path;
  const route = table.match(path);
  if (!route || (routeName !== undefined && route.name !== routeName)) throw new ProxyError('NOT_FOUND', `no route serves path "${path}"`);
  if (selection.query === undefined) return { route: route.name, path };
  try {
    return { route: route.name, path, query: canonicalQuery(selection.query).query };
  } catch (err) {
    throw err instanceof QueryError ? new ProxyError('BAD_REQUEST', err.message) : err;
  }
}

/** What a button did, in words, for the page it sends the browser back to. */
function describeSelection(selection: Selection): string {
  const verb = selection.soft ? 'Soft invalidate' : selection.refresh ? 'Refresh' : 'Invalidate';
  if (selection.path !== undefined) return `${verb} entry ${selection.path}${selection.query ? `?${selection.query}` : ''}`;
  return selection.route !== undefined ? `${verb} every entry of route ${selection.route}` : `${verb} every entry`;
}

function describeAnswer(answer: Record<string, number | string>): string {
  return Object.entries(answer)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/** What every admin answer reads: the listener's dependencies and the notes shown back on the status page. */
interface AdminContext {
  deps: AdminDeps;
  notes: ResultNotes;
  status: StatusSource;
}

/** Entries as GET /cache lists them; hits summed over the workers where there are any. */
async function toRows(deps: AdminDeps, entries: readonly StoredResponse[], allHits?: Map<string, number>): Promise<EntryRow[]> {
  const now = (deps.clock ?? systemClock).now();
  const hits = allHits ?? (deps.cacheHits && entries.length > 0 ? await deps.cacheHits(entries.map((e) => e.key)) : undefined);
  const routes = deps.table().byName;
  return entries.map((e) => {
    const route = routes.get(e.route);
    const override = route ? overrideIndex(route, e.query) : -1;
    return {
      route: e.route,
      path: e.path,
      query: e.query,
      representation: e.representation,
      content_type: e.contentType,
      content_encoding: e.coding,
      // An upstream protobuf answer: the answers rendered from it so far (SPEC 3.2).
      ...(e.isSource ? { renderings: e.renderingKeys() } : {}),
      bytes: e.bytes,
      age_seconds: ageSeconds(e, now),
      ttl_seconds: ttlSeconds(e, now),
      fresh: isFresh(e, now),
      hits: hits ? (hits.get(e.key) ?? 0) : deps.cache.hitsOf(e),
      // The ttl this copy was stored with, and the override of the running config that its query matches.
      lifetime_seconds: Math.round((e.staleAt - e.fetchedAt) / 1000),
      override: override < 0 ? null : describeOverride(route!.overrides[override]!),
    };
  });
}

/** GET /cache: one page in key order (limit, cursor); the next page's address in a Link header. */
async function cachePage(deps: AdminDeps, res: ServerResponse, params: URLSearchParams): Promise<void> {
  const { cache } = deps;
  const limitText = params.get('limit');
  const limit = limitText === null ? CACHE_PAGE_DEFAULT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > CACHE_PAGE_MAX) throw new ProxyError('BAD_REQUEST', `limit must be a whole number from 1 to ${CACHE_PAGE_MAX}`);
  const cursor = params.get('cursor');
  const after = cursor === null ? undefined : decodeCursor(cursor);
  if (cursor !== null && after === undefined) throw new ProxyError('BAD_REQUEST', 'cursor is not one this listing gave (take it from the Link header of the previous page)');
  const route = params.get('route') ?? undefined;
  const { entries, next } = keyOrderPage(cache, limit, after, route);
  const headers: Record<string, string | number> = { 'X-Total-Count': cache.countSelected(route === undefined ? {} : { route }) };
  if (next !== undefined) {
    const nextParams = new URLSearchParams({ limit: String(limit), cursor: encodeCursor(next) });
    if (route !== undefined) nextParams.set('route', route);
    headers['Link'] = `</cache?${nextParams}>; rel="next"`;
  }
  json(res, 200, await toRows(deps, entries), headers);
}

/** The status page's entry table: one page, sorted and filtered here. */
async function entryTable(deps: AdminDeps, view: EntryView, page: number): Promise<EntryTable> {
  const { cache } = deps;
  // Sorting by hits in a cluster needs every worker's counts first; any other view only the page's.
  const allHits = view.sort === 'hits' && deps.cacheHits ? await deps.cacheHits() : undefined;
  const hitsOf = allHits ? (e: StoredResponse) => allHits.get(e.key) ?? 0 : (e: StoredResponse) => cache.hitsOf(e);
  const shown = await viewPage(cache, view, page, STATUS_PAGE_ROWS, hitsOf);
  return { rows: await toRows(deps, shown.entries, allHits), total: cache.count, matched: shown.matched, page: shown.page, pages: shown.pages, pageSize: STATUS_PAGE_ROWS };
}

/** The few metrics the page shows, collected alone: a refresh does not pay for a whole /metrics. */
async function statusSamples(metrics: AdminDeps['metrics']): Promise<MetricSample[]> {
  const found = await Promise.all(STATUS_METRICS.map((name) => metrics.registry.getSingleMetric(name)?.get()));
  return found.filter((m) => m !== undefined) as MetricSample[];
}

/** What the status page shows, read from this process (or, in a cluster primary, from the whole group). */
function statusSourceFor(deps: AdminDeps, notes: ResultNotes): StatusSource {
  const { cache, metrics } = deps;
  return {
    tokenRequired: () => deps.token() !== '',
    configFile: () => deps.configFile?.() ?? '',
    routes: () => deps.table().routes,
    entries: (view, page) => entryTable(deps, view, page),
    usage: (route) => cache.usage(route),
    samples: async () => (deps.metricsJson ? deps.metricsJson() : statusSamples(metrics)),
    lastFetches: async () => (deps.lastFetches ? deps.lastFetches() : new Map(metrics.lastFetch.entries())),
    reloadError: () => deps.reloadError?.(),
    unreachedInvalidation: () => {
      const last = cache.lastUnreached;
      return last && `The last invalidation (${new Date(last.at).toISOString()}) reached ${last.reached === 'unconfirmed' ? 'this replica, and the others unconfirmed' : 'this replica only'}: ${last.reason}.`;
    },
    levels: () => cache.levels(),
    now: (deps.clock ?? systemClock).now,
    notes,
  };
}

/** 303 back to the status page, which shows what happened. */
function backToPage(notes: ResultNotes, res: ServerResponse, ok: boolean, text: string): void {
  res.writeHead(303, { Location: `/?result=${notes.add({ ok, text })}`, 'Content-Length': 0, 'Cache-Control': 'no-store' });
  res.end();
}

function pageAuth(deps: AdminDeps, req: IncomingMessage, input: PostInput): PageAuth {
  const token = deps.token();
  if (token === '') return { ok: true };
  // With basic auth on this listener (--web.config.file) Authorization carries that; the token comes in its own header.
  const tokenHeader = req.headers['x-scrapecache-token'];
  if (typeof tokenHeader === 'string') return authorized(`Bearer ${tokenHeader}`, token) ? { ok: true } : { ok: false, refused: true };
  if (req.headers.authorization !== undefined) return authorized(req.headers.authorization, token) ? { ok: true } : { ok: false, refused: true };
  const presented = input.form?.get('token');
  if (presented === null || presented === undefined) return { ok: false, refused: false };
  return authorized(`Bearer ${presented}`, token) ? { ok: true, formToken: presented } : { ok: false, refused: true };
}

/** Throws 405 with an Allow list unless the method is one of these. */
function allowOnly(method: string, url: URL, ...allowed: string[]): void {
  if (!allowed.includes(method)) throw new ProxyError('METHOD_NOT_ALLOWED', `${url.pathname} answers ${allowed.join(', ')}`, { headers: { Allow: allowed.join(', ') } });
}

/** POST /invalidate: drop (or, soft, mark stale and refetch) what the selection names; SPEC 2.2: one that could not reach the fleet says so. */
async function invalidate({ deps, notes }: AdminContext, res: ServerResponse, url: URL, input: PostInput): Promise<void> {
  const { cache, log } = deps;
  const selection = readSelection(input, url.searchParams);
  const select = selector(selection, deps.table());
  let answer: Record<string, number | string>;
  let reach: Reach | undefined;
  if (selection.soft) {
    // Answers at once unless refresh asks to wait for the refetches.
    const done = await cache.softInvalidate(select, selection.refresh);
    const { invalidated, refetching, refreshed } = done;
    reach = done.reach;
    log.info({ ...selection, invalidated, refetching, refreshed, ...reach }, 'invalidated');
    answer = selection.refresh ? { invalidated, refetching, refreshed } : { invalidated, refetching };
  } else {
    const done = await cache.invalidate(select, selection.refresh);
    const { invalidated, refreshed } = done;
    reach = done.reach;
    log.info({ ...selection, invalidated, refreshed, ...reach }, 'invalidated');
    answer = selection.refresh ? { invalidated, refreshed } : { invalidated };
  }
  if (reach) Object.assign(answer, reach);
  if (input.fromPage) return backToPage(notes, res, !reach, `${describeSelection(selection)}: ${describeAnswer(answer)}.`);
  return json(res, 200, answer);
}

async function serveMetrics(deps: AdminDeps, res: ServerResponse): Promise<void> {
  const { metrics } = deps;
  const { contentType, text } = deps.metricsText ? await deps.metricsText() : { contentType: metrics.registry.contentType, text: await metrics.registry.metrics() };
  res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * What anyone may reach: health and readiness; then, without a token, the Host check (DNS
 * rebinding); the cross-site check; the page's assets and the page. True when answered here.
 */
async function routeOpen(ctx: AdminContext, req: IncomingMessage, res: ServerResponse, url: URL, input: PostInput): Promise<boolean> {
  const { deps } = ctx;
  const method = req.method ?? 'GET';
  switch (url.pathname) {
    case '/-/healthy':
      allowOnly(method, url, 'GET', 'HEAD');
      writeText(res, 200, 'OK', {}, method === 'HEAD');
      return true;
    case '/-/ready':
      allowOnly(method, url, 'GET', 'HEAD');
      if (deps.ready()) writeText(res, 200, 'OK', {}, method === 'HEAD');
      else writeText(res, 503, 'not ready', {}, method === 'HEAD');
      return true;
  }
  if (deps.token() === '' && deps.listenHost && !hostAllowed(req.headers.host, deps.listenHost(), deps.allowedHosts?.() ?? [])) {
    throw new ProxyError('FORBIDDEN', `Host ${JSON.stringify(req.headers.host?.slice(0, 100))} is not this listener's address: without admin.token, add the name to admin.allowed_hosts`);
  }
  if (method === 'POST' || method === 'PUT') {
    if (isCrossSite(req)) throw new ProxyError('FORBIDDEN', 'cross-site request refused');
  }
  if (isPageAsset(url.pathname)) {
    allowOnly(method, url, 'GET', 'HEAD');
    servePageAsset(req, res, url.pathname, method === 'HEAD');
    return true;
  }
  if (url.pathname === '/') {
    // POST: the token form of a browser without JavaScript.
    allowOnly(method, url, 'GET', 'HEAD', 'POST');
    await serveStatusPage(req, res, url, pageAuth(deps, req, input), ctx.status);
    return true;
  }
  return false;
}

/** The calls behind the token: reload, invalidate, the cache listing and metrics. */
async function routeAuthorized(ctx: AdminContext, req: IncomingMessage, res: ServerResponse, url: URL, input: PostInput): Promise<void> {
  const { deps, notes } = ctx;
  const method = req.method ?? 'GET';
  switch (url.pathname) {
    case '/-/reload': {
      allowOnly(method, url, 'POST', 'PUT');
      const error = await deps.reload();
      if (input.fromPage) return backToPage(notes, res, error === undefined, error === undefined ? 'Config reloaded.' : `Reload refused, the running config stays: ${error}`);
      return error === undefined ? writeText(res, 200, 'config reloaded') : writeError(res, new ProxyError('BAD_REQUEST', error));
    }
    case '/invalidate':
      allowOnly(method, url, 'POST');
      return invalidate(ctx, res, url, input);
    case '/cache':
      allowOnly(method, url, 'GET');
      return cachePage(deps, res, url.searchParams);
    case '/metrics':
      allowOnly(method, url, 'GET');
      return serveMetrics(deps, res);
  }
  throw new ProxyError('NOT_FOUND', 'not found (admin calls: /-/healthy, /-/ready, /-/reload, /invalidate, /cache, /metrics; the status page is /)');
}

async function route(ctx: AdminContext, req: IncomingMessage, res: ServerResponse, url: URL, input: PostInput): Promise<void> {
  if (await routeOpen(ctx, req, res, url, input)) return;
  const auth = pageAuth(ctx.deps, req, input);
  if (!auth.ok) {
    if (input.fromPage) return backToPage(ctx.notes, res, false, 'The admin token was refused: enter it again.');
    res.writeHead(401, { 'WWW-Authenticate': 'Bearer', 'Content-Length': 0 });
    res.end();
    return;
  }
  input.form?.delete('token');
  return routeAuthorized(ctx, req, res, url, input);
}

/** An admin call's failure as its answer: the status page's note, the refusal as it is, or 500. */
function answerError(ctx: AdminContext, res: ServerResponse, input: PostInput, err: unknown): void {
  const refusal = err instanceof ProxyError && err.isRefusal ? err : undefined;
  // The status page shows the API's refusal (an unknown route's 404, a 400) as its note.
  if (refusal && input.fromPage && refusal.code !== 'FORBIDDEN') {
    backToPage(ctx.notes, res, false, `Refused (HTTP ${refusal.status}): ${refusal.message}`);
  } else if (refusal) {
    writeError(res, refusal);
  } else {
    ctx.deps.log.error({ err }, 'admin call failed');
    writeError(res, INTERNAL_ERROR);
  }
}

export function createAdminHandler(deps: AdminDeps) {
  const notes = new ResultNotes((deps.clock ?? systemClock).now);
  const ctx: AdminContext = { deps, notes, status: statusSourceFor(deps, notes) };
  return async function handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let input = NO_INPUT;
    try {
      if (req.method === 'POST' || req.method === 'PUT') input = await readPost(req);
      await route(ctx, req, res, new URL(req.url ?? '/', 'http://admin'), input);
    } catch (err) {
      answerError(ctx, res, input, err);
    }
  };
}
