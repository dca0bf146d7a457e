/**
 * `cache.redis` opened: one connection pair and the store, lease and bus over it. Loaded with
 * a dynamic import only when the config has cache.redis, like node-redis itself.
 */
import type { Logger } from 'pino';
import type { RedisSettings } from '../../config/types.js';
import type { Metrics } from '../../metrics.js';
import { connectRedis, type RedisConnection } from './redis-connection.js';
import { RedisEventBus } from './redis-event-bus.js';
import { RedisFillLease } from './redis-fill-lease.js';
import { RedisStore } from './redis-store.js';

export interface RedisLevel {
  connection: RedisConnection;
  store: RedisStore;
  lease: RedisFillLease;
  bus: RedisEventBus;
  close(): Promise<void>;
}

export async function openRedisLevel(settings: RedisSettings, metrics: Metrics | undefined, log: Logger, now: () => number = Date.now): Promise<RedisLevel> {
  const connection = await connectRedis(settings, metrics, log, now);
  const lease = new RedisFillLease(connection, now);
  const store = new RedisStore(connection, log, lease, now);
  const bus = new RedisEventBus(connection, log);
  bus.start();
  return {
    connection,
    store,
    lease,
    bus,
    async close() {
      bus.close();
      await connection.close();
    },
  };
}
