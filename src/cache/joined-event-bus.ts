/**
 * Several buses as one, for a cluster primary sharing Redis with other replicas: what it
 * publishes goes to its workers and to the other replicas, and what another replica publishes
 * reaches its own cache and is passed on to its workers (they hold copies too).
 */
import type { CacheEvent, EventBus, Reach } from './event-bus.js';

export class JoinedEventBus implements EventBus {
  private readonly unsubscribes: Array<() => void> = [];
  private readonly listeners = new Set<(event: CacheEvent) => unknown>();

  constructor(private readonly buses: readonly EventBus[]) {
    for (const from of buses) {
      this.unsubscribes.push(
        from.subscribe((event) => {
          // Applied once passed on (a worker group confirms an invalidation) and applied here.
          const applying: unknown[] = [];
          for (const to of buses) if (to !== from) applying.push(to.publish(event));
          for (const l of this.listeners) applying.push(l(event));
          return Promise.allSettled(applying);
        }),
      );
    }
  }

  async publish(event: CacheEvent): Promise<Reach | void> {
    const reaches = await Promise.all(this.buses.map((b) => b.publish(event)));
    return reaches.find((r) => r?.reached === 'this replica only') ?? reaches.find((r) => r !== undefined) ?? undefined;
  }

  subscribe(listener: (event: CacheEvent) => unknown): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    for (const u of this.unsubscribes) u();
    await Promise.all(this.buses.map((b) => b.close()));
  }
}
