/**
 * Where a fill is stored when the upstream answers otherwise than planned (SPEC 3.2): under the
 * key of what it answered. And where a process looks for such an answer before fetching: the
 * keys it learned (AnsweredKeys), and those every process that has not learned the upstream yet
 * would store under (answeredKeys).
 */
import { cacheKey, representationOfKey, withRepresentation } from './key.js';
import type { StoredRecord } from './stored-record.js';
import { answerCandidates, representationOfContentType, SOURCE, SOURCE_ACCEPT } from './upstream-profile.js';

const PROBE_PREFIX = `${SOURCE_ACCEPT},`;
/** Bounds the memo: a handful per key in practice (one per distinct Accept of a first fill). */
const MAX_ANSWERED_AS = 10_000;

/**
 * Keys whose fill the upstream answered with another representation, per Accept sent: a protobuf
 * request answered with text, say. A later miss of the same key and Accept is that entry while it
 * is fresh, not another fetch.
 */
export class AnsweredKeys {
  private readonly answeredAs = new Map<string, string>();

  remember(key: string, accept: string | undefined, answeredKey: string): void {
    if (this.answeredAs.size >= MAX_ANSWERED_AS) this.answeredAs.clear();
    this.answeredAs.set(`${key}\n${accept ?? ''}`, answeredKey);
  }

  /** The keys that may hold the answer to a miss of `key` with this Accept, learned one first. */
  candidates(key: string, accept: string | undefined): string[] {
    const learned = this.answeredAs.size === 0 ? undefined : this.answeredAs.get(`${key}\n${accept ?? ''}`);
    const others = answeredKeys(key, accept);
    return learned === undefined ? others : [learned, ...others];
  }
}

/**
 * Keys a fill of `key` with this Accept is stored under when the upstream answers otherwise than
 * planned, as every process that has not yet learned the upstream plans it: a protobuf probe
 * (SOURCE_ACCEPT, then the client's own Accept) answered without protobuf goes under the client's
 * answer; a text or OpenMetrics request with an escaping term, answered without one, under the
 * key without it. A process that finds them held (loaded from disk, stored by another replica,
 * asked by a new worker) needs no fetch of its own.
 */
export function answeredKeys(key: string, accept: string | undefined): string[] {
  const representation = representationOfKey(key);
  if (representation === SOURCE) {
    if (!accept?.startsWith(PROBE_PREFIX)) return [];
    return answerCandidates(accept.slice(PROBE_PREFIX.length)).map((r) => withRepresentation(key, r));
  }
  const escaped = /^((?:text|openmetrics);[^;]+);[a-z0-9-]+$/.exec(representation);
  return escaped ? [withRepresentation(key, escaped[1] as `text;${string}`)] : [];
}

/**
 * The record under the key of what the upstream actually answered (SPEC 3.2): a protobuf answer
 * is the source entry whatever was planned, a text or OpenMetrics answer the entry of that
 * format, version and escaping. Errors and exact-Accept entries keep the key they were fetched for.
 */
export function asAnswered(record: StoredRecord): StoredRecord {
  if (record.status !== 200 || record.representation.startsWith('accept:')) return record;
  let contentType: string | undefined;
  for (let i = 0; i < record.headers.length; i += 2) if (record.headers[i]!.toLowerCase() === 'content-type') contentType = record.headers[i + 1];
  const representation = representationOfContentType(contentType);
  if (representation === undefined || representation === record.representation) return record;
  return { ...record, representation, key: cacheKey(record.route, record.path, record.query, representation) };
}
