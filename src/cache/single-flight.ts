/**
 * Single flight within this process (SPEC 3.3): at most one fill per key in flight; requests for
 * a key being filled join that fill. An invalidation supersedes the fills of the keys it selects:
 * they still answer who waits for them, but store nothing, and new requests do not join them.
 */
import type { ScrapeTarget } from './filler.js';
import type { StoredResponse } from './stored-response.js';
import { selects, type EntrySelection } from './store.js';

export interface FillResult {
  /** The response: stored, or (non-200, Set-Cookie, too large for the store) not. */
  entry: StoredResponse;
  stored: boolean;
  /** Not this cache's own fetch: another's fill joined (`collapsed`), or a copy held elsewhere (`hit`). */
  via?: 'joined' | 'held';
}

/** One fill in flight, as the fill itself sees it. */
export interface Flight {
  readonly target: ScrapeTarget;
  /** An invalidation or reload selected this key after the fill started: answer, but do not store. */
  superseded: boolean;
  /** The lease this fill holds, if any: freed early when the fill is superseded. */
  token?: string;
}

export class SingleFlight {
  private readonly inflight = new Map<string, { flight: Flight; promise: Promise<FillResult> }>();

  /** The result of the fill in flight for a key, if there is one to join. */
  joinable(key: string): Promise<FillResult> | undefined {
    return this.inflight.get(key)?.promise;
  }

  has(key: string): boolean {
    return this.inflight.has(key);
  }

  /** Starts a fill of the key (replacing, for new joiners, any in flight); it leaves when settled. */
  start(key: string, target: ScrapeTarget, run: (flight: Flight) => Promise<FillResult>): Promise<FillResult> {
    const flight: Flight = { target, superseded: false };
    const promise = run(flight).finally(() => {
      if (this.inflight.get(key)?.flight === flight) this.inflight.delete(key);
    });
    this.inflight.set(key, { flight, promise });
    return promise;
  }

  /** Supersedes the fills of the selected keys; `release` frees the lease each holds. */
  supersede(selection: EntrySelection, release: (key: string, token: string) => void): void {
    for (const [key, { flight }] of this.inflight) {
      const { route, path, query } = flight.target;
      if (!selects(selection, { route: route.name, path, query })) continue;
      flight.superseded = true;
      this.inflight.delete(key);
      if (flight.token !== undefined) release(key, flight.token);
    }
  }

  /** Settles once every fill now in flight has (graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()].map((f) => f.promise));
  }
}
