/**
 * The filler that fetches from the upstream itself (one process, or a cluster primary): one
 * request per fill, its metrics and log line, and the record it makes.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Filler, FillOutcome, ScrapeTarget } from '../cache/filler.js';
import { RECORD_VERSION, recordTimes, storableHeaders } from '../cache/stored-record.js';
import { windowsFor } from '../cache/route-windows.js';
import type { Route } from '../config/types.js';
import { upstreamAddress, type ProxyError } from '../errors.js';
import { upstreamErrorText } from '../last-fetch.js';
import type { Metrics } from '../metrics.js';
import { contentCodingOf } from './content-coding.js';
import { Dispatchers, fetchUpstream, upstreamTarget, type UpstreamResponse } from './fetch-upstream.js';

export class UpstreamFiller implements Filler {
  private readonly dispatchers = new Dispatchers();

  constructor(
    private readonly metrics: Metrics | undefined,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async fill(target: ScrapeTarget, key: string): Promise<FillOutcome> {
    const { route } = target;
    const url = upstreamTarget(route, target.path, target.query);
    const started = performance.now();
    const logFields = { route: route.name, path: target.path, query: target.query, representation: target.representation, accept: target.accept };
    let res: UpstreamResponse;
    try {
      res = await fetchUpstream(route, this.dispatchers.for(route), url, target.accept);
    } catch (e) {
      const err = e as ProxyError;
      this.metrics?.upstream(route.name, err.kind, (performance.now() - started) / 1000, err.message);
      const cause = causeOf(err);
      this.log.warn({ ...logFields, upstream: upstreamAddress(route.upstream), code: err.code, error: err.message, ...(cause !== undefined ? { cause } : {}) }, 'upstream fetch failed');
      throw err;
    }
    const errorText = res.status === 200 ? undefined : upstreamErrorText(res.body, res.headers['content-encoding']);
    this.metrics?.upstream(route.name, String(res.status), res.durationMs / 1000, errorText);
    const coding = contentCodingOf(res.headers['content-encoding']);
    const storable = res.status === 200 && res.headers['set-cookie'] === undefined && coding !== undefined;
    if (res.status === 200 && !storable) {
      this.log.warn({ ...logFields, reason: coding === undefined ? 'content-encoding' : 'set-cookie' }, 'response not cacheable');
    }
    return {
      storable,
      fetchedMs: res.durationMs,
      record: {
        version: RECORD_VERSION,
        key,
        route: route.name,
        path: target.path,
        query: target.query,
        representation: target.representation,
        accept: target.accept,
        fingerprint: route.recordFingerprint,
        status: res.status,
        // An unknown coding (br, zstd) cannot be converted: it is passed on as is, never stored.
        coding: coding ?? 'identity',
        headers: storableHeaders(res.headers, coding === undefined),
        body: res.body,
        ...recordTimes(this.now(), windowsFor(route, target.query)),
      },
    };
  }

  retain(routes: readonly Route[]): void {
    void this.dispatchers.retain(routes);
  }

  close(): Promise<void> {
    return this.dispatchers.close();
  }
}

function causeOf(err: Error): string | undefined {
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return cause ? (cause.code ?? cause.message) : undefined;
}
