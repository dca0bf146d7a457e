/**
 * Hits per entry, kept beside the entries rather than in them (issue 18: an entry a store returns
 * is never changed by whoever serves it). Keyed by the entry object, so a replaced entry starts
 * at zero, as a new fetch should, and a dropped one takes its count with it.
 */
import type { StoredResponse } from './stored-response.js';

export class HitCounter {
  private readonly counts = new WeakMap<StoredResponse, number>();

  count(entry: StoredResponse): void {
    this.counts.set(entry, (this.counts.get(entry) ?? 0) + 1);
  }

  of(entry: StoredResponse): number {
    return this.counts.get(entry) ?? 0;
  }

  /** The count of an entry moves to the one that replaces it without a new fetch (a soft invalidation). */
  carry(from: StoredResponse, to: StoredResponse): void {
    const n = this.counts.get(from);
    if (n !== undefined) this.counts.set(to, n);
  }
}
