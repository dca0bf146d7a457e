/**
 * Writing answers: stored responses with their per-request headers, and every failure as one
 * status and one plain-text line (SPEC 3.3), in one place.
 */
import type { ServerResponse } from 'node:http';
import type { Variant } from '../cache/stored-response.js';

/** Writes a variant with Age and Cache-Status added; HEAD gets the headers only. */
export function writeVariant(
  res: ServerResponse,
  status: number,
  variant: Variant,
  age: number,
  cacheStatus: string,
  head: boolean,
): void {
  // Shutdown may have answered a waiting client already (see app.ts).
  if (res.destroyed || res.headersSent) return;
  const headers = variant.head.slice();
  headers.push('Age', String(age), 'Cache-Status', cacheStatus);
  res.writeHead(status, headers);
  res.end(head ? undefined : variant.body);
}

/**
 * Writes a fresh hit. Its header block differs from the last hit's only when Age or ttl moved
 * on, once a second: between, every hit writes the same prepared list (issue 9: no per-hit
 * header building on the hot path).
 *
 * The list is kept on the variant only for a key hit twice within the same second of Age (a hot
 * key: it then serves every hit until Age moves on). A key hit less often (thousands of targets
 * behind one route, each scraped every few seconds) builds it per hit and lets it go: kept until
 * that key's next hit, it outlived the young generation and was promoted, garbage the size of a
 * header block per hit (2.5 MB/s at 50 000 keys), which brought a full collection with 80-100 ms
 * steps every 15-20 s (issue 21).
 */
export function writeHit(res: ServerResponse, status: number, variant: Variant, age: number, ttl: number, head: boolean): void {
  if (res.destroyed) return;
  let prepared = variant.hit;
  if (prepared === undefined || prepared.age !== age || prepared.ttl !== ttl) {
    const headers = variant.head.slice();
    headers.push('Age', String(age), 'Cache-Status', `scrapecache; hit; ttl=${ttl}${variant.detail ?? ''}`);
    prepared = { age, ttl, head: headers };
    const last = variant.lastHitAge;
    variant.hit = last === age ? prepared : undefined;
  }
  // A small integer: stored in place, nothing allocated.
  variant.lastHitAge = age;
  res.writeHead(status, prepared.head);
  res.end(head ? undefined : variant.body);
}

/** A one-line plain-text answer, and a ProxyError's answer (in src/net/, where the pass-through writes its failures too). */
export { writeError, writeText } from '../net/write-text.js';
