/** What ScrapeCache.lookup answers a scrape with, and how it fails. */
import type { ProxyError } from '../errors.js';
import type { StoredResponse } from './stored-response.js';

/** A fill failed and nothing stale may be served; says whether this request only waited for it. */
export class FillFailed extends Error {
  constructor(
    readonly error: ProxyError,
    readonly collapsed: boolean,
  ) {
    super(error.message, { cause: error });
  }
}

export type Lookup =
  | { cache: 'hit' | 'stale' | 'miss' | 'collapsed'; entry: StoredResponse; stored: boolean; fwdStatus?: number | string }
  | { cache: 'miss' | 'collapsed'; entry: StoredResponse; stored: false; fwdStatus: number };
