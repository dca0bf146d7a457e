/** Accept headers the cache sends upstream of its own accord (prefetch, refresh at start-up). */

/** Prometheus 2.x's scrape Accept header: what prefetch and refresh ask for when no client did. */
export const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
