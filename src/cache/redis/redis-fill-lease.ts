/**
 * The fill lease in Redis (SPEC 2.2): `SET <lease> <token> NX PX <ttl>`, released by a
 * compare-and-delete script, so that one replica fetches a key and a replica that dies holding
 * the lease costs one lease time, not a stuck key (nginx trac #880). While Redis is down the
 * lease is this process's own, as if no Redis were configured.
 *
 * The lease this process holds is remembered (heldToken), so that the Redis store can make the
 * fill's write conditional on still holding it.
 */
import { randomUUID } from 'node:crypto';
import { LocalFillLease, type FillLease } from '../fill-lease.js';
import { UNAVAILABLE, type RedisConnection } from './redis-connection.js';
import { leaseKey } from './redis-keys.js';

// KEYS[1] lease; ARGV[1] token. Deletes only the holder's own lease (a lapsed one may be another's now).
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

const LOCAL = 'local:';

export class RedisFillLease implements FillLease {
  private readonly local: LocalFillLease;
  /** Leases this process holds in Redis, so that a store can be made conditional on one. */
  private readonly held = new Map<string, string>();

  constructor(
    private readonly redis: RedisConnection,
    now: () => number = Date.now,
  ) {
    this.local = new LocalFillLease(now);
  }

  async acquire(key: string, ttlMs: number): Promise<string | undefined> {
    const token = randomUUID();
    const reply = await this.redis.call('lease', ['SET', leaseKey(this.redis.prefix, key), token, 'NX', 'PX', String(Math.max(1, Math.ceil(ttlMs)))]);
    if (reply === UNAVAILABLE) {
      const own = this.local.acquire(key, ttlMs);
      return own === undefined ? undefined : LOCAL + own;
    }
    if (reply === null) return undefined;
    this.held.set(key, token);
    return token;
  }

  async release(key: string, token: string): Promise<boolean> {
    if (token.startsWith(LOCAL)) return this.local.release(key, token.slice(LOCAL.length));
    if (this.held.get(key) === token) this.held.delete(key);
    const reply = await this.redis.call('release', ['EVAL', RELEASE, '1', leaseKey(this.redis.prefix, key), token]);
    // Redis gone: the lease lapses there by itself, and nothing says another took it.
    return reply === UNAVAILABLE || reply === 1;
  }

  /** The token of this process's Redis lease on a key, while it holds one. */
  heldToken(key: string): string | undefined {
    return this.held.get(key);
  }
}
