/**
 * The Redis level (SPEC 2.2): records shared by every replica, read through on a memory miss,
 * written on a fill. A record expires in Redis at its deadAt, when no stale window can use it.
 *
 * A write made while this process holds the key's fill lease is conditional on still holding
 * it (one script): an invalidation deletes the leases it selects, so a fill it overtook stores
 * nothing (Facebook's memcache leases).
 *
 * Redis down or slow: get answers undefined, set false, deletes 0, at once or within the
 * timeout (see RedisConnection); the caller goes on from memory.
 */
import type { Logger } from 'pino';
import { selects, type EntrySelection, type LevelStatus, type Store } from '../store.js';
import { decodeRecord, encodeRecord, RecordError, servableUntil, type StoredRecord } from '../stored-record.js';
import { UNAVAILABLE, type RedisConnection } from './redis-connection.js';
import type { RedisFillLease } from './redis-fill-lease.js';
import { identityOf, leaseKey, recordKey, selectionPattern } from './redis-keys.js';

// KEYS[1] record, KEYS[2] lease; ARGV[1] token, ARGV[2] bytes, ARGV[3] ms.
const SET_IF_LEASED = "if redis.call('GET', KEYS[2]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) else return false end";

const SCAN_COUNT = '500';
/** The status page's record count and memory figure are read at most this often. */
const COUNT_EVERY_MS = 10_000;
/** How long a status page waits for a count under way before it shows the last one. */
const COUNT_WAIT_MS = 250;

export class RedisStore implements Store {
  readonly name = 'redis';

  constructor(
    private readonly redis: RedisConnection,
    private readonly log: Logger,
    private readonly lease?: RedisFillLease,
    private readonly now: () => number = Date.now,
  ) {}

  async get(key: string): Promise<StoredRecord | undefined> {
    const reply = await this.redis.call('get', ['GET', recordKey(this.redis.prefix, key)]);
    if (reply === UNAVAILABLE || !Buffer.isBuffer(reply)) return undefined;
    let record: StoredRecord;
    try {
      record = decodeRecord(reply);
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      // Another build's record (a newer version during a rolling upgrade) or junk: not ours to serve.
      this.log.warn({ store: 'redis', key, reason: err.reason, err: err.message }, 'redis record skipped');
      if (err.reason !== 'version') await this.redis.call('delete', ['DEL', recordKey(this.redis.prefix, key)]);
      return undefined;
    }
    if (record.key !== key || servableUntil(record) <= this.now()) return undefined;
    return record;
  }

  async set(record: StoredRecord): Promise<boolean> {
    const ms = Math.ceil(servableUntil(record) - this.now());
    if (ms <= 0) return false;
    const bytes = encodeRecord(record);
    const token = this.lease?.heldToken(record.key);
    const prefix = this.redis.prefix;
    const reply =
      token === undefined
        ? await this.redis.call('set', ['SET', recordKey(prefix, record.key), bytes, 'PX', String(ms)])
        : await this.redis.call('set', ['EVAL', SET_IF_LEASED, '2', recordKey(prefix, record.key), leaseKey(prefix, record.key), token, bytes, String(ms)]);
    return reply !== UNAVAILABLE && reply !== null;
  }

  async delete(key: string): Promise<boolean> {
    const prefix = this.redis.prefix;
    const [record] = await Promise.all([
      this.redis.call('delete', ['DEL', recordKey(prefix, key)]),
      this.redis.call('delete', ['DEL', leaseKey(prefix, key)]),
    ]);
    return record === 1;
  }

  /**
   * Every selected record and the leases of the same keys (so that fills in flight for them
   * store nothing). SCAN, not an index: invalidation is rare and an index would need its own
   * expiry.
   */
  async deleteSelected(selection: EntrySelection): Promise<number> {
    const prefix = this.redis.prefix;
    const pattern = selectionPattern(prefix, selection);
    let cursor = '0';
    let deleted = 0;
    do {
      const reply = await this.redis.call('scan', ['SCAN', cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT]);
      if (reply === UNAVAILABLE) return deleted;
      const [next, keys] = reply as [Buffer, Buffer[]];
      cursor = String(next);
      const records: string[] = [];
      const leases: string[] = [];
      for (const raw of keys) {
        const id = identityOf(prefix, raw.toString('utf8'));
        if (!id || !selects(selection, id)) continue;
        (id.kind === 'e' ? records : leases).push(raw.toString('utf8'));
      }
      if (leases.length > 0) await this.redis.call('delete', ['DEL', ...leases]);
      if (records.length > 0) {
        const n = await this.redis.call('delete', ['DEL', ...records]);
        if (n === UNAVAILABLE) return deleted;
        deleted += n as number;
      }
    } while (cursor !== '0');
    return deleted;
  }

  private counted: { entries: number; bytes: number | undefined; at: number } | undefined;
  private counting: Promise<void> | undefined;

  /**
   * Up or down since when, the last failure, and (while up) the records under the key prefix,
   * counted with SCAN at most every 10 s and in the background, with the server's used_memory.
   */
  async status(): Promise<LevelStatus> {
    const state = this.redis.state();
    if (state.up && !this.counting && (this.counted === undefined || this.now() - this.counted.at >= COUNT_EVERY_MS)) {
      this.counting = this.count().finally(() => (this.counting = undefined));
    }
    if (this.counting) await Promise.race([this.counting, new Promise((r) => setTimeout(r, COUNT_WAIT_MS).unref())]);
    const counted = this.counted;
    return {
      name: this.name,
      where: this.redis.settings.url,
      ...state,
      ...(counted ? { entries: counted.entries, countedAt: counted.at, ...(counted.bytes !== undefined ? { bytes: counted.bytes } : {}) } : {}),
    };
  }

  private async count(): Promise<void> {
    const pattern = `${this.redis.prefix.replace(/[*?[\]\\]/g, '\\$&')}e:*`;
    let cursor = '0';
    let entries = 0;
    do {
      const reply = await this.redis.call('scan', ['SCAN', cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT]);
      if (reply === UNAVAILABLE) return;
      const [next, keys] = reply as [Buffer, Buffer[]];
      cursor = String(next);
      entries += keys.length;
    } while (cursor !== '0');
    const info = await this.redis.call('info', ['INFO', 'memory']);
    const used = info === UNAVAILABLE ? undefined : /^used_memory:(\d+)/m.exec(String(info))?.[1];
    this.counted = { entries, bytes: used === undefined ? undefined : Number(used), at: this.now() };
  }

  /** The connection belongs to whoever opened it (see openRedisLevel). */
  close(): void {}
}
