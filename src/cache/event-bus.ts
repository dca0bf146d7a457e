/**
 * What one cache tells the others (issue 9): a response was stored, a fill failed, entries were
 * invalidated. The cluster primary publishes to its workers over IPC; replicas sharing Redis
 * publish over pub/sub. Events are plain data and cross a process or a network as they are.
 */
import { EventEmitter } from 'node:events';
import type { MaybePromise, EntrySelection } from './store.js';
import type { StoredRecord } from './stored-record.js';

export type CacheEvent =
  /**
   * A fill stored a record. With `record`, the record itself (between the processes of one
   * cluster: the body crosses once, with the event); without, a notice (between replicas, SPEC
   * 2.2): the fetch time and route fingerprint of the record to read from the shared store.
   * `asked`: the key the fill was for, when the upstream's answer went under another (SPEC 3.2):
   * who waits for that key has its answer too.
   */
  | { type: 'stored'; key: string; record?: StoredRecord; fetchedAt?: number; fingerprint?: string; asked?: string }
  /** A fill of the key failed: the shared back-off, so that others neither wait nor refetch before retryAt. */
  | { type: 'failed'; key: string; fwdStatus: number | string; retryAt: number }
  /** Entries were dropped (or, soft, made stale at once but kept servable). */
  | { type: 'invalidated'; selection: EntrySelection; soft?: boolean };

/**
 * How far a published invalidation is known to have gone: undefined when it reached every
 * subscriber, else what is known and why (SPEC 2.2: one that could not reach the fleet says so).
 */
export interface Reach {
  reached: 'this replica only' | 'unconfirmed';
  reason: string;
}

export interface EventBus {
  /**
   * Sends an event to every other subscriber; a bus never delivers an event back to the instance
   * that published it. For an invalidation, resolves to its Reach when not every subscriber is
   * known to have it.
   */
  publish(event: CacheEvent): MaybePromise<Reach | void>;
  /**
   * Calls listener for every event others publish; returns the unsubscribe function. A listener
   * may return a promise that settles once it has applied the event (a sliced invalidation): a
   * cluster worker confirms the invalidation to its primary then.
   */
  subscribe(listener: (event: CacheEvent) => unknown): () => void;
  close(): MaybePromise<void>;
}

/**
 * A bus within one process: instances made by one hub see each other's events (tests, and a
 * process alone, where the hub has one member and publishing reaches nobody).
 */
export class LocalEventHub {
  private readonly emitter = new EventEmitter().setMaxListeners(0);

  bus(): EventBus {
    const emitter = this.emitter;
    const own = new Set<(e: { from: object; event: CacheEvent }) => void>();
    const self = {};
    return {
      publish(event) {
        emitter.emit('event', { from: self, event });
      },
      subscribe(listener) {
        const wrapped = (e: { from: object; event: CacheEvent }) => {
          if (e.from !== self) listener(e.event);
        };
        own.add(wrapped);
        emitter.on('event', wrapped);
        return () => {
          own.delete(wrapped);
          emitter.off('event', wrapped);
        };
      },
      close() {
        for (const l of own) emitter.off('event', l);
        own.clear();
      },
    };
  }
}
