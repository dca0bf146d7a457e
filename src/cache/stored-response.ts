/**
 * One cached scrape: the whole upstream 200 (headers less hop-by-hop ones, body) and the bytes
 * ready to write for each content coding. The coding the upstream sent is kept as is; the other
 * one is made at most once per entry, when a client first needs it (SPEC 3.2).
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { softTimes } from './freshness.js';
import { admits, type Coding, type Representation } from './representation.js';
import { RECORD_VERSION, UNSTORED_HEADERS, type StoredRecord } from './stored-record.js';

const gunzipAsync = promisify(gunzip);

/** Header values that are the same for many entries (the others, Date for one, are not worth a lookup). */
const REPEATED_VALUES = new Set(['content-type', 'content-encoding', 'cache-control', 'x-content-type-options']);
const INTERN_MAX = 10_000;
const interned = new Map<string, string>();

/** The one copy of a string that many entries hold; bounded, so that odd values cannot grow it without end. */
function intern(text: string): string {
  const held = interned.get(text);
  if (held !== undefined) return held;
  if (interned.size >= INTERN_MAX) interned.clear();
  interned.set(text, text);
  return text;
}
const gzipAsync = promisify(gzip);

const DROPPED = UNSTORED_HEADERS;

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
  /** The whole header block of a hit, kept while Age and ttl stay (they change once a second). */
  hit?: { age: number; ttl: number; head: string[] };
}

/**
 * Bytes a stored response costs beyond its bodies, keys and header strings: the objects, the
 * header lists, the LRU's slot. Measured with 100 000 entries on Node 20 (about 1 KiB of heap
 * each), so that cache.max_bytes bounds what is really held.
 */
const OVERHEAD_BYTES = 1024;

/**
 * A StoredRecord as the memory level holds it: the record's fields, the per-process hit count,
 * and the variants ready to write. Records from a second level or another process become one
 * with fromRecord; the object is never shared with another store, so counting and converting
 * here touches nobody else's copy.
 */
export class StoredResponse implements StoredRecord {
  readonly version = RECORD_VERSION;
  readonly key: string;
  readonly route: string;
  readonly path: string;
  readonly query: string;
  readonly representation: Representation;
  readonly accept: string | undefined;
  readonly fingerprint: string;
  readonly status: number;
  readonly contentType: string;
  readonly coding: Coding;
  readonly headers: readonly string[];
  readonly fetchedAt: number;
  readonly staleAt: number;
  readonly revalidateUntil: number;
  readonly errorUntil: number;
  readonly deadAt: number;
  /** Set by a soft invalidation (SPEC 4 `soft`), here or where the record was read from: see softTimes in freshness.ts. */
  staleFrom: number | undefined;
  softUntil: number | undefined;
  hits = 0;
  /** The last Accept header found to admit contentType: scrapers repeat theirs, so most checks are one compare. */
  private admittedAccept: string | undefined;
  private readonly variants: Partial<Record<Coding, Variant>> = {};
  /** The conversion in flight, made at most once per coding; created on the first one (most entries never convert). */
  private converting: Partial<Record<Coding, Promise<Variant>>> | undefined;
  private headerBytes: number;

  private constructor(record: StoredRecord, body: Buffer) {
    this.key = record.key;
    // Records decoded from bytes (disk, Redis, another process) bring their own copy of every
    // string; the ones that repeat across entries are shared instead (issue 21: about 350 bytes
    // an entry).
    this.route = intern(record.route);
    this.path = intern(record.path);
    this.query = record.query;
    this.representation = intern(record.representation) as Representation;
    this.accept = record.accept === undefined ? undefined : intern(record.accept);
    this.fingerprint = intern(record.fingerprint);
    this.status = record.status;
    this.coding = record.coding;
    this.headers = record.headers.map((h, i) => (i % 2 === 0 || REPEATED_VALUES.has(record.headers[i - 1]!.toLowerCase()) ? intern(h) : h));
    this.fetchedAt = record.fetchedAt;
    this.staleAt = record.staleAt;
    this.revalidateUntil = record.revalidateUntil;
    this.errorUntil = record.errorUntil;
    this.deadAt = record.deadAt;
    this.staleFrom = record.staleFrom;
    this.softUntil = record.softUntil;
    let contentType = 'application/octet-stream';
    for (let i = 0; i < record.headers.length; i += 2) {
      if (record.headers[i]!.toLowerCase() === 'content-type') contentType = record.headers[i + 1]!;
    }
    this.contentType = contentType;
    this.headerBytes = record.headers.reduce((n, s) => n + s.length, 0);
    this.variants[record.coding] = this.makeVariant(record.coding, body);
  }

  /**
   * The memory form of a record; a StoredResponse passes as it is. A body that has its memory to
   * itself (an upstream fill's) is kept as it is; one that is a view into something larger (a
   * disk file with its header, a Redis reply, a message from another process, a slab of Node's
   * buffer pool) is copied out once, so that the entry does not keep the rest alive (issue 21:
   * records loaded or adopted cost twice the memory of filled ones without this).
   */
  static fromRecord(record: StoredRecord): StoredResponse {
    if (record instanceof StoredResponse) return record;
    const b = record.body;
    const whole = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
    if (whole) return new StoredResponse(record, Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    const own = Buffer.allocUnsafeSlow(b.byteLength);
    own.set(b);
    return new StoredResponse(record, own);
  }

  /** The body as the upstream sent it (the record's body). */
  get body(): Buffer {
    return this.variants[this.coding]!.body;
  }

  private makeVariant(coding: Coding, body: Buffer): Variant {
    // RFC 9110 8.6: no Content-Length on a 204; on a 304 it would describe the 200 this one replaces.
    const head = this.status === 204 || this.status === 304 ? [...this.headers] : [...this.headers, 'Content-Length', String(body.length)];
    head.push('Vary', 'Accept, Accept-Encoding');
    if (coding === 'gzip') head.push('Content-Encoding', 'gzip');
    return { body, head };
  }

  /** Soft invalidation at `at`: stale from then (or from an earlier one), servable while refetched. */
  markStale(at: number, timeoutMs: number): void {
    const soft = softTimes(this, at, timeoutMs);
    this.staleFrom = soft.staleFrom;
    this.softUntil = soft.softUntil;
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
    let pending = this.converting?.[coding];
    if (!pending) {
      const source = this.variants[this.coding]!.body;
      // The decoded size is bounded too: a small gzip body must not expand into unbounded memory.
      const made = coding === 'identity' ? gunzipAsync(source, { maxOutputLength: Math.min(maxBytes, 2 ** 32) }) : gzipAsync(source);
      pending = made.then((body) => {
        const variant = this.makeVariant(coding, body);
        this.variants[coding] = variant;
        delete this.converting?.[coding];
        return variant;
      });
      pending.catch(() => delete this.converting?.[coding]);
      (this.converting ??= {})[coding] = pending;
    }
    return pending;
  }
}
