/**
 * The proxy's two connections to Redis (commands, and pub/sub, which needs a connection of its
 * own), and whether Redis counts as up (SPEC 2.2). Every call is bounded by cache.redis.timeout;
 * a call that fails or is slower marks Redis down at once, and while it is down calls are not
 * even sent (they answer UNAVAILABLE at once, counted as skipped), so that no scrape waits for a
 * Redis known to be gone. A probe brings it back: a write (Redis full with noeviction refuses
 * writes while it still answers PING), then up again. Each change of state is logged once.
 *
 * node-redis (@redis/client) is loaded by connectRedis only, when the config has cache.redis.
 */
import type { RedisClientType, TypeMapping } from '@redis/client';
import type { Logger } from 'pino';
import type { RedisSettings } from '../../config/types.js';
import type { Metrics } from '../../metrics.js';
import { tlsClientOptions } from '../../net/tls-client-options.js';

/** What a call answers when Redis is down or the call failed: the caller goes on without Redis. */
export const UNAVAILABLE: unique symbol = Symbol('redis unavailable');
export type Maybe<T> = T | typeof UNAVAILABLE;

type CallResult = 'ok' | 'skipped' | 'timeout' | 'error';
type Reply = Buffer | string | number | null | Reply[];
type Client = RedisClientType;

/** The least a state listener needs: up or down, and why. */
export type StateListener = (up: boolean) => void;

const PROBE_MS = 1000;

export class RedisConnection {
  private isUp = false;
  private closed = false;
  private probing = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<StateListener>();
  private lastReason = 'not connected yet';
  /** Since when Redis has been up, or down (the status page). */
  private stateSince: number;
  /** The last failure and when, kept after Redis comes back. */
  private lastFailure: { message: string; at: number } | undefined;

  constructor(
    private readonly commands: Client,
    readonly subscriber: Client,
    readonly settings: RedisSettings,
    private readonly metrics: Metrics | undefined,
    private readonly log: Logger,
    /** Bulk strings as Buffers (bodies are bytes), and node-redis's TimeoutError class. */
    private readonly client: { typeMapping: TypeMapping; TimeoutError: new () => Error },
    private readonly now: () => number = Date.now,
  ) {
    this.stateSince = now();
    for (const [client, role] of [
      [commands, 'commands'],
      [subscriber, 'pubsub'],
    ] as const) {
      // node-redis reconnects by itself; an unhandled 'error' event would end the process.
      client.on('error', (err: Error) => {
        this.log.debug({ store: 'redis', connection: role, err: err.message }, 'redis connection error');
        this.markDown(`${role} connection: ${err.message}`);
      });
      client.on('end', () => this.markDown(`${role} connection closed`));
      client.on('ready', () => this.probeSoon(0));
    }
    metrics?.storeUp.labels('redis').set(0);
  }

  get up(): boolean {
    return this.isUp;
  }

  /** Up or down since when, and the last failure (down: why it is down). */
  state(): { up: boolean; since: number; lastError?: { message: string; at: number } } {
    const lastError = this.lastFailure ?? (this.isUp ? undefined : { message: this.lastReason, at: this.stateSince });
    return { up: this.isUp, since: this.stateSince, ...(lastError ? { lastError } : {}) };
  }

  get prefix(): string {
    return this.settings.keyPrefix;
  }

  onState(listener: StateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Connects both clients in the background: the proxy starts whether or not Redis is there.
   * Resolves once Redis is up or after the timeout, whichever comes first.
   */
  async start(): Promise<void> {
    for (const client of [this.commands, this.subscriber]) client.connect().catch(() => undefined);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(1000, this.settings.timeoutMs * 4));
      const off = this.onState((up) => up && done());
      function done() {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
    if (!this.isUp) this.logDown();
  }

  /**
   * One command, bounded by the timeout. UNAVAILABLE when Redis is down (the command is not
   * sent) or when it failed; failures mark Redis down.
   */
  async call(op: string, args: readonly (string | Buffer)[]): Promise<Maybe<Reply>> {
    if (!this.isUp) {
      this.count(op, 'skipped');
      return UNAVAILABLE;
    }
    try {
      const reply = await this.raw(this.commands, args);
      this.count(op, 'ok');
      return reply;
    } catch (err) {
      const timedOut = err instanceof this.client.TimeoutError || err instanceof CallTimeout;
      this.count(op, timedOut ? 'timeout' : 'error');
      this.markDown(timedOut ? `${op} took longer than ${this.settings.timeoutMs}ms` : `${op}: ${(err as Error).message}`);
      return UNAVAILABLE;
    }
  }

  /** Counter children by operation and result, looked up once each (labels() hashes its arguments on every call). */
  private readonly counters = new Map<string, Partial<Record<CallResult, { inc(): void }>>>();

  private count(op: string, result: CallResult): void {
    if (!this.metrics) return;
    let byResult = this.counters.get(op);
    if (!byResult) this.counters.set(op, (byResult = {}));
    (byResult[result] ??= this.metrics.storeOperations.labels('redis', op, result)).inc();
  }

  /** Sends a command; the reply's bulk strings as Buffers. Rejects after the timeout. */
  private raw(client: Client, args: readonly (string | Buffer)[]): Promise<Reply> {
    const { timeoutMs } = this.settings;
    // One timer bounds the whole call (the queue, a socket being set up, the reply). Not
    // node-redis's per-command timeout (`timeout: 0` turns off its default of 5 s too): that is
    // an AbortSignal.timeout per command whose timer outlives the reply and makes a TimeoutError
    // with its stack when it fires, and an abort signal per call costs about as much; kilobytes
    // of garbage per call that a replica filling through Redis held by the hundred megabytes
    // (issue 21). What that timeout did besides, take a command still queued (never written)
    // out of the queue, matters only for a socket that no longer drains: the call has answered
    // UNAVAILABLE and marked Redis down by then, so no later call is sent, and the few queued
    // ones are reads, expiring writes and conditional scripts that are harmless if sent late.
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      client.sendCommand<Reply>(args as (string | Buffer)[], { timeout: 0, typeMapping: this.client.typeMapping }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CallTimeout()), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Marks Redis down after a failure seen elsewhere (the subscriber, a script reply). */
  markDown(reason: string): void {
    this.lastReason = reason;
    if (this.closed) return;
    this.lastFailure = { message: reason, at: this.now() };
    if (this.isUp) {
      this.isUp = false;
      this.stateSince = this.now();
      this.metrics?.storeUp.labels('redis').set(0);
      this.logDown();
      for (const l of this.listeners) l(false);
    }
    this.probeSoon(PROBE_MS);
  }

  private logDown(): void {
    this.log.warn(
      { store: 'redis', url: this.settings.url, reason: this.lastReason },
      'redis unavailable: each replica goes on alone (its own memory, its own single flight) until it answers again',
    );
  }

  private probeSoon(ms: number): void {
    if (this.closed || this.isUp) return;
    if (this.probeTimer && ms > 0) return;
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probe();
    }, ms);
    this.probeTimer.unref();
  }

  /** Up again once both connections are ready and a write goes through. */
  private async probe(): Promise<void> {
    if (this.probing || this.closed || this.isUp) return;
    this.probing = true;
    try {
      if (!this.commands.isReady || !this.subscriber.isReady) throw new Error('not connected');
      await this.raw(this.commands, ['SET', `${this.prefix}probe`, '1', 'PX', '10000']);
      if (this.closed) return;
      this.isUp = true;
      this.stateSince = this.now();
      this.metrics?.storeUp.labels('redis').set(1);
      this.log.info({ store: 'redis', url: this.settings.url }, 'redis available: replicas share one cache');
      for (const l of this.listeners) l(true);
    } catch (err) {
      this.lastReason = (err as Error).message;
    } finally {
      this.probing = false;
    }
    this.probeSoon(PROBE_MS);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.probeTimer);
    this.isUp = false;
    // close() lets replies in flight arrive, but waits forever for a client that is reconnecting
    // (Redis gone, a certificate refused): that one is destroyed, and so is one slow to close.
    await Promise.allSettled(
      [this.commands, this.subscriber].map(async (c) => {
        let timer: NodeJS.Timeout | undefined;
        if (c.isReady) await Promise.race([c.close(), new Promise((r) => (timer = setTimeout(r, 1000)))]).finally(() => clearTimeout(timer));
        if (c.isOpen) c.destroy();
      }),
    );
  }
}

class CallTimeout extends Error {}

/**
 * Creates the clients (node-redis, loaded here and only here) and starts connecting. Both retry
 * by themselves with a capped back-off; commands are never queued while disconnected.
 */
export async function connectRedis(settings: RedisSettings, metrics: Metrics | undefined, log: Logger, now: () => number = Date.now): Promise<RedisConnection> {
  const { createClient, RESP_TYPES, TimeoutError } = await import('@redis/client');
  const tls = settings.tls;
  const socket = {
    host: settings.host,
    port: settings.port,
    connectTimeout: Math.max(1000, settings.timeoutMs * 4),
    // Jittered, capped back-off: a Redis restart is not met by every replica at the same instant.
    reconnectStrategy: (retries: number) => Math.min(2000, 50 * 2 ** Math.min(retries, 6)) + Math.floor(Math.random() * 100),
    ...(tls
      ? {
          tls: true as const,
          ...tlsClientOptions(tls),
        }
      : {}),
  };
  const options = {
    socket,
    database: settings.database,
    disableOfflineQueue: true,
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(settings.password !== undefined ? { password: settings.password } : {}),
  };
  const commands = createClient(options) as unknown as Client;
  const subscriber = createClient(options) as unknown as Client;
  const connection = new RedisConnection(
    commands,
    subscriber,
    settings,
    metrics,
    log,
    { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer }, TimeoutError },
    now,
  );
  await connection.start();
  return connection;
}
