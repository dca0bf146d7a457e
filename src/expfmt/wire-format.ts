import type { Escaping } from './escape.js';

/**
 * One answer promhttp can give. Text is 0.0.4 only: prometheus/common's expfmt has no other text
 * version (a client asking `text/plain;version=1.0.0` gets 0.0.4 from it). OpenMetrics 0.0.1
 * and 1.0.0 are both negotiable and written by the same encoder; only the header differs.
 */
export type WireFormat =
  | { kind: 'protobuf'; escaping: Escaping }
  | { kind: 'text'; version: '0.0.4'; escaping: Escaping }
  | { kind: 'openmetrics'; version: '1.0.0' | '0.0.1'; escaping: Escaping };
