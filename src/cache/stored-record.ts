/**
 * The stored record: one cached scrape as plain data, and its one codec. The same bytes cross
 * between cluster processes, sit in a disk file and are a Redis value, so a record is decoded
 * and checked in one place whichever way it came (issue 9).
 *
 * Times are data (epoch milliseconds), fixed when the record was fetched: a ttl changed by a
 * reload applies from the next fill, and a reader needs no Route to judge freshness.
 *
 * Encoding (all integers big-endian):
 *
 *     magic "SCRC" | u16 version | u32 meta length | meta (UTF-8 JSON) | f64 body length | body | u32 crc32
 *
 * Why this shape: the body is raw bytes (no base64, no JSON escaping), so encoding is one copy
 * and decoding is none (the body is a view of the input). The small JSON meta keeps the fields
 * readable with `head -c` and lets a field be added without a new layout. The version comes
 * right after the magic, so a file of another version is told apart from a corrupt one before
 * anything else is read; the CRC-32 over everything before it (zlib.crc32, native) catches a
 * truncated write, a torn page or random bytes, so nothing decodes to a wrong body.
 */
import { crc32 } from 'node:zlib';
import { cacheKey } from './key.js';
import type { Coding, Representation } from './representation.js';

export const RECORD_VERSION = 1;

const MAGIC = Buffer.from('SCRC', 'latin1');
const FIXED_BYTES = 4 + 2 + 4 + 8 + 4;

export interface StoredRecord {
  readonly version: number;
  /** cacheKey(route, path, query, representation). */
  readonly key: string;
  readonly route: string;
  readonly path: string;
  /** Canonical query (see canonicalQuery). */
  readonly query: string;
  readonly representation: Representation;
  /** The Accept header the fill sent upstream; refreshes send it again. */
  readonly accept: string | undefined;
  /**
   * How the route fetched it (Route.recordFingerprint): upstream, extra headers, format and the
   * identity it authenticates as, hashed; never a secret. A record whose route now fetches
   * differently is not served.
   */
  readonly fingerprint: string;
  readonly status: number;
  /** The coding of body as the upstream sent it. */
  readonly coding: Coding;
  /** Stored upstream headers, flat [name, value, ...], less hop-by-hop and per-request ones. */
  readonly headers: readonly string[];
  readonly body: Uint8Array;
  /** When the upstream fetch completed. */
  readonly fetchedAt: number;
  /** End of freshness (fetchedAt + ttl). */
  readonly staleAt: number;
  /** End of stale-while-revalidate. */
  readonly revalidateUntil: number;
  /** End of stale-if-error. */
  readonly errorUntil: number;
  /** Past this no window can serve it: max(revalidateUntil, errorUntil). A second level expires it then. */
  readonly deadAt: number;
  /**
   * Set by a soft invalidation (SPEC 4 `soft`, see softTimes in freshness.ts), and written where
   * the record lives (issue 17 #6): stale from staleFrom, served while refetched until softUntil.
   */
  readonly staleFrom?: number | undefined;
  readonly softUntil?: number | undefined;
}

/** Until when some window (or a soft invalidation's refetch) can still serve a record: a second level keeps it that long. */
export function servableUntil(record: Pick<StoredRecord, 'deadAt' | 'softUntil'>): number {
  return record.softUntil !== undefined && record.softUntil > record.deadAt ? record.softUntil : record.deadAt;
}

/** A route's windows, as configured (see Route). */
export interface WindowPolicy {
  ttlMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
}

/** The record times for a fetch completed at fetchedAt under a route's windows. */
export function recordTimes(fetchedAt: number, policy: WindowPolicy): Pick<StoredRecord, 'fetchedAt' | 'staleAt' | 'revalidateUntil' | 'errorUntil' | 'deadAt'> {
  const staleAt = fetchedAt + policy.ttlMs;
  const revalidateUntil = staleAt + policy.staleWhileRevalidateMs;
  const errorUntil = staleAt + policy.staleIfErrorMs;
  return { fetchedAt, staleAt, revalidateUntil, errorUntil, deadAt: Math.max(revalidateUntil, errorUntil) };
}

export type RecordErrorReason = 'truncated' | 'foreign' | 'version' | 'corrupt';

/** A byte string that is not a record this build can read. `reason` says which way. */
export class RecordError extends Error {
  constructor(
    readonly reason: RecordErrorReason,
    message: string,
  ) {
    super(message);
  }
}

type Meta = Omit<StoredRecord, 'body' | 'version' | 'accept' | 'staleFrom' | 'softUntil'> & { accept?: string; staleFrom?: number; softUntil?: number };

/** The record as bytes: one allocation, the body copied once. */
export function encodeRecord(record: StoredRecord): Buffer {
  const meta: Meta = {
    key: record.key,
    route: record.route,
    path: record.path,
    query: record.query,
    representation: record.representation,
    fingerprint: record.fingerprint,
    status: record.status,
    coding: record.coding,
    headers: record.headers,
    fetchedAt: record.fetchedAt,
    staleAt: record.staleAt,
    revalidateUntil: record.revalidateUntil,
    errorUntil: record.errorUntil,
    deadAt: record.deadAt,
  };
  if (record.accept !== undefined) meta.accept = record.accept;
  if (record.staleFrom !== undefined) meta.staleFrom = record.staleFrom;
  if (record.softUntil !== undefined) meta.softUntil = record.softUntil;
  const metaText = JSON.stringify(meta);
  const metaBytes = Buffer.byteLength(metaText);
  const out = Buffer.allocUnsafe(FIXED_BYTES + metaBytes + record.body.length);
  let at = MAGIC.copy(out, 0);
  at = out.writeUInt16BE(RECORD_VERSION, at);
  at = out.writeUInt32BE(metaBytes, at);
  at += out.write(metaText, at, 'utf8');
  at = out.writeDoubleBE(record.body.length, at);
  at += Buffer.from(record.body.buffer, record.body.byteOffset, record.body.byteLength).copy(out, at);
  out.writeUInt32BE(crc32(out.subarray(0, at)), at);
  return out;
}

/** Whether bytes start as a record does (magic and version, or as many of them as there are): the rest is worth reading. */
export function isRecordStart(head: Uint8Array): boolean {
  const n = Math.min(4, head.length);
  return Buffer.from(head.buffer, head.byteOffset, n).equals(MAGIC.subarray(0, n));
}

/**
 * The record in bytes made by encodeRecord. The body is a view of `bytes`, not a copy. Throws
 * RecordError for anything else: too short, not a record, another version, a checksum or field
 * that does not hold.
 */
export function decodeRecord(bytes: Uint8Array): StoredRecord {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 6) {
    const n = Math.min(4, buf.length);
    throw new RecordError(MAGIC.subarray(0, n).equals(buf.subarray(0, n)) ? 'truncated' : 'foreign', `record of ${buf.length} bytes`);
  }
  if (!buf.subarray(0, 4).equals(MAGIC)) throw new RecordError('foreign', 'not a scrapecache record');
  const version = buf.readUInt16BE(4);
  if (version !== RECORD_VERSION) throw new RecordError('version', `record version ${version}, this build reads ${RECORD_VERSION}`);
  if (buf.length < FIXED_BYTES) throw new RecordError('truncated', `record of ${buf.length} bytes`);
  const metaBytes = buf.readUInt32BE(6);
  const bodyAt = 10 + metaBytes + 8;
  if (buf.length < bodyAt + 4) throw new RecordError('truncated', `record of ${buf.length} bytes, meta of ${metaBytes}`);
  const bodyBytes = buf.readDoubleBE(10 + metaBytes);
  if (!Number.isSafeInteger(bodyBytes) || bodyBytes < 0) throw new RecordError('corrupt', 'bad body length');
  const end = bodyAt + bodyBytes;
  if (buf.length < end + 4) throw new RecordError('truncated', `record of ${buf.length} bytes, expected ${end + 4}`);
  if (buf.length > end + 4) throw new RecordError('corrupt', `record of ${buf.length} bytes, expected ${end + 4}`);
  if (crc32(buf.subarray(0, end)) !== buf.readUInt32BE(end)) throw new RecordError('corrupt', 'checksum mismatch');
  let meta: unknown;
  try {
    meta = JSON.parse(buf.toString('utf8', 10, 10 + metaBytes));
  } catch {
    throw new RecordError('corrupt', 'meta is not JSON');
  }
  return checkRecord({ ...(meta as object), version, body: buf.subarray(bodyAt, end) });
}

/** Headers that describe one connection or one encoding, never the stored resource (RFC 9110 7.6.1). */
export const UNSTORED_HEADERS: ReadonlySet<string> = new Set([
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

/** Upstream headers worth storing, as a flat [name, value, ...] list (what a filler puts in a record). */
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
    if (UNSTORED_HEADERS.has(lower) && !(keepEncoding && lower === 'content-encoding')) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}

/** RFC 9110 5.1 token: a header name. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 9110 5.5 field value as node writes it: no CR, LF or NUL (node refuses those with a throw). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Whether a header list is one the proxy can write as it is (issue 17 #12): names that are tokens,
 * values without CR, LF or NUL, and nothing the proxy sets itself or never stores (framing,
 * per-connection, Set-Cookie; Content-Encoding only on a record passed on with a coding the proxy
 * cannot convert). A record planted in a second level by another writer is checked the same way.
 */
function writableHeaders(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const lower = name.toLowerCase();
    if (!TOKEN.test(name) || !FIELD_VALUE.test(headers[i + 1]!)) return false;
    if (UNSTORED_HEADERS.has(lower) && lower !== 'content-encoding') return false;
  }
  return true;
}

const CODINGS = new Set(['gzip', 'identity']);
const REPRESENTATION = /^(text|openmetrics|protobuf|(text|openmetrics);[0-9.]+(;[a-z0-9-]+)?|accept:.*)$/s;

/**
 * The value as a StoredRecord, or RecordError naming the first field that does not hold. For
 * records that come as plain data (structured clone), not as bytes.
 */
export function checkRecord(value: unknown): StoredRecord {
  const bad = (field: string): never => {
    throw new RecordError('corrupt', `record field ${field} is missing or malformed`);
  };
  if (value === null || typeof value !== 'object') return bad('(record)');
  const v = value as Record<string, unknown>;
  if (v['version'] !== RECORD_VERSION) throw new RecordError('version', `record version ${String(v['version'])}, this build reads ${RECORD_VERSION}`);
  for (const f of ['key', 'route', 'path', 'query', 'fingerprint'] as const) if (typeof v[f] !== 'string') bad(f);
  if (typeof v['representation'] !== 'string' || !REPRESENTATION.test(v['representation'])) bad('representation');
  if (v['accept'] !== undefined && typeof v['accept'] !== 'string') bad('accept');
  // No 1xx: an interim answer would leave the client waiting for the final one.
  if (!Number.isInteger(v['status']) || (v['status'] as number) < 200 || (v['status'] as number) > 599) bad('status');
  if (typeof v['coding'] !== 'string' || !CODINGS.has(v['coding'])) bad('coding');
  const headers = v['headers'];
  if (!Array.isArray(headers) || headers.length % 2 !== 0 || !headers.every((h) => typeof h === 'string') || !writableHeaders(headers as string[])) bad('headers');
  if (!(v['body'] instanceof Uint8Array)) bad('body');
  const times = ['fetchedAt', 'staleAt', 'revalidateUntil', 'errorUntil', 'deadAt'] as const;
  for (const f of times) if (typeof v[f] !== 'number' || !Number.isFinite(v[f])) bad(f);
  for (const f of ['staleFrom', 'softUntil'] as const) if (v[f] !== undefined && (typeof v[f] !== 'number' || !Number.isFinite(v[f]))) bad(f);
  const t = v as unknown as StoredRecord;
  if (t.key !== cacheKey(t.route, t.path, t.query, t.representation)) bad('key');
  if (t.staleAt < t.fetchedAt || t.revalidateUntil < t.staleAt || t.errorUntil < t.staleAt || t.deadAt !== Math.max(t.revalidateUntil, t.errorUntil)) {
    bad('times');
  }
  const record: StoredRecord = {
    version: RECORD_VERSION,
    key: t.key,
    route: t.route,
    path: t.path,
    query: t.query,
    representation: t.representation,
    accept: t.accept,
    fingerprint: t.fingerprint,
    status: t.status,
    coding: t.coding,
    headers: t.headers,
    body: t.body,
    fetchedAt: t.fetchedAt,
    staleAt: t.staleAt,
    revalidateUntil: t.revalidateUntil,
    errorUntil: t.errorUntil,
    deadAt: t.deadAt,
  };
  if (t.staleFrom !== undefined || t.softUntil !== undefined) return { ...record, staleFrom: t.staleFrom, softUntil: t.softUntil };
  return record;
}
