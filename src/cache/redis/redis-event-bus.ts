/**
 * The event bus over Redis pub/sub (SPEC 2.2): what one replica stored, failed or invalidated
 * reaches the others. An invalidation is acknowledged by every replica that received it, and
 * publish resolves once all have (bounded), so that the admin answer comes after every
 * replica's memory dropped the entries.
 *
 * A message is `u32 header length | header JSON`. A `stored` event crosses as a notice (key,
 * fetch time, route fingerprint), never with its body: a record may be as large as
 * max_body_bytes, and one message over Redis's `client-output-buffer-limit pubsub` (32 MiB by
 * default) disconnects every subscriber, losing the invalidations published meanwhile. Readers
 * take the record from Redis. (A message of an older build may still carry record bytes after
 * the header; they are read as a notice.)
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { CacheEvent, EventBus, Reach } from '../event-bus.js';
import { decodeRecord } from '../stored-record.js';
import { UNAVAILABLE, type RedisConnection } from './redis-connection.js';
import { ackChannel, eventChannel } from './redis-keys.js';

interface Header {
  from: string;
  /** The event less its record, which follows the header as bytes. */
  event: Exclude<CacheEvent, { type: 'stored' }> | { type: 'stored'; key: string; fetchedAt?: number; fingerprint?: string; asked?: string };
  withRecord?: boolean;
  /** Set on invalidations: every receiver answers on the sender's ack channel. */
  ack?: string;
}

type Listener = (event: CacheEvent) => unknown;

export class RedisEventBus implements EventBus {
  /** This process on the bus: its own messages come back from Redis and are skipped. */
  readonly instance = randomUUID();
  private readonly listeners = new Set<Listener>();
  /** Invalidations waiting for acks; an ack may come before PUBLISH has said how many to expect. */
  private readonly awaiting = new Map<string, { acks: number; expected: number; done: () => void }>();
  private subscribed: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisConnection,
    private readonly log: Logger,
  ) {}

  /** Subscribes once; node-redis subscribes again by itself after every reconnect. */
  start(): void {
    const prefix = this.redis.prefix;
    this.subscribed ??= this.redis.subscriber
      .subscribe([eventChannel(prefix), ackChannel(prefix, this.instance)], (message: Buffer, channel: Buffer) => this.receive(message, channel.toString()), true)
      .catch((err: Error) => this.log.debug({ store: 'redis', err: err.message }, 'redis subscribe failed; retried on reconnect'));
  }

  async publish(event: CacheEvent): Promise<Reach | void> {
    const header: Header = { from: this.instance, event: event.type === 'stored' ? notice(event) : event };
    const ackId = event.type === 'invalidated' ? randomUUID() : undefined;
    if (ackId) header.ack = ackId;
    const head = Buffer.from(JSON.stringify(header));
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(head.length);
    const message = Buffer.concat([length, head]);

    if (!ackId) {
      await this.redis.call('publish', ['PUBLISH', eventChannel(this.redis.prefix), message]);
      return;
    }
    let done!: () => void;
    const acked = new Promise<void>((resolve) => (done = resolve));
    const waiting = { acks: 0, expected: Infinity, done };
    this.awaiting.set(ackId, waiting);
    try {
      const receivers = await this.redis.call('publish', ['PUBLISH', eventChannel(this.redis.prefix), message]);
      if (receivers === UNAVAILABLE) {
        this.log.warn({ store: 'redis', selection: (event as { selection: unknown }).selection }, 'invalidation reached this replica only: redis unavailable');
        return { reached: 'this replica only', reason: 'redis unavailable: the other replicas were not told' };
      }
      // PUBLISH counts every subscriber, this process's own among them.
      waiting.expected = (receivers as number) - 1;
      if (waiting.acks >= waiting.expected) return;
      const bound = Math.max(1000, 4 * this.redis.settings.timeoutMs);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([acked, new Promise<void>((resolve) => (timer = setTimeout(resolve, bound)))]).finally(() => clearTimeout(timer));
      if (waiting.acks < waiting.expected) {
        const missing = waiting.expected - waiting.acks;
        this.log.warn({ store: 'redis', missing, waitedMs: bound }, 'invalidation: some replicas did not confirm in time');
        return { reached: 'unconfirmed', reason: `${missing} of ${waiting.expected} other replicas did not confirm within ${bound}ms` };
      }
      return undefined;
    } finally {
      this.awaiting.delete(ackId);
    }
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private receive(message: Buffer, channel: string): void {
    if (channel !== eventChannel(this.redis.prefix)) {
      const waiting = this.awaiting.get(message.toString());
      if (waiting && ++waiting.acks >= waiting.expected) waiting.done();
      return;
    }
    let header: Header;
    let event: CacheEvent;
    try {
      const length = message.readUInt32BE(0);
      header = JSON.parse(message.toString('utf8', 4, 4 + length)) as Header;
      if (header.from === this.instance) return;
      event = header.event;
      if (event.type === 'stored' && header.withRecord && event.fetchedAt === undefined) {
        const { fetchedAt, fingerprint } = decodeRecord(message.subarray(4 + length));
        event = { type: 'stored', key: event.key, fetchedAt, fingerprint };
      }
    } catch (err) {
      this.log.warn({ store: 'redis', err: (err as Error).message }, 'redis event skipped: not one this build reads');
      return;
    }
    const applying: unknown[] = [];
    for (const listener of this.listeners) {
      try {
        applying.push(listener(event));
      } catch (err) {
        this.log.error({ err, event: event.type }, 'event listener failed');
      }
    }
    // Confirmed once applied here: every slice dropped, and this replica's workers (with
    // `workers: N`) confirmed too (see JoinedEventBus).
    const { ack, from } = header;
    if (ack) void Promise.allSettled(applying).then(() => this.redis.call('ack', ['PUBLISH', ackChannel(this.redis.prefix, from), ack]));
  }

  close(): void {
    this.listeners.clear();
    for (const w of this.awaiting.values()) w.done();
  }
}

/** The notice for a stored record: what a reader needs to decide whether to read it from Redis. */
function notice(event: Extract<CacheEvent, { type: 'stored' }>): Header['event'] {
  const fetchedAt = event.record?.fetchedAt ?? event.fetchedAt;
  const fingerprint = event.record?.fingerprint ?? event.fingerprint;
  return {
    type: 'stored',
    key: event.key,
    ...(fetchedAt !== undefined ? { fetchedAt } : {}),
    ...(fingerprint !== undefined ? { fingerprint } : {}),
    ...(event.asked !== undefined ? { asked: event.asked } : {}),
  };
}
