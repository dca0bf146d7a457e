/**
 * GET / on the admin listener: the status page, or the token form when a token is set and the
 * request does not carry it; and the page's own script and stylesheet under /static/.
 */
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

let script: Buffer | undefined;
const ASSETS: Record<string, () => { type: string; body: Buffer }> = {
  [STYLE_PATH]: () => ({ type: 'text/css; charset=utf-8', body: Buffer.from(STYLESHEET) }),
  // Compiled from ./browser/status-page.ts beside this file.
  [SCRIPT_PATH]: () => ({ type: 'text/javascript; charset=utf-8', body: (script ??= readFileSync(new URL('./browser/status-page.js', import.meta.url))) }),
};

export function isPageAsset(pathname: string): boolean {
  return Object.hasOwn(ASSETS, pathname);
}

export function servePageAsset(res: ServerResponse, pathname: string, head: boolean): void {
  const { type, body } = ASSETS[pathname]!();
  res.writeHead(200, {
    'Content-Type': type,
    'Content-Length': body.length,
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    'Cross-Origin-Resource-Policy': 'same-origin',
  });
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
