/**
 * Every failure as one status and one plain-text line (SPEC 3.3). Below the server and the
 * upstream: the listeners answer with it, and so does the pass-through when its upstream fails.
 */
import type { ServerResponse } from 'node:http';
import type { ProxyError } from '../errors.js';

const TEXT = 'text/plain; charset=utf-8';

/** A one-line plain-text answer; errors are never cached downstream either. */
export function writeText(
  res: ServerResponse,
  status: number,
  message: string,
  extra: Record<string, string> = {},
  head = false,
): void {
  if (res.destroyed || res.headersSent) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  const body = `${message}\n`;
  res.writeHead(status, {
    'Content-Type': TEXT,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...extra,
  });
  res.end(head ? undefined : body);
}

/**
 * How the answer to a failed request says what the cache did (RFC 9211): `miss` or `bypass`
 * when it asked the upstream, `none` when it answered by itself (a 406). Without, no
 * Cache-Status: a refused request never reached the cache.
 */
export type ErrorForward = 'miss' | 'bypass' | 'none';

const CACHE_STATUS_PREFIX = { miss: 'scrapecache; fwd=miss; detail=', bypass: 'scrapecache; fwd=bypass; detail=', none: 'scrapecache; detail=' };

/**
 * The one writer of a ProxyError's answer: its status, its message as the body, its headers,
 * and on the scrape path a Cache-Status that says how the request went (`fwd`) and why it
 * failed (`detail`, the error's kind).
 */
export function writeError(res: ServerResponse, err: ProxyError, options: { fwd?: ErrorForward; head?: boolean } = {}): void {
  const headers = options.fwd === undefined ? err.headers : { ...err.headers, 'Cache-Status': CACHE_STATUS_PREFIX[options.fwd] + err.detail };
  writeText(res, err.status, err.message, headers, options.head ?? false);
}
