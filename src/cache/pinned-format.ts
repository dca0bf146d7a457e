/**
 * `format:` (SPEC 3.2). Without it each metrics format a client prefers is an entry of its own,
 * so Prometheus (OpenMetrics first) and vmagent (text first) make the proxy fetch an exporter
 * twice per TTL. A pinned route fetches one format, keeps one entry per path+query, and serves
 * it to every client whose Accept admits it.
 */
import type { Format } from '../config/types.js';
import { admits } from './representation.js';

interface FormatSpec {
  /** What the proxy asks the upstream for: that format and nothing else. */
  accept: string;
  /** The Content-Types an exporter answers in that format; a client must admit one of them. */
  contentTypes: readonly string[];
}

/**
 * Accept values as Prometheus and client_golang spell them. protobuf is the delimited
 * MetricFamily stream, passed through as bytes.
 */
const SPECS: Record<Format, FormatSpec> = {
  text: {
    accept: 'text/plain;version=0.0.4',
    contentTypes: ['text/plain; version=0.0.4; charset=utf-8'],
  },
  openmetrics: {
    accept: 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75',
    contentTypes: ['application/openmetrics-text; version=1.0.0; charset=utf-8', 'application/openmetrics-text; version=0.0.1; charset=utf-8'],
  },
  protobuf: {
    accept: 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited',
    contentTypes: ['application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'],
  },
};

/** The Accept header a pinned route sends upstream. */
export function formatAccept(format: Format): string {
  return SPECS[format].accept;
}

/** Per format, the answer for each distinct Accept seen: scrapers repeat theirs. */
const admitted: Record<Format, Map<string, boolean>> = { text: new Map(), openmetrics: new Map(), protobuf: new Map() };
const MEMO_LIMIT = 256;

/** Whether a client's Accept admits the format at all (no Accept admits everything). */
export function admitsFormat(accept: string | undefined, format: Format): boolean {
  if (accept === undefined || accept === '') return true;
  const memo = admitted[format];
  let ok = memo.get(accept);
  if (ok === undefined) {
    ok = SPECS[format].contentTypes.some((type) => admits(accept, type));
    // A client sending endless distinct headers only costs recomputation, never memory.
    if (memo.size >= MEMO_LIMIT) memo.clear();
    memo.set(accept, ok);
  }
  return ok;
}
