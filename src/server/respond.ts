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
 */
export function writeHit(res: ServerResponse, status: number, variant: Variant, age: number, ttl: number, head: boolean): void {
  if (res.destroyed) return;
  let prepared = variant.hit;
  if (prepared === undefined || prepared.age !== age || prepared.ttl !== ttl) {
    const headers = variant.head.slice();
    headers.push('Age', String(age), 'Cache-Status', `scrapecache; hit; ttl=${ttl}${variant.detail ?? ''}`);
    prepared = variant.hit = { age, ttl, head: headers };
  }
  res.writeHead(status, prepared.head);
  res.end(head ? undefined : variant.body);
}

/** A one-line plain-text answer, and a ProxyError's answer (in src/net/, where the pass-through writes its failures too). */
export { writeError, writeText } from '../net/write-text.js';
