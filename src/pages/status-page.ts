/**
 * The admin listener's status page (SPEC 4): server-rendered, complete without JavaScript (the
 * buttons are forms that POST to the admin API); /static/status-page.js refreshes it in place.
 */
import type { LevelStatus } from '../cache/store.js';
import { formatDuration } from '../config/units.js';
import { formatAge, formatBytes, html, type Html, type Value } from './html.js';
import type { EntryRow, RouteStatus, SortKey, StatusModel } from './status-model.js';

export const STYLE_PATH = '/static/scrapecache.css';
export const SCRIPT_PATH = '/static/status-page.js';

/**
 * Nothing but this listener's own script, stylesheet and API; no frames, no plugins, no base.
 * data: images only for the empty icon, which spares a /favicon.ico request.
 */
export const STATUS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

export interface Note {
  ok: boolean;
  text: string;
}

export interface PageView {
  /** The admin token is set. */
  tokenRequired: boolean;
  /** A no-JS page opened with the token form: forms carry it, since they cannot send a header. */
  formToken?: string;
  note?: Note | undefined;
}

function shell(title: string, view: PageView, state: 'ok' | 'token', content: Html): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${STYLE_PATH}">
<script type="module" src="${SCRIPT_PATH}"></script>
</head>
<body data-page="status" data-state="${state}" data-token-required="${view.tokenRequired ? 'yes' : 'no'}">
<a class="skip" href="#entries">Skip to the entries</a>
${content}
</body>
</html>
`.text;
}

function noteBox(note: Note | undefined): Html {
  return html`<div id="note" class="note${note ? (note.ok ? ' ok' : ' error') : ''}" role="status" aria-live="polite">${note?.text}</div>`;
}

function tokenForm(refused: boolean): Html {
  return html`<section id="token" aria-labelledby="token-h">
<h2 id="token-h">Admin token</h2>
<p>This proxy has an admin token: enter it to see the status and use the buttons. With JavaScript it stays in this tab (sessionStorage) until you close it or forget it here; it is never put in a URL.</p>
${refused ? html`<p class="bad" role="alert">That token was refused.</p>` : ''}
<form id="token-form" method="post" action="/" class="toolbar">
<label for="token-input">Token</label>
<input id="token-input" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Show status</button>
</form>
</section>`;
}

/** The page for a request without a valid token: the token form, and the note an action left. */
export function renderTokenPage(version: string, view: PageView, refused: boolean): string {
  return shell(
    'scrapecache status',
    view,
    'token',
    html`<header><h1>scrapecache status</h1><p class="meta muted">version ${version}</p></header>
<main id="main">
${noteBox(view.note)}
${tokenForm(refused)}
</main>`,
  );
}

function hidden(name: string, value: string): Html {
  return html`<input type="hidden" name="${name}" value="${value}">`;
}

/** Invalidate, soft invalidate and refresh for one selection; the mode rides in the action's query. */
function actionForm(fields: Record<string, string>, label: string, view: PageView, canRefresh: boolean): Html {
  return html`<form class="actions" method="post" action="/invalidate" data-api="invalidate">
${Object.entries(fields).map(([k, v]) => hidden(k, v))}${view.formToken !== undefined ? hidden('token', view.formToken) : ''}
<button type="submit" class="danger" aria-label="${`Invalidate ${label}`}">Invalidate</button>
<button type="submit" formaction="/invalidate?soft=true" aria-label="${`Soft invalidate ${label}: serve the old copy while one refetch runs`}">Soft invalidate</button>
${canRefresh ? html`<button type="submit" formaction="/invalidate?refresh=true" aria-label="${`Refresh ${label}: fetch again now${fields['path'] === undefined ? ' (entries with a query on their next scrape)' : ''}`}">Refresh</button>` : ''}
</form>`;
}

function live(id: string, value: Value, className = ''): Html {
  return html`<span data-live="${id}"${className ? html` class="${className}"` : ''}>${value}</span>`;
}

function percent(ratio: number | null): string {
  return ratio === null ? '–' : `${(ratio * 100).toFixed(1)} %`;
}

function lastFetch(route: RouteStatus, now: number): Html {
  const f = route.lastFetch;
  const id = `route/${route.name}/fetch`;
  if (!f) return html`<dd data-live="${id}" class="muted">none yet</dd>`;
  const ok = f.code === '200';
  return html`<dd data-live="${id}"><span class="badge ${ok ? 'good' : 'bad'}">${/^\d+$/.test(f.code) ? `HTTP ${f.code}` : f.code}</span>
in ${f.seconds < 1 ? `${Math.round(f.seconds * 1000)} ms` : `${f.seconds.toFixed(2)} s`},
<time datetime="${new Date(f.at).toISOString()}" title="${new Date(f.at).toISOString()}">${formatAge((now - f.at) / 1000)} ago</time>
${f.error !== undefined ? html`<p class="error-text">${f.error}</p>` : ''}</dd>`;
}

function routeCard(route: RouteStatus, model: StatusModel, view: PageView): Html {
  const id = `route-${route.name}`;
  const r = `route/${route.name}`;
  const windows = [`ttl ${formatDuration(route.ttlMs)}`];
  if (route.staleWhileRevalidateMs > 0) windows.push(`stale_while_revalidate ${formatDuration(route.staleWhileRevalidateMs)}`);
  if (route.staleIfErrorMs > 0) windows.push(`stale_if_error ${formatDuration(route.staleIfErrorMs)}`);
  if (route.prefetch) windows.push('prefetch');
  // Per-target windows (SPEC 2 overrides): the first that matches a key's query wins.
  const overrides = route.overrides.map((o) => {
    const w = [`ttl ${formatDuration(o.ttlMs)}`];
    if (o.staleWhileRevalidateMs > 0) w.push(`stale_while_revalidate ${formatDuration(o.staleWhileRevalidateMs)}`);
    if (o.staleIfErrorMs > 0) w.push(`stale_if_error ${formatDuration(o.staleIfErrorMs)}`);
    return html`<li><code>${readableQuery(o.match)}</code>: ${w.join(', ')}</li>`;
  });
  const counts = route.cache ? (['hit', 'stale', 'miss', 'collapsed'] as const) : (['bypass'] as const);
  return html`<article class="card" aria-labelledby="${id}" data-row="${route.name}">
<header><h3 id="${id}">${route.name}</h3><span class="badge">${route.cache ? 'cached' : 'pass-through'}</span></header>
<dl class="facts">
<dt>${route.match.endsWith('*') ? 'Prefix' : 'Path'}</dt><dd><code>${route.match}</code></dd>
<dt>Upstream</dt><dd><code>${route.upstream}</code></dd>
${route.cache ? html`<dt>Freshness</dt><dd>${windows.join(', ')}${overrides.length > 0 ? html`<ul class="overrides" aria-label="Per-target freshness, first match wins">${overrides}</ul>` : ''}</dd>` : ''}
<dt>Last fetch</dt>${lastFetch(route, model.now)}
</dl>
<div class="stats">
<div><span class="label">Scrapes</span>${live(`${r}/total`, route.total, 'big')}</div>
${route.cache ? html`<div><span class="label">Hit ratio</span>${live(`${r}/ratio`, percent(route.hitRatio), 'big')}</div>
<div><span class="label">Upstream fetches</span>${live(`${r}/fetches`, route.upstreamFetches, 'big')}</div>
<div><span class="label">Fetches saved</span>${live(`${r}/saved`, route.saved, 'big')}</div>
<div><span class="label">Entries</span>${live(`${r}/entries`, `${route.entries} (${formatBytes(route.bytes)})`, 'big')}</div>` : html`<div><span class="label">Upstream fetches</span>${live(`${r}/fetches`, route.upstreamFetches, 'big')}</div>`}
</div>
<p class="muted">By outcome: ${counts.map((o, i) => html`${i > 0 ? ', ' : ''}${o} ${live(`${r}/${o}`, route.requests[o])}`)}</p>
${route.cache ? actionForm({ route: route.name }, `every entry of route ${route.name}`, view, true) : html`<p class="muted">Pass-through: nothing is stored.</p>`}
</article>`;
}

const LEVEL_TITLES: Record<string, string> = { memory: 'Memory', disk: 'Disk (cache.disk)', redis: 'Redis (cache.redis)' };

function at(ms: number, now: number): Html {
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}" title="${iso}">${formatAge(Math.max(0, now - ms) / 1000)} ago</time>`;
}

/** One cache level: up or down since when, what it holds, its last error. */
function levelCard(level: LevelStatus, now: number): Html {
  const l = `level/${level.name}`;
  const id = `level-${level.name}`;
  const holds =
    level.entries === undefined
      ? html`<span class="muted">not counted yet</span>`
      : html`${level.entries} entr${level.entries === 1 ? 'y' : 'ies'}${level.name === 'redis' ? ' under the key prefix' : ''}${
          level.bytes === undefined ? '' : level.name === 'redis' ? html`; the server uses ${formatBytes(level.bytes)}` : html`, ${formatBytes(level.bytes)}${level.maxBytes !== undefined ? ` of ${formatBytes(level.maxBytes)}` : ''}`
        }${level.countedAt !== undefined ? html` <span class="muted">(counted ${at(level.countedAt, now)})</span>` : ''}`;
  const state =
    level.name === 'memory'
      ? html`<span class="badge good">up</span>`
      : html`<span class="badge ${level.up ? 'good' : 'bad'}">${level.up ? 'up' : 'down'}</span> since ${at(level.since, now)}${
          level.up ? '' : html` <span class="muted">${level.name === 'redis' ? '— each replica goes on alone, from its own memory' : '— entries are kept in memory only'}</span>`
        }`;
  return html`<article class="card" aria-labelledby="${id}" data-level="${level.name}">
<header><h3 id="${id}">${LEVEL_TITLES[level.name] ?? level.name}</h3></header>
<dl class="facts">
${level.where !== '' ? html`<dt>Where</dt><dd><code>${level.where}</code></dd>` : ''}
<dt>State</dt><dd data-live="${l}/state">${state}</dd>
<dt>Holds</dt><dd data-live="${l}/holds">${holds}</dd>
${level.name === 'memory' ? '' : html`<dt>Last error</dt><dd data-live="${l}/error">${level.lastError ? html`${at(level.lastError.at, now)}<p class="error-text">${level.lastError.message}</p>` : html`<span class="muted">none</span>`}</dd>`}
</dl>
</article>`;
}

function levelsSection(model: StatusModel): Html {
  return html`<section id="levels" aria-labelledby="levels-h">
<h2 id="levels-h">Cache levels</h2>
<div class="cards">
${model.levels.map((level) => levelCard(level, model.now))}
</div>
</section>`;
}

const COLUMNS: Array<{ key: SortKey; label: string; num?: boolean }> = [
  { key: 'route', label: 'Route' },
  { key: 'path', label: 'Path' },
  { key: 'query', label: 'Query' },
  { key: 'representation', label: 'Representation' },
  { key: 'bytes', label: 'Bytes', num: true },
  { key: 'age', label: 'Age', num: true },
  { key: 'ttl', label: 'Fresh for', num: true },
  { key: 'hits', label: 'Hits', num: true },
];

function viewQuery(model: StatusModel, sort: SortKey, order: 'asc' | 'desc', page = 1): string {
  const params = new URLSearchParams({ sort, order });
  if (model.view.filter !== '') params.set('filter', model.view.filter);
  if (page > 1) params.set('page', String(page));
  return `/?${params}#entries`;
}

/** First, previous, next: the table shows one page; the server sorts, filters and pages (issue 21). */
function pageNav(model: StatusModel): Html {
  if (model.pages <= 1) return html``;
  const { sort, order } = model.view;
  const link = (page: number, label: string, rel?: string) => html`<a href="${viewQuery(model, sort, order, page)}"${rel ? html` rel="${rel}"` : ''}>${label}</a>`;
  return html`<nav class="toolbar" aria-label="Entry pages" data-live="entries/pages">
${model.page > 1 ? html`${link(1, 'First')} ${link(model.page - 1, 'Previous', 'prev')}` : ''}
<span>page ${model.page} of ${model.pages}</span>
${model.page < model.pages ? link(model.page + 1, 'Next', 'next') : ''}
</nav>`;
}

function headerCell(model: StatusModel, column: (typeof COLUMNS)[number]): Html {
  const current = model.view.sort === column.key;
  const next = current && model.view.order === 'asc' ? 'desc' : 'asc';
  const sortState = current ? (model.view.order === 'asc' ? 'ascending' : 'descending') : undefined;
  return html`<th scope="col"${column.num ? html` class="num"` : ''}${sortState ? html` aria-sort="${sortState}"` : ''}><a href="${viewQuery(model, column.key, next)}" aria-label="${`${column.label}: sort ${next === 'asc' ? 'ascending' : 'descending'}`}">${column.label}${current ? (model.view.order === 'asc' ? ' ▲' : ' ▼') : ''}</a></th>`;
}

/** The canonical query as a person reads it: decoded, but `&`, `=` and `%` inside values kept encoded. */
export function readableQuery(query: string): string {
  try {
    return query
      .split('&')
      .map((part) =>
        part
          .split('=')
          .map((x) => decodeURIComponent(x.replace(/\+/g, ' ')).replace(/[&=%]/g, encodeURIComponent))
          .join('='),
      )
      .join('&');
  } catch {
    return query;
  }
}

export function entryKey(e: EntryRow): string {
  return `${e.route} ${e.path}?${e.query} ${e.representation}`;
}

function entryRow(e: EntryRow, view: PageView): Html {
  const k = `entry/${entryKey(e)}`;
  const label = `entry ${e.path}${e.query === '' ? '' : `?${readableQuery(e.query)}`} (all representations)`;
  return html`<tr data-row="${entryKey(e)}">
<td>${e.route}</td><td class="path"><code>${e.path}</code></td><td class="query"><code>${e.query === '' ? html`<span class="muted">none</span>` : readableQuery(e.query)}</code></td><td>${e.representation}${e.renderings === undefined ? '' : html`<br><span class="muted">${e.renderings.length === 0 ? 'no renderings yet' : `renders ${e.renderings.join(', ')}`}</span>`}</td>
<td class="num">${live(`${k}/bytes`, formatBytes(e.bytes))}</td>
<td class="num">${live(`${k}/age`, formatAge(e.age_seconds))}</td>
<td class="num"${e.lifetime_seconds !== undefined ? html` title="${`stored with ttl ${formatAge(e.lifetime_seconds)}${e.override ? ` (override ${readableQuery(e.override)})` : ''}`}"` : ''}>${live(`${k}/ttl`, e.fresh ? formatAge(e.ttl_seconds) : `stale ${formatAge(-e.ttl_seconds)}`, e.fresh ? 'good' : 'warn')}</td>
<td class="num">${live(`${k}/hits`, e.hits)}</td>
<td>${actionForm({ route: e.route, path: e.path, query: e.query }, label, view, e.query === '')}</td>
</tr>`;
}

function entriesSection(model: StatusModel, view: PageView): Html {
  const sortLabel = COLUMNS.find((c) => c.key === model.view.sort)!.label.toLowerCase();
  return html`<section id="entries" aria-labelledby="entries-h" tabindex="-1">
<h2 id="entries-h">Entries <span class="muted" data-live="entries/count">${entryCount(model)}</span></h2>
<form method="get" action="/" role="search" class="toolbar" id="filter-form">
<label for="filter">Filter by route, path, query or representation</label>
<input id="filter" name="filter" type="search" value="${model.view.filter}">
${hidden('sort', model.view.sort)}${hidden('order', model.view.order)}
<button type="submit">Filter</button>
</form>
<div class="table-wrap" role="region" aria-labelledby="entries-h" tabindex="0">
<table>
<caption class="visually-hidden">Cache entries, sorted by ${sortLabel} ${model.view.order === 'asc' ? 'ascending' : 'descending'}; column headers sort</caption>
<thead><tr>${COLUMNS.map((c) => headerCell(model, c))}<th scope="col">Actions</th></tr></thead>
<tbody data-region="entries">
${model.entries.length === 0 ? html`<tr data-row=""><td colspan="9" class="muted">${model.totalEntries === 0 ? 'Nothing cached yet.' : 'No entry matches the filter.'}</td></tr>` : model.entries.map((e) => entryRow(e, view))}
</tbody>
</table>
</div>
${pageNav(model)}
</section>`;
}

/** "120", or "3 of 120" filtered, or "rows 101-200 of 50000" on a page. */
function entryCount(model: StatusModel): string {
  const shown = model.entries.length;
  if (model.pages <= 1) return shown === model.totalEntries ? `${model.totalEntries}` : `${shown} of ${model.totalEntries}`;
  const of = model.matchedEntries === model.totalEntries ? `${model.totalEntries}` : `${model.matchedEntries} matching of ${model.totalEntries}`;
  const first = (model.page - 1) * model.pageSize + 1;
  return `rows ${first}-${first + shown - 1} of ${of}`;
}

function reloadStatus(model: StatusModel, view: PageView): Html {
  const at = model.reload.successAt;
  const when = at === undefined ? '' : html`, last loaded <time datetime="${new Date(at * 1000).toISOString()}">${formatAge(model.now / 1000 - at)} ago</time>`;
  return html`<div id="reload" data-live="reload">
<p class="meta"><span>Config <code>${model.configFile}</code>: ${model.reload.ok ? html`<span class="good">loaded</span>` : html`<span class="bad">last reload failed</span>, the running config stays`}${when}</span></p>
${model.reload.error !== undefined ? html`<p class="error-text">${model.reload.error}</p>` : ''}
${model.unreachedInvalidation !== undefined ? html`<p class="error-text" id="unreached-invalidation">${model.unreachedInvalidation}</p>` : ''}
</div>
<form class="actions" method="post" action="/-/reload" data-api="reload">${view.formToken !== undefined ? hidden('token', view.formToken) : ''}<button type="submit">Reload config</button></form>`;
}

export function renderStatusPage(model: StatusModel, view: PageView): string {
  return shell(
    'scrapecache status',
    view,
    'ok',
    html`<header>
<h1>scrapecache status</h1>
<p class="meta muted"><span>version ${model.version}</span><span>${model.routes.length} route${model.routes.length === 1 ? '' : 's'}</span><span>numbers since start, as in ${view.tokenRequired ? html`<code>/metrics</code> and <code>/cache</code>` : html`<a href="/metrics">/metrics</a> and <a href="/cache">/cache</a>`}</span><span id="updated"></span></p>
${reloadStatus(model, view)}
${view.tokenRequired ? html`<p><button type="button" id="forget-token" hidden>Forget the token</button></p>` : ''}
</header>
<main id="main">
${noteBox(view.note)}
<section id="routes" aria-labelledby="routes-h">
<h2 id="routes-h">Routes</h2>
<div class="cards" data-region="routes">
${model.routes.map((r) => routeCard(r, model, view))}
</div>
</section>
${model.levels.length > 0 ? levelsSection(model) : ''}
${entriesSection(model, view)}
</main>
<footer><p>Scrapes are counted since this process started. Hit ratio is (hit + stale) / scrapes; fetches saved are scrapes minus upstream fetches. Soft invalidate keeps serving the old copy while one refetch runs; refresh fetches query-less entries again at once.</p></footer>`,
  );
}
