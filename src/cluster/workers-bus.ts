/**
 * The primary's bus: every event it publishes goes to every live worker, in order. An
 * invalidation resolves once every serving worker says it applied it (SPEC 2.2: it answers only
 * once every level is cleared, every worker's memory included), so that no worker serves an
 * invalidated copy after the answer, nor takes a fill begun after the answer for one begun before.
 */
import type { Worker } from 'node:cluster';
import type { CacheEvent, EventBus, Reach } from '../cache/event-bus.js';
import { encodeEvent, type ToWorker } from './messages.js';

/** How long an invalidation waits for a worker before its answer says the group is unconfirmed. */
export const CONFIRM_MS = 5000;

export class WorkersBus implements EventBus {
  private nextId = 0;
  /** Invalidations sent and not yet applied, by id. */
  private readonly awaited = new Map<number, { worker: Worker; done: () => void }>();

  constructor(
    private readonly workers: () => Iterable<Worker>,
    /**
     * Whether a worker serves scrapes yet (it said `ready`). One still starting is sent the
     * event but not waited for: it holds nothing, and its listener may not be there to answer.
     */
    private readonly serving: (worker: Worker) => boolean,
  ) {}

  publish(event: CacheEvent): void | Promise<Reach | undefined> {
    const wire = encodeEvent(event);
    if (event.type !== 'invalidated') {
      const message: ToWorker = { t: 'event', event: wire };
      for (const w of this.workers()) if (w.isConnected()) w.send(message);
      return;
    }
    const confirmations: Array<Promise<Worker | undefined>> = [];
    for (const w of this.workers()) {
      if (!w.isConnected()) continue;
      if (!this.serving(w)) {
        w.send({ t: 'event', event: wire } satisfies ToWorker);
        continue;
      }
      const id = ++this.nextId;
      confirmations.push(this.confirmation(w, id));
      w.send({ t: 'event', event: wire, confirm: id } satisfies ToWorker);
    }
    return Promise.all(confirmations).then((late) => {
      const pids = late.filter((w) => w !== undefined).map((w) => w.process.pid);
      if (pids.length === 0) return undefined;
      return { reached: 'unconfirmed', reason: `worker ${pids.join(', ')} did not confirm within ${CONFIRM_MS / 1000} s that it applied the invalidation` };
    });
  }

  /** Resolves to the worker when it did not confirm in time, else to undefined. */
  private confirmation(worker: Worker, id: number): Promise<Worker | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.awaited.delete(id);
        resolve(worker);
      }, CONFIRM_MS);
      this.awaited.set(id, {
        worker,
        done: () => {
          clearTimeout(timer);
          this.awaited.delete(id);
          resolve(undefined);
        },
      });
    });
  }

  /** A worker applied the invalidation sent to it with this id. */
  applied(id: number, worker: Worker): void {
    const awaited = this.awaited.get(id);
    if (awaited?.worker === worker) awaited.done();
  }

  /** A worker that exited holds nothing: what it was to confirm is done. */
  gone(worker: Worker): void {
    for (const a of [...this.awaited.values()]) if (a.worker === worker) a.done();
  }

  /** Workers publish nothing: the primary hears no events. */
  subscribe(): () => void {
    return () => undefined;
  }

  close(): void {}
}
