/**
 * The scrape listener's landing page (SPEC 4), as exporters built on exporter-toolkit have one:
 * name, version, the routes, and the status page where a browser here can reach it. It loads
 * nothing: its only style is inline, allowed by hash.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Route } from '../config/types.js';
import { buildInfo } from '../build-info.js';
import { cspHash, html, Html, pageHeaders } from './html.js';
import { STYLESHEET } from './style.js';

export const LANDING_CSP = `default-src 'none'; style-src ${cspHash(STYLESHEET)}; img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'`;

export interface LandingView {
  version: string;
  routes: readonly Route[];
  /** Where this browser can open the status page, when it can. */
  statusUrl: string | undefined;
  /** Whether this listener answers `/metrics` with the proxy's own metrics (no route took the path). */
  selfMetrics?: boolean;
}

export function renderLandingPage(view: LandingView): string {
  const routes = view.routes.map((r) => {
    const target = r.path !== undefined ? html`<a href="${r.path}"><code>${r.path}</code></a>` : html`<code>${r.pathPrefix}</code>…`;
    return html`<li>${target} <span class="muted">— route <strong>${r.name}</strong>${r.cache ? '' : ', pass-through'}${r.pathPrefix !== undefined ? ', everything below this prefix' : ''}</span></li>`;
  });
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scrapecache</title>
<link rel="icon" href="data:,">
<style>${new Html(STYLESHEET)}</style>
</head>
<body>
<header><h1>scrapecache</h1><p class="muted">A caching reverse proxy for Prometheus exporters · version ${view.version}</p></header>
<main>
<p>Prometheus scrapes this proxy; the proxy fetches from each exporter at most once per TTL per cache key and answers every other scrape from memory.</p>
<h2 id="routes-h">Routes</h2>
<ul class="routes" aria-labelledby="routes-h">
${routes.length === 0 ? html`<li class="muted">No routes configured.</li>` : routes}
</ul>
${view.selfMetrics ? html`<h2>Metrics</h2>
<p><a href="/metrics"><code>/metrics</code></a>: the proxy's own metrics (hits, upstream fetches, cache size), for a Prometheus job of their own.</p>
` : ''}<h2>Status</h2>
${view.statusUrl !== undefined ? html`<p><a href="${view.statusUrl}">Status page</a>: routes, upstream health, entries, hit ratios, invalidate and refresh.</p>` : html`<p class="muted">The status page is on the admin listener, which is not reachable from here.</p>`}
</main>
<footer><p>Point a Prometheus scrape job's <code>metrics_path</code> at a route above, with this proxy as the target.</p></footer>
</body>
</html>
`.text;
}

/** Where the admin listener is, as this process knows it (actual port once bound). */
export interface AdminWhere {
  host: string;
  port: number;
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === '::ffff:127.0.0.1' || address.startsWith('::ffff:127.');
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/**
 * The status page URL a browser that sent this request can open, or undefined: an admin
 * listener on all addresses is reached by the host name the browser used; one on loopback only
 * from this machine; one on a specific address when the browser came in on that address.
 */
export function statusUrlFor(req: IncomingMessage, admin: AdminWhere | undefined): string | undefined {
  if (!admin || admin.port === 0) return undefined;
  const scheme = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  const hostHeader = req.headers.host ?? '';
  // The Host header's name part ([v6]:port, name:port or name); anything else gets no link.
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d+)?$/.exec(hostHeader);
  const browserHost = m?.[1];
  const bracket = (h: string) => (isIP(h) === 6 ? `[${h}]` : h);
  if (isWildcard(admin.host)) return browserHost ? `${scheme}://${browserHost}:${admin.port}/` : undefined;
  if (isLoopback(admin.host) || admin.host === 'localhost') {
    // Only a browser on this machine reaches it; by the address it listens on, not a name that may resolve elsewhere.
    return isLoopback(req.socket.remoteAddress ?? '') ? `${scheme}://${bracket(admin.host)}:${admin.port}/` : undefined;
  }
  const local = (req.socket.localAddress ?? '').replace(/^::ffff:/, '');
  return local === admin.host ? `${scheme}://${browserHost ?? bracket(admin.host)}:${admin.port}/` : undefined;
}

export function serveLandingPage(req: IncomingMessage, res: ServerResponse, routes: readonly Route[], admin: AdminWhere | undefined, selfMetrics = false): void {
  const body = renderLandingPage({ version: buildInfo().version, routes, statusUrl: statusUrlFor(req, admin), selfMetrics });
  res.writeHead(200, pageHeaders(body, LANDING_CSP));
  res.end(req.method === 'HEAD' ? undefined : body);
}
