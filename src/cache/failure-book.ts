/**
 * Refresh failures per key (SPEC 3.4 back-off): after a failed refresh, scrapes are answered from
 * the stale entry until the retry time instead of each going upstream (nginx trac #1000). A
 * failure is valid for the entry fetched at `fetchedAt` only: a new entry starts clean. Failures
 * come from this cache's own fills or from a peer's (the bus's `failed`): the holder's back-off
 * is the fleet's.
 */
import { retryBackoffMs } from './freshness.js';

export interface Failure {
  /** Consecutive failures of the key: the back-off doubles with each. */
  count: number;
  /** No refresh goes upstream before then. */
  retryAt: number;
  /** What the failure answered (a status, or `timeout`...): the stale answer's fwd= parameter. */
  fwdStatus: number | string;
  /** The entry the failure belongs to; undefined when none was held. */
  fetchedAt: number | undefined;
}

/** The times of the entry whose refresh failed: its ttl bounds the back-off. */
export interface RefreshedEntry {
  fetchedAt: number;
  staleAt: number;
}

export class FailureBook {
  private readonly failures = new Map<string, Failure>();

  constructor(private readonly now: () => number) {}

  /** The key's failure, when it belongs to this entry. */
  of(key: string, entry: { fetchedAt: number }): Failure | undefined {
    const failure = this.failures.get(key);
    return failure && failure.fetchedAt === entry.fetchedAt ? failure : undefined;
  }

  /**
   * A failure (a peer's or this cache's) that still holds for a refresh of `previous` (or of
   * nothing): a fill waiting for a peer answers it rather than fetch again before the retry time.
   */
  pending(key: string, previous: { fetchedAt: number } | undefined): Failure | undefined {
    const failure = this.failures.get(key);
    return failure && failure.retryAt > this.now() && failure.fetchedAt === previous?.fetchedAt ? failure : undefined;
  }

  /** This cache's refresh of `entry` failed: one more failure, and a longer back-off. */
  failed(key: string, entry: RefreshedEntry, fwdStatus: number | string): Failure {
    const count = (this.of(key, entry)?.count ?? 0) + 1;
    const failure = { count, retryAt: this.now() + retryBackoffMs(count, entry.staleAt - entry.fetchedAt), fwdStatus, fetchedAt: entry.fetchedAt };
    this.failures.set(key, failure);
    return failure;
  }

  /** A peer's refresh failed: its retry time is this cache's too, for the copy held here. */
  learn(key: string, retryAt: number, fwdStatus: number | string, heldFetchedAt: number | undefined): void {
    const count = (this.failures.get(key)?.count ?? 0) + 1;
    this.failures.set(key, { count, retryAt, fwdStatus, fetchedAt: heldFetchedAt });
  }

  /** A new entry was stored, or the key invalidated: the next refresh goes upstream at once. */
  clear(key: string): void {
    this.failures.delete(key);
  }
}
