/**
 * One cached scrape: the whole upstream 200 (headers less hop-by-hop ones, body) and the bytes
 * ready to write for each content coding. The coding the upstream sent is kept as is; the other
 * one is made at most once per entry, when a client first needs it (SPEC 3.2).
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { decodeFamilies, renderFamilies, type WireFormat } from '../expfmt/index.js';
import { softTimes } from './freshness.js';
import { answerContentType, parseWireContentType, type Answer, type WireAnswer } from './negotiate.js';
import { admits, type Coding, type Representation } from './representation.js';
import { RECORD_VERSION, type StoredRecord } from './stored-record.js';

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

const wires = new Map<string, WireAnswer | undefined>();

/** parseWireContentType, one (frozen) answer per Content-Type value shared by every entry with it; bounded like intern. */
function wireOf(contentType: string): WireAnswer | undefined {
  if (wires.has(contentType)) return wires.get(contentType);
  const parsed = parseWireContentType(contentType);
  if (wires.size >= INTERN_MAX) wires.clear();
  wires.set(contentType, parsed && Object.freeze(parsed));
  return parsed;
}

/** The bytes and header list to write for one coding. */
export interface Variant {
  body: Buffer;
  /** Flat header list for writeHead, less Age and Cache-Status which change per request. */
  head: string[];
  /** The whole header block of a hit, kept while Age and ttl stay (they change once a second). */
  hit?: { age: number; ttl: number; head: string[] } | undefined;
  /** Age in seconds at the variant's last hit: whether the key is hot enough to keep `hit` (server/respond.ts). */
  lastHitAge?: number;
  /** Appended to Cache-Status: for a rendering, what it was rendered from. */
  detail?: string;
}

/** One rendering of a protobuf entry (SPEC 3.2): the answer it stands for and its bytes per coding. */
interface Rendering {
  answer: Answer;
  variants: Partial<Record<Coding, Variant>>;
  making: Partial<Record<Coding, Promise<Variant>>>;
}

/** The key of a rendering: kind, version and escaping of the answer it stands for. */
export function renderingKey(answer: Answer): string {
  return `${answer.kind};${answer.version};${answer.escaping}`;
}

function wireFormatOf(answer: Answer): WireFormat {
  switch (answer.kind) {
    case 'protobuf':
      return { kind: 'protobuf', escaping: answer.escaping };
    case 'openmetrics':
      return { kind: 'openmetrics', version: answer.version === '1.0.0' ? '1.0.0' : '0.0.1', escaping: answer.escaping };
    default:
      return { kind: 'text', version: '0.0.4', escaping: answer.escaping };
  }
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
  readonly staleFrom: number | undefined;
  readonly softUntil: number | undefined;
  /** The last Accept header found to admit contentType: scrapers repeat theirs, so most checks are one compare. */
  private admittedAccept: string | undefined;
  private readonly variants: Partial<Record<Coding, Variant>> = {};
  /** The conversion in flight, made at most once per coding; created on the first one (most entries never convert). */
  private converting: Partial<Record<Coding, Promise<Variant>>> | undefined;
  private headerBytes: number;
  /** What the upstream's Content-Type says this is; undefined for anything not a metrics format. */
  readonly wire: WireAnswer | undefined;
  /** Renderings of a protobuf entry, made once each when a client first needs one (or at fill). */
  private renderings: Map<string, Rendering> | undefined;

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
    this.wire = record.status === 200 ? wireOf(contentType) : undefined;
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
    const withLength = this.status !== 204 && this.status !== 304;
    const tail = withLength ? ['Content-Length', String(body.length), 'Vary', 'Accept, Accept-Encoding'] : ['Vary', 'Accept, Accept-Encoding'];
    if (coding === 'gzip') tail.push('Content-Encoding', 'gzip');
    // concat makes the list at its final length (and packed): one grown by push keeps its spare
    // slots for as long as the entry lives (about 150 bytes an entry, issue 21).
    const head = this.headers.concat(tail);
    return { body, head };
  }

  /**
   * This entry softly invalidated at `at` (stale from then, or from an earlier one; servable while
   * refetched), as a new entry: the one a store holds is never changed. The new one shares the
   * body, the header lists and the renditions made so far (they describe the same bytes).
   */
  softlyStale(at: number, timeoutMs: number): StoredResponse {
    const marked: StoredResponse = Object.create(StoredResponse.prototype);
    return Object.assign(marked, this, softTimes(this, at, timeoutMs));
  }

  /** Bytes held for this entry: every body made so far, headers and key. */
  get bytes(): number {
    let n = OVERHEAD_BYTES + this.key.length * 2 + this.headerBytes * 2 + (this.accept?.length ?? 0);
    for (const v of Object.values(this.variants)) n += v.body.length;
    for (const r of this.renderings?.values() ?? []) for (const v of Object.values(r.variants)) n += v.body.length + OVERHEAD_BYTES / 4;
    return n;
  }

  /** Whether this entry is an upstream protobuf answer that other answers are rendered from. */
  get isSource(): boolean {
    return this.wire?.kind === 'protobuf';
  }

  /**
   * Whether `answer` is this entry's own body: the protobuf it holds, with its names as the
   * upstream wrote them (an upstream without an escaping term writes classic names only).
   */
  isItself(answer: Answer): boolean {
    return answer.kind === 'protobuf' && (this.wire?.escaping === undefined || this.wire.escaping === answer.escaping);
  }

  /** A rendering made already, for the hit path. */
  rendered(key: string, coding: Coding): Variant | undefined {
    return this.renderings?.get(key)?.variants[coding];
  }

  /** The renderings held, as `kind;version;escaping` (for /cache, the status page and the fetch log). */
  renderingKeys(): string[] {
    return this.renderings ? [...this.renderings.keys()] : [];
  }

  /** The answers rendered so far, for rendering a refreshed entry the same way at fill. */
  renderedAnswers(): Answer[] {
    return this.renderings ? [...this.renderings.values()].map((r) => r.answer) : [];
  }

  /**
   * Renders `answer` from this protobuf entry once, in `coding`; concurrent callers share the
   * work. Rejects with ExpfmtError when the body does not decode or cannot be written in that
   * format, and on a corrupt or oversized gzip body as convert does.
   */
  render(answer: Answer, coding: Coding, maxBytes = Infinity): Promise<Variant> {
    const key = renderingKey(answer);
    this.renderings ??= new Map();
    let r = this.renderings.get(key);
    if (!r) this.renderings.set(key, (r = { answer, variants: {}, making: {} }));
    const ready = r.variants[coding];
    if (ready) return Promise.resolve(ready);
    let pending = r.making[coding];
    if (!pending) {
      const rendering = r;
      pending = (coding === 'identity' ? this.renderIdentity(rendering, maxBytes) : this.render(answer, 'identity', maxBytes).then((plain) => gzipAsync(plain.body)))
        .then((body) => (rendering.variants[coding] ??= this.makeRendering(rendering.answer, coding, body)))
        .finally(() => delete rendering.making[coding]);
      r.making[coding] = pending;
      // Nothing is kept of a rendering that failed: the next client tries again (and fails the same way).
      pending.catch(() => {
        if (Object.keys(rendering.variants).length === 0 && this.renderings?.get(key) === rendering) this.renderings.delete(key);
      });
    }
    return pending;
  }

  private async renderIdentity(rendering: Rendering, maxBytes: number): Promise<Buffer> {
    const source = this.variants.identity?.body ?? (await gunzipAsync(this.body, { maxOutputLength: Math.min(maxBytes, 2 ** 32) }));
    return renderFamilies(decodeFamilies(source), wireFormatOf(rendering.answer), source);
  }

  private makeRendering(answer: Answer, coding: Coding, body: Buffer): Variant {
    const contentType = answerContentType(answer, this.wire?.escaping !== undefined);
    const head: string[] = [];
    for (let i = 0; i < this.headers.length; i += 2) {
      const name = this.headers[i]!;
      head.push(name, name.toLowerCase() === 'content-type' ? contentType : this.headers[i + 1]!);
    }
    head.push('Content-Length', String(body.length), 'Vary', 'Accept, Accept-Encoding');
    if (coding === 'gzip') head.push('Content-Encoding', 'gzip');
    return { body, head, detail: `; detail="rendered from protobuf"` };
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
