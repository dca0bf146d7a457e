/**
 * One cached scrape: the whole upstream 200 (headers less hop-by-hop ones, body) and the bytes
 * ready to write for each content coding. The coding the upstream sent is kept as is; the other
 * one is made at most once per entry, when a client first needs it (SPEC 3.2).
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { FreshnessPolicy } from './freshness.js';
import { admits, type Coding, type Representation } from './representation.js';

const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);

/** Headers that describe one connection or one encoding, never the stored resource (RFC 9110 7.6.1). */
const DROPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'content-length',
  'content-encoding',
  'vary',
  'age',
  'cache-status',
  'set-cookie',
]);

/** Upstream headers worth storing, as a flat [name, value, ...] list. */
export function storableHeaders(raw: Record<string, string | string[] | undefined>, keepEncoding = false): string[] {
  const connectionListed = new Set(
    String(raw['connection'] ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: string[] = [];
  for (const [name, value] of Object.entries(raw)) {
    const lower = name.toLowerCase();
    if (value === undefined || connectionListed.has(lower)) continue;
    if (DROPPED.has(lower) && !(keepEncoding && lower === 'content-encoding')) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}

/** The bytes and header list to write for one coding. */
export interface Variant {
  body: Buffer;
  /** Flat header list for writeHead, less Age and Cache-Status which change per request. */
  head: string[];
}

export interface WireResponse {
  key: string;
  route: string;
  path: string;
  query: string;
  representation: Representation;
  accept: string | undefined;
  status: number;
  coding: Coding;
  body: Uint8Array;
  headers: string[];
  fetchedAt: number;
  staleFrom?: number;
  policy: FreshnessPolicy;
}

/**
 * Bytes a stored response costs beyond its bodies, keys and header strings: the objects, the
 * header lists, the LRU's slot. Measured with 100 000 entries on Node 20 (about 1 KiB of heap
 * each), so that cache.max_bytes bounds what is really held.
 */
const OVERHEAD_BYTES = 1024;

export class StoredResponse {
  readonly key: string;
  readonly route: string;
  readonly path: string;
  readonly query: string;
  readonly representation: Representation;
  /** The Accept header the fill sent upstream; refreshes send it again. */
  readonly accept: string | undefined;
  readonly status: number;
  readonly contentType: string;
  readonly coding: Coding;
  readonly fetchedAt: number;
  /** The route's policy when this was fetched: a ttl change applies from the next fill. */
  readonly policy: FreshnessPolicy;
  /** Set by a soft invalidation: stale from then on, served while it is refetched (see freshness.ts). */
  staleFrom: number | undefined;
  hits = 0;
  /** The last Accept header found to admit contentType: scrapers repeat theirs, so most checks are one compare. */
  private admittedAccept: string | undefined;
  private readonly variants: Partial<Record<Coding, Variant>> = {};
  private readonly converting: Partial<Record<Coding, Promise<Variant>>> = {};
  private readonly headers: string[];
  private headerBytes: number;

  constructor(init: {
    key: string;
    route: string;
    path: string;
    query: string;
    representation: Representation;
    accept: string | undefined;
    status: number;
    coding: Coding;
    body: Buffer;
    headers: string[];
    fetchedAt: number;
    staleFrom?: number;
    policy: FreshnessPolicy;
  }) {
    this.key = init.key;
    this.route = init.route;
    this.path = init.path;
    this.query = init.query;
    this.representation = init.representation;
    this.accept = init.accept;
    this.status = init.status;
    this.coding = init.coding;
    this.fetchedAt = init.fetchedAt;
    this.policy = init.policy;
    this.staleFrom = init.staleFrom;
    this.headers = init.headers;
    let contentType = 'application/octet-stream';
    for (let i = 0; i < init.headers.length; i += 2) {
      if (init.headers[i]!.toLowerCase() === 'content-type') contentType = init.headers[i + 1]!;
    }
    this.contentType = contentType;
    this.headerBytes = init.headers.reduce((n, s) => n + s.length, 0);
    this.variants[init.coding] = this.makeVariant(init.coding, init.body);
  }

  private makeVariant(coding: Coding, body: Buffer): Variant {
    // RFC 9110 8.6: no Content-Length on a 204; on a 304 it would describe the 200 this one replaces.
    const head = this.status === 204 || this.status === 304 ? [...this.headers] : [...this.headers, 'Content-Length', String(body.length)];
    head.push('Vary', 'Accept, Accept-Encoding');
    if (coding === 'gzip') head.push('Content-Encoding', 'gzip');
    return { body, head };
  }

  /** Soft invalidation: stale from `at` (or from an earlier soft invalidation), still servable. */
  markStale(at: number): void {
    if (this.staleFrom === undefined || at < this.staleFrom) this.staleFrom = at;
  }

  /** Bytes held for this entry: every body made so far, headers and key. */
  get bytes(): number {
    let n = OVERHEAD_BYTES + this.key.length * 2 + this.headerBytes * 2 + (this.accept?.length ?? 0);
    for (const v of Object.values(this.variants)) n += v.body.length;
    return n;
  }

  /** Whether a client's Accept admits this response's Content-Type (see admits()). */
  admits(accept: string | undefined): boolean {
    if (accept === undefined || accept === this.admittedAccept) return true;
    if (!admits(accept, this.contentType)) return false;
    this.admittedAccept = accept;
    return true;
  }

  /** The response as sent between processes (cluster workers): plain data and the stored body. */
  toWire(): WireResponse {
    return {
      key: this.key,
      route: this.route,
      path: this.path,
      query: this.query,
      representation: this.representation,
      accept: this.accept,
      status: this.status,
      coding: this.coding,
      body: this.variants[this.coding]!.body,
      headers: this.headers,
      fetchedAt: this.fetchedAt,
      ...(this.staleFrom === undefined ? {} : { staleFrom: this.staleFrom }),
      policy: {
        ttlMs: this.policy.ttlMs,
        staleWhileRevalidateMs: this.policy.staleWhileRevalidateMs,
        staleIfErrorMs: this.policy.staleIfErrorMs,
        timeoutMs: this.policy.timeoutMs,
      },
    };
  }

  static fromWire(wire: WireResponse): StoredResponse {
    // Structured clone delivers a Uint8Array; view it as a Buffer without copying.
    const body = Buffer.isBuffer(wire.body) ? wire.body : Buffer.from(wire.body.buffer, wire.body.byteOffset, wire.body.byteLength);
    return new StoredResponse({ ...wire, body });
  }

  /** The stored body length in its upstream coding, as reported by GET /cache. */
  get storedBodyBytes(): number {
    return this.variants[this.coding]!.body.length;
  }

  /** The ready variant for a coding, or undefined when it has yet to be made (see convert). */
  variant(coding: Coding): Variant | undefined {
    return this.variants[coding];
  }

  /**
   * Makes the other coding once; concurrent callers share the work. Rejects on a corrupt gzip
   * body or one that decodes to more than maxBytes.
   */
  convert(coding: Coding, maxBytes = Infinity): Promise<Variant> {
    const ready = this.variants[coding];
    if (ready) return Promise.resolve(ready);
    let pending = this.converting[coding];
    if (!pending) {
      const source = this.variants[this.coding]!.body;
      // The decoded size is bounded too: a small gzip body must not expand into unbounded memory.
      const made = coding === 'identity' ? gunzipAsync(source, { maxOutputLength: Math.min(maxBytes, 2 ** 32) }) : gzipAsync(source);
      pending = made.then((body) => {
        const variant = this.makeVariant(coding, body);
        this.variants[coding] = variant;
        delete this.converting[coding];
        return variant;
      });
      pending.catch(() => delete this.converting[coding]);
      this.converting[coding] = pending;
    }
    return pending;
  }
}
