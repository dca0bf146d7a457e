/**
 * Who fetches (issue 9): the part that turns a scrape target into a record. In one process, or
 * a cluster primary, that is the upstream (src/upstream/upstream-filler.ts); in a cluster
 * worker it is the primary, asked over IPC (src/cluster/). ScrapeCache decides when to fill and
 * what to keep; it does not know which filler it has.
 */
import type { Route } from '../config/types.js';
import type { Representation } from './representation.js';
import type { StoredRecord } from './stored-record.js';

export interface ScrapeTarget {
  route: Route;
  path: string;
  /** Canonical query (see canonicalQuery). */
  query: string;
  representation: Representation;
  /** The Accept header sent upstream on a fill. */
  accept: string | undefined;
}

export interface FillOutcome {
  /** The answer; a non-200 is a record too (status and body passed through), never stored. */
  record: StoredRecord;
  /** A complete 200 without Set-Cookie in a coding the proxy can convert. */
  storable: boolean;
  /**
   * How the filler came by it, where that was not a fetch of its own: `joined` a fill already
   * in flight elsewhere (the answer is `collapsed`), or `held` a fresh copy (a `hit`).
   */
  via?: 'joined' | 'held';
  /**
   * Set by a filler that fetched from the upstream itself: the fetch's duration. The cache
   * then logs the fetch with whether it stored it (one `upstream fetch` line per fetch).
   */
  fetchedMs?: number;
}

export interface Filler {
  /** Rejects with ProxyError when there is no answer (unreachable, timeout, too large...). */
  fill(target: ScrapeTarget, key: string): Promise<FillOutcome>;
  /** The current routes (after a reload): connections of removed routes can go. */
  retain?(routes: readonly Route[]): void;
  close?(): Promise<void>;
}
