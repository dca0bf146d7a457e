/**
 * The fill lease in Redis (SPEC 2.2): `SET <lease> <token> NX PX <ttl>`, released by a
 * compare-and-delete script, so that one replica fetches a key and a replica that dies holding
 * the lease costs one lease time, not a stuck key (nginx trac #880). While Redis is down the
 * lease is this process's own, as if no Redis were configured.
 *
 * A failed fill turns its lease into a back-off hold until the retry time (holdFailure): the
 * others then serve what they have, or the failure, instead of fetching again, so a failing
 * upstream sees the retries of one replica however many there are.
 */
import { randomUUID } from 'node:crypto';
import { LocalFillLease, type FillLease } from '../fill-lease.js';
import { UNAVAILABLE, type RedisConnection } from './redis-connection.js';
import { leaseKey } from './redis-keys.js';

// KEYS[1] lease; ARGV[1] token. Deletes only the holder's own lease (a lapsed one may be another's now).
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
// KEYS[1] lease; ARGV[1] token, ARGV[2] back-off value, ARGV[3] ms. Replaces the holder's lease by the hold.
const HOLD = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) else return false end";

const LOCAL = 'local:';
const BACKOFF = 'backoff:';

/** Who holds a key's lease, seen by a replica that could not take it. */
export type LeaseHolder =
  | { kind: 'fill' }
  /** A failed fill's back-off: nobody fetches before retryAt. */
  | { kind: 'backoff'; retryAt: number; fwdStatus: number | string }
  /** Nobody (it lapsed or was released in between), or Redis cannot say. */
  | { kind: 'none' };

export class RedisFillLease implements FillLease {
  private readonly local: LocalFillLease;
  /** Leases this process holds in Redis, so that a store can be made conditional on one. */
  private readonly held = new Map<string, string>();

  constructor(
    private readonly redis: RedisConnection,
    private readonly now: () => number = Date.now,
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

  /**
   * A failed fill: its lease becomes a hold until retryAt, naming the failure. False when the
   * lease was no longer the holder's (invalidated, lapsed) or Redis is down; then it is released.
   */
  async holdFailure(key: string, token: string, retryAt: number, fwdStatus: number | string): Promise<boolean> {
    if (token.startsWith(LOCAL)) return this.local.release(key, token.slice(LOCAL.length));
    if (this.held.get(key) === token) this.held.delete(key);
    const ms = Math.max(1, Math.ceil(retryAt - this.now()));
    const value = `${BACKOFF}${retryAt}:${fwdStatus}`;
    const reply = await this.redis.call('lease', ['EVAL', HOLD, '1', leaseKey(this.redis.prefix, key), token, value, String(ms)]);
    return reply !== UNAVAILABLE && reply !== null;
  }

  /** What holds a key's lease: a fill in progress, or a failure's back-off. */
  async holder(key: string): Promise<LeaseHolder> {
    const reply = await this.redis.call('lease', ['GET', leaseKey(this.redis.prefix, key)]);
    if (reply === UNAVAILABLE || reply === null) return { kind: 'none' };
    const value = String(reply);
    if (!value.startsWith(BACKOFF)) return { kind: 'fill' };
    const [at, ...status] = value.slice(BACKOFF.length).split(':');
    const fwd = status.join(':');
    return { kind: 'backoff', retryAt: Number(at), fwdStatus: /^\d{3}$/.test(fwd) ? Number(fwd) : fwd };
  }

  /** The token of this process's Redis lease on a key, while it holds one. */
  heldToken(key: string): string | undefined {
    return this.held.get(key);
  }

  /** Whether a token is a Redis lease (not this process's own, taken while Redis was down). */
  static isShared(token: string): boolean {
    return !token.startsWith(LOCAL);
  }
}
