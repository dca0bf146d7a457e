/**
 * Cross-site request refusal for the admin listener's POSTs, so that a page on another site
 * cannot make an operator's browser invalidate or reload (the admin API has no cookies, but
 * without a token it has no credentials at all). Browsers say where a request comes from in
 * Sec-Fetch-Site, older ones in Origin; clients that send neither (curl, scripts) are not browsers.
 */
import type { IncomingMessage } from 'node:http';

/**
 * Sent by the status page's script. A cross-origin page cannot send it without a CORS
 * preflight, which this listener never grants.
 */
export const PAGE_HEADER = 'x-scrapecache-page';

export function isCrossSite(req: IncomingMessage): boolean {
  // Only this origin's script can have sent it (a reverse proxy that rewrites Host breaks the
  // Origin comparison below, not this).
  if (req.headers[PAGE_HEADER] !== undefined) return false;
  const site = req.headers['sec-fetch-site'];
  // same-site is not enough: another port of this host (the scrape listener's pass-through
  // routes serve exporters' own pages) is another origin.
  if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true; // "null" and the like: an opaque origin
  }
}
