/**
 * A worker's side of the cluster (SPEC 2 `workers`): its filler asks the primary, and its bus
 * hears the primary's events. One hop: the worker asks, the primary fills (or joins a fill, or
 * answers from its copy), broadcasts what it stored and then answers; the body crosses once.
 */
import type { CacheEvent, EventBus } from '../cache/event-bus.js';
import type { Filler, FillOutcome, ScrapeTarget } from '../cache/filler.js';
import { decodeRecord, type StoredRecord } from '../cache/stored-record.js';
import { ProxyError } from '../errors.js';
import { decodeEvent, type ToPrimary, type ToWorker } from './messages.js';

interface Asked {
  key: string;
  target: ScrapeTarget;
  /** The record the primary broadcast for this key since the ask. */
  stored?: StoredRecord;
  resolve(outcome: FillOutcome): void;
  reject(err: ProxyError): void;
}

export class PrimaryLink implements Filler, EventBus {
  private nextId = 0;
  private readonly asked = new Map<number, Asked>();
  private readonly listeners = new Set<(event: CacheEvent) => unknown>();

  constructor(
    private readonly send: (message: ToPrimary) => void,
    private readonly connected: () => boolean,
  ) {}

  fill(target: ScrapeTarget, key: string): Promise<FillOutcome> {
    return new Promise((resolve, reject) => {
      if (!this.connected()) {
        reject(new ProxyError('SHUTTING_DOWN', `route ${target.route.name}: the primary process is gone`));
        return;
      }
      const id = ++this.nextId;
      this.asked.set(id, { key, target, resolve, reject });
      const { route, accept, ...rest } = target;
      this.send({ t: 'fill', id, target: { ...rest, route: route.name, ...(accept !== undefined ? { accept } : {}) } });
    });
  }

  /** Workers tell nobody: every event starts at the primary. */
  publish(): void {}

  subscribe(listener: (event: CacheEvent) => unknown): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  /** Handles an event or a fill answer from the primary; throws RecordError on a record that does not decode. */
  receive(message: Extract<ToWorker, { t: 'event' | 'filled' | 'failed' }>): void {
    switch (message.t) {
      case 'event': {
        const event = decodeEvent(message.event);
        if (event.type === 'stored' && event.record) {
          for (const a of this.asked.values()) if (a.key === event.key || a.key === event.asked) a.stored = event.record;
        }
        const applying = [...this.listeners].map((l) => l(event));
        // The primary's admin answer waits for this: the invalidation is done here once every slice is.
        if (message.confirm !== undefined) {
          const id = message.confirm;
          void Promise.allSettled(applying).then(() => this.connected() && this.send({ t: 'applied', id }));
        }
        return;
      }
      case 'filled': {
        const asked = this.take(message.id);
        if (!asked) return;
        const record = message.record ? decodeRecord(message.record) : asked.stored;
        // A record under another representation is the upstream's answer for the same path and query (stored as answered).
        const t = asked.target;
        if (!record || (record.key !== asked.key && (record.route !== t.route.name || record.path !== t.path || record.query !== t.query))) {
          asked.reject(new ProxyError('UPSTREAM_BAD_RESPONSE', `route ${asked.target.route.name}: the primary answered without the response`));
          return;
        }
        asked.resolve(message.via ? { record, storable: message.stored, via: message.via } : { record, storable: message.stored });
        return;
      }
      case 'failed':
        this.take(message.id)?.reject(new ProxyError(message.code, message.message));
        return;
    }
  }

  /** The primary is gone: every ask fails now rather than at its deadline. */
  disconnected(): void {
    for (const a of this.asked.values()) a.reject(new ProxyError('SHUTTING_DOWN', `route ${a.target.route.name}: the primary process is gone`));
    this.asked.clear();
  }

  private take(id: number): Asked | undefined {
    const asked = this.asked.get(id);
    this.asked.delete(id);
    return asked;
  }
}
