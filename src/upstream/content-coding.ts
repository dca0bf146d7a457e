/**
 * The upstream's content coding, and the decoded size of a gzip body, checked at fill time: a
 * small gzip body must not expand past max_body_bytes for the clients it is served to (gzip bombs).
 */
import { createGunzip } from 'node:zlib';
import type { Route } from '../config/types.js';
import { ProxyError } from '../errors.js';

/**
 * The coding a stored response can keep: gzip or identity; undefined for one the proxy cannot
 * convert (br, zstd, a list). RFC 9110 8.4.1: codings are case-insensitive; `identity` members
 * change nothing.
 */
export function contentCodingOf(header: string | string[] | undefined): 'gzip' | 'identity' | undefined {
  if (header === undefined) return 'identity';
  const codings = String(header)
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0) return 'identity';
  if (codings.length === 1 && (codings[0] === 'gzip' || codings[0] === 'x-gzip')) return 'gzip';
  return undefined;
}

/**
 * Decodes a gzip body without keeping the output, counting its bytes, and stops as soon as they
 * pass the route's max_body_bytes. Throws ProxyError: too large, or corrupt.
 */
export function checkGzipBody(route: Route, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const gunzip = createGunzip();
    let size = 0;
    gunzip.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > route.maxBodyBytes) {
        gunzip.destroy();
        reject(
          new ProxyError(
            'UPSTREAM_BODY_TOO_LARGE',
            `route ${route.name}: upstream gzip body decodes to more than max_body_bytes (${route.maxBodyBytes})`,
          ),
        );
      }
    });
    gunzip.on('end', () => resolve());
    gunzip.on('error', (err) =>
      reject(new ProxyError('UPSTREAM_BAD_RESPONSE', `route ${route.name}: upstream sent a corrupt gzip body`, { cause: err })),
    );
    gunzip.end(body);
  });
}
