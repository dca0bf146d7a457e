/**
 * GET / on the admin listener: the status page, or the token form when a token is set and the
 * request does not carry it; and the page's own script and stylesheet under /static/.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LevelStatus } from '../cache/store.js';
import type { Route } from '../config/types.js';
import type { LastFetch } from '../last-fetch.js';
import { buildInfo } from '../build-info.js';
import { pageHeaders } from './html.js';
import type { ResultNotes } from './result-notes.js';
import { buildStatusModel, parseEntryView, type EntryTable, type EntryView, type MetricSample } from './status-model.js';
import { renderStatusPage, renderTokenPage, SCRIPT_PATH, STATUS_CSP, STYLE_PATH, type PageView } from './status-page.js';
import { STYLESHEET } from './style.js';

export interface StatusSource {
  tokenRequired(): boolean;
  configFile(): string;
  routes(): readonly Route[];
  /** One page of entries as GET /cache lists them (hits summed over workers), sorted and filtered. */
  entries(view: EntryView, page: number): Promise<EntryTable>;
  /** Entries and bytes per route, kept by the cache. */
  usage(route: string): { entries: number; bytes: number };
  /** As GET /metrics reports them (summed over workers). */
  samples(): Promise<MetricSample[]>;
  lastFetches(): Promise<Map<string, LastFetch>>;
  reloadError(): string | undefined;
  /** The last invalidation that did not reach every replica, in words (SPEC 2.2). */
  unreachedInvalidation?(): string | undefined;
  /** The cache levels: memory, and disk or Redis where configured. */
  levels?(): Promise<LevelStatus[]>;
  /** The app's clock: ages on the page are counted from it. */
  now(): number;
  notes: ResultNotes;
}

/** How the request proved it may see the page. */
export type PageAuth = { ok: true; formToken?: string } | { ok: false; refused: boolean };

interface Asset {
  type: string;
  body: Buffer;
  /** A strong validator of the body: a tab opened again revalidates (no-cache) and gets a 304. */
  etag: string;
}

function asset(type: string, body: Buffer): Asset {
  return { type, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

const loaded = new Map<string, Asset>();
const ASSETS: Record<string, () => Asset> = {
  [STYLE_PATH]: () => asset('text/css; charset=utf-8', Buffer.from(STYLESHEET)),
  // Compiled from ./browser/status-page.ts beside this file.
  [SCRIPT_PATH]: () => asset('text/javascript; charset=utf-8', readFileSync(new URL('./browser/status-page.js', import.meta.url))),
};

export function isPageAsset(pathname: string): boolean {
  return Object.hasOwn(ASSETS, pathname);
}

/** True when an If-None-Match list names `etag` (or is `*`); weak validators compare weakly (RFC 9110 13.1.2). */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === etag;
  });
}

export function servePageAsset(req: IncomingMessage, res: ServerResponse, pathname: string, head: boolean): void {
  let found = loaded.get(pathname);
  if (!found) loaded.set(pathname, (found = ASSETS[pathname]!()));
  const { type, body, etag } = found;
  const headers = {
    'Cache-Control': 'no-cache',
    ETag: etag,
    'X-Content-Type-Options': 'nosniff',
    'Cross-Origin-Resource-Policy': 'same-origin',
  };
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': body.length });
  res.end(head ? undefined : body);
}

export async function serveStatusPage(req: IncomingMessage, res: ServerResponse, url: URL, auth: PageAuth, source: StatusSource): Promise<void> {
  const head = req.method === 'HEAD';
  const note = source.notes.get(url.searchParams.get('result'));
  const view: PageView = { tokenRequired: source.tokenRequired(), note };
  let status = 200;
  let body: string;
  if (!auth.ok) {
    status = 401;
    body = renderTokenPage(buildInfo().version, view, auth.refused);
  } else {
    if (auth.formToken !== undefined) view.formToken = auth.formToken;
    const entryView = parseEntryView(url.searchParams);
    const [entries, samples, fetches, levels] = await Promise.all([
      source.entries(entryView, entryView.page),
      source.samples(),
      source.lastFetches(),
      source.levels?.() ?? [],
    ]);
    const model = buildStatusModel({
      version: buildInfo().version,
      configFile: source.configFile(),
      now: source.now(),
      routes: source.routes(),
      samples,
      entries,
      usage: (route) => source.usage(route),
      lastFetch: (route) => fetches.get(route),
      reloadError: source.reloadError(),
      unreachedInvalidation: source.unreachedInvalidation?.(),
      levels,
      view: entryView,
    });
    body = renderStatusPage(model, view);
  }
  const headers = pageHeaders(body, STATUS_CSP);
  if (status === 401) headers['WWW-Authenticate'] = 'Bearer';
  res.writeHead(status, headers);
  res.end(head ? undefined : body);
}
