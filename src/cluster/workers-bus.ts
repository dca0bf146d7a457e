/** The primary's bus: every event it publishes goes to every live worker, in order. */
import type { Worker } from 'node:cluster';
import type { CacheEvent, EventBus } from '../cache/event-bus.js';
import { encodeEvent, type ToWorker } from './messages.js';

export class WorkersBus implements EventBus {
  constructor(private readonly workers: () => Iterable<Worker>) {}

  publish(event: CacheEvent): void {
    const message: ToWorker = { t: 'event', event: encodeEvent(event) };
    for (const w of this.workers()) if (w.isConnected()) w.send(message);
  }

  /** Workers publish nothing: the primary hears no events. */
  subscribe(): () => void {
    return () => undefined;
  }

  close(): void {}
}
