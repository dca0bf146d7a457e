/**
 * The messages between a cluster primary and its workers, and their checks. A message is
 * parsed, never cast: one that does not match is refused with a log line (issue 8, defect 11),
 * and a record inside one is the record codec's bytes (stored-record.ts), decoded and checked
 * as a disk file or a Redis value would be.
 */
import { z } from 'zod';
import type { CacheEvent } from '../cache/event-bus.js';
import type { Representation } from '../cache/representation.js';
import type { ProfileNews } from '../cache/upstream-profile.js';
import { decodeRecord, encodeRecord, type StoredRecord } from '../cache/stored-record.js';
import { PROXY_ERROR_CODES } from '../errors.js';

const id = z.number().int().nonnegative();
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes');
const selection = z.strictObject({ route: z.string().optional(), path: z.string().optional(), query: z.string().optional() });
const representation = z.string().regex(/^(text|openmetrics|protobuf|(text|openmetrics);[0-9.]+(;[a-z0-9-]+)?|accept:.*)$/s) as unknown as z.ZodType<Representation>;

/** A fill's target as it crosses: the route by name, the primary looks up its own. */
export const wireTarget = z.strictObject({
  route: z.string(),
  path: z.string(),
  query: z.string(),
  representation,
  accept: z.string().optional(),
});
export type WireTarget = z.infer<typeof wireTarget>;

const wireEvent = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('stored'), key: z.string(), record: bytes.optional(), asked: z.string().optional() }),
  z.strictObject({ type: z.literal('failed'), key: z.string(), fwdStatus: z.union([z.number(), z.string()]), retryAt: z.number() }),
  z.strictObject({ type: z.literal('invalidated'), selection, soft: z.boolean().optional() }),
]);
type WireEvent = z.infer<typeof wireEvent>;

const knowledge = z.union([z.literal(0), z.literal(1), z.literal(2)]);
/** What the primary learned of one upstream (upstream-profile.ts): every worker plans with it. */
const profileNews = z.strictObject({
  route: z.string(),
  fingerprint: z.string(),
  path: z.string(),
  protobuf: knowledge,
  openmetrics: knowledge,
  escaping: knowledge,
  aliases: z.array(z.tuple([representation, representation])).max(16),
  expiresAt: z.number(),
}) satisfies z.ZodType<ProfileNews>;

const toPrimary = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('fill'), id, target: wireTarget }),
  z.strictObject({ t: z.literal('answer'), id, value: z.unknown() }),
  z.strictObject({ t: z.literal('ready'), scrape: z.string() }),
  z.strictObject({ t: z.literal('config?') }),
  z.strictObject({ t: z.literal('reloaded'), id, error: z.string().optional() }),
  /** The scrape listener's GET /metrics in a worker: the group's metrics, which only the primary gathers. */
  z.strictObject({ t: z.literal('metrics?'), id }),
  /** A worker applied the invalidation sent with this id: its copies are gone (or stale, soft). */
  z.strictObject({ t: z.literal('applied'), id }),
  /** A starting worker asks for every profile the primary holds. */
  z.strictObject({ t: z.literal('profiles?') }),
]);
export type ToPrimary = z.infer<typeof toPrimary>;

const toWorker = z.discriminatedUnion('t', [
  /** `confirm`: an invalidation the primary's admin answer waits for; the worker says `applied` with this id once done. */
  z.strictObject({ t: z.literal('event'), event: wireEvent, confirm: id.optional() }),
  /** Profiles the primary learned (`whole`: all it holds, the answer to `profiles?`). */
  z.strictObject({ t: z.literal('profiles'), list: z.array(profileNews).max(1_000_000), whole: z.boolean().optional() }),
  /**
   * The answer to a fill. A stored record came just before in its `stored` event (IPC keeps
   * order), so it is not sent again: the body crosses once. A record only the asker needs (a
   * copy the primary held, or an answer not stored) comes here.
   */
  z.strictObject({ t: z.literal('filled'), id, stored: z.boolean(), via: z.enum(['joined', 'held']).optional(), record: bytes.optional() }),
  z.strictObject({ t: z.literal('failed'), id, code: z.enum(PROXY_ERROR_CODES), message: z.string() }),
  /** The config text the primary applied: workers never read proxy.yaml themselves. */
  z.strictObject({ t: z.literal('config'), source: z.string() }),
  z.strictObject({ t: z.literal('reload'), id, source: z.string() }),
  /** `keys` (with hits): only these keys' counts, for one page of a listing (issue 21). */
  z.strictObject({ t: z.literal('ask'), id, what: z.enum(['metrics', 'hits', 'fetches']), keys: z.array(z.string()).max(10_000).optional() }),
  z.strictObject({ t: z.literal('metrics'), id, contentType: z.string(), text: z.string() }),
  z.strictObject({ t: z.literal('shutdown') }),
]);
export type ToWorker = z.infer<typeof toWorker>;

/** The message, or the reason it is refused. */
export function parseToPrimary(message: unknown): ToPrimary | string {
  const parsed = toPrimary.safeParse(message);
  return parsed.success ? parsed.data : z.prettifyError(parsed.error);
}

export function parseToWorker(message: unknown): ToWorker | string {
  const parsed = toWorker.safeParse(message);
  return parsed.success ? parsed.data : z.prettifyError(parsed.error);
}

/** A hits answer: [key, hits] pairs. */
export const hitsAnswer = z.array(z.tuple([z.string(), z.number().int().nonnegative()]));
/** A last-fetches answer: [route, LastFetch] pairs (see last-fetch.ts). */
export const fetchesAnswer = z.array(
  z.tuple([z.string(), z.strictObject({ code: z.string(), seconds: z.number(), at: z.number(), error: z.string().optional() })]),
);
/** A metrics answer: prom-client's getMetricsAsJSON(). */
export const metricsAnswer = z.array(z.looseObject({ name: z.string(), type: z.string(), values: z.array(z.unknown()) }));

export function encodeEvent(event: CacheEvent): WireEvent {
  if (event.type !== 'stored') return event;
  const asked = event.asked === undefined ? {} : { asked: event.asked };
  return event.record ? { type: 'stored', key: event.key, record: encodeRecord(event.record), ...asked } : { type: 'stored', key: event.key, ...asked };
}

/** The event, its record decoded and checked (throws RecordError). */
export function decodeEvent(event: WireEvent): CacheEvent {
  if (event.type !== 'stored') {
    if (event.type === 'invalidated') {
      const sel: { route?: string; path?: string; query?: string } = {};
      if (event.selection.route !== undefined) sel.route = event.selection.route;
      if (event.selection.path !== undefined) sel.path = event.selection.path;
      if (event.selection.query !== undefined) sel.query = event.selection.query;
      return event.soft === undefined ? { type: 'invalidated', selection: sel } : { type: 'invalidated', selection: sel, soft: event.soft };
    }
    return event;
  }
  const asked = event.asked === undefined ? {} : { asked: event.asked };
  if (!event.record) return { type: 'stored', key: event.key, ...asked };
  const record: StoredRecord = decodeRecord(event.record);
  if (record.key !== event.key) throw new Error(`stored event for ${JSON.stringify(event.key)} carries a record for ${JSON.stringify(record.key)}`);
  return { type: 'stored', key: event.key, record, ...asked };
}
