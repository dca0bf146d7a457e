/**
 * The last upstream fetch of each route, for the status page: fed where upstream fetches are
 * counted (Metrics.upstream), so it tells what the metrics count, fetch by fetch.
 */

export interface LastFetch {
  /** HTTP status, or the error kind (`unreachable`, `timeout`, ...), as in scrapecache_upstream_requests_total. */
  code: string;
  seconds: number;
  /** Unix time in ms when the fetch ended. */
  at: number;
  /** Our one-line error, or the start of a non-200 upstream body; undefined for a 200. */
  error?: string;
}

const MAX_ERROR_CHARS = 300;

export class LastFetchRecorder {
  private readonly byRoute = new Map<string, LastFetch>();

  constructor(private readonly now: () => number = Date.now) {}

  record(route: string, code: string, seconds: number, error?: string): void {
    const fetch: LastFetch = { code, seconds, at: this.now() };
    if (error !== undefined) fetch.error = error.length > MAX_ERROR_CHARS ? `${error.slice(0, MAX_ERROR_CHARS)}…` : error;
    this.byRoute.set(route, fetch);
  }

  get(route: string): LastFetch | undefined {
    return this.byRoute.get(route);
  }

  entries(): Array<[string, LastFetch]> {
    return [...this.byRoute];
  }

  /** Keeps the newer fetch per route (the cluster primary merging its workers' pass-through fetches). */
  merge(entries: Iterable<[string, LastFetch]>): void {
    for (const [route, fetch] of entries) {
      const held = this.byRoute.get(route);
      if (!held || held.at < fetch.at) this.byRoute.set(route, fetch);
    }
  }
}

/** What an upstream's non-200 body says, as text (a gzip body is not decoded for this). */
export function upstreamErrorText(body: Buffer, contentEncoding: string | string[] | undefined): string {
  if (contentEncoding !== undefined && contentEncoding !== '' && contentEncoding !== 'identity') return `(${String(contentEncoding)} body, ${body.length} bytes)`;
  return body.subarray(0, MAX_ERROR_CHARS * 4).toString('utf8').trim();
}
