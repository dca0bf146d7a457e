/**
 * Where things live in Redis, under cache.redis.key_prefix: records at `<prefix>e:<key>`, fill
 * leases at `<prefix>l:<key>`, events on the channel `<prefix>events`. The cache key keeps its
 * route\0path\0query\0representation shape, so that an invalidation selection is a SCAN pattern.
 */
import { parseKey } from '../key.js';
import type { EntrySelection } from '../store.js';

export const recordKey = (prefix: string, key: string): string => `${prefix}e:${key}`;
export const leaseKey = (prefix: string, key: string): string => `${prefix}l:${key}`;
export const eventChannel = (prefix: string): string => `${prefix}events`;
export const ackChannel = (prefix: string, instance: string): string => `${prefix}acks:${instance}`;

/** Redis glob metacharacters, escaped so that a path or query matches only itself. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * A SCAN MATCH pattern for the records (kind `e`) and leases (`l`) a selection names. It may
 * match more than the selection (a path without a route); callers check each key with selects().
 */
export function selectionPattern(prefix: string, selection: EntrySelection): string {
  const parts = [selection.route, selection.path, selection.query].map((p) => (p === undefined ? undefined : escapeGlob(p)));
  let tail = '';
  let open = false;
  for (const part of parts) {
    if (part === undefined) {
      open = true;
      continue;
    }
    tail += open ? `*\0${part}\0` : `${part}\0`;
    open = false;
  }
  return `${escapeGlob(prefix)}[el]:${tail}*`;
}

/** The route, path and query of a Redis key made by recordKey or leaseKey. */
export function identityOf(prefix: string, redisKey: string): { kind: 'e' | 'l'; key: string; route: string; path: string; query: string } | undefined {
  if (!redisKey.startsWith(prefix)) return undefined;
  const kind = redisKey[prefix.length];
  if ((kind !== 'e' && kind !== 'l') || redisKey[prefix.length + 1] !== ':') return undefined;
  const key = redisKey.slice(prefix.length + 2);
  const parts = parseKey(key);
  if (!parts) return undefined;
  return { kind, key, route: parts.route, path: parts.path, query: parts.query };
}
