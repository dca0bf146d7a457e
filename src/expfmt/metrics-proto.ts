/**
 * io.prometheus.client's metrics.proto (prometheus/client_model) as a protobufjs JSON descriptor,
 * so decoding needs no code generation. Field names keep the .proto's snake_case. The root is
 * proto2, as the .proto is: optional fields keep presence, repeated scalars are not packed (what
 * Go's proto.Marshal writes, so a re-encoded family has the bytes client_golang would send).
 */
import protobuf from 'protobufjs/light.js';

const opt = (type: string, id: number) => ({ type, id });
const rep = (type: string, id: number) => ({ rule: 'repeated', type, id });

const descriptor: Record<string, unknown> = {
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Timestamp: { fields: { seconds: opt('int64', 1), nanos: opt('int32', 2) } },
          },
        },
      },
    },
    io: {
      nested: {
        prometheus: {
          nested: {
            client: {
              nested: {
                LabelPair: { fields: { name: opt('string', 1), value: opt('string', 2) } },
                MetricType: {
                  values: { COUNTER: 0, GAUGE: 1, SUMMARY: 2, UNTYPED: 3, HISTOGRAM: 4, GAUGE_HISTOGRAM: 5 },
                },
                Gauge: { fields: { value: opt('double', 1) } },
                Counter: {
                  fields: {
                    value: opt('double', 1),
                    exemplar: opt('Exemplar', 2),
                    created_timestamp: opt('google.protobuf.Timestamp', 3),
                  },
                },
                Quantile: { fields: { quantile: opt('double', 1), value: opt('double', 2) } },
                Summary: {
                  fields: {
                    sample_count: opt('uint64', 1),
                    sample_sum: opt('double', 2),
                    quantile: rep('Quantile', 3),
                    created_timestamp: opt('google.protobuf.Timestamp', 4),
                  },
                },
                Untyped: { fields: { value: opt('double', 1) } },
                Histogram: {
                  fields: {
                    sample_count: opt('uint64', 1),
                    sample_count_float: opt('double', 4),
                    sample_sum: opt('double', 2),
                    bucket: rep('Bucket', 3),
                    created_timestamp: opt('google.protobuf.Timestamp', 15),
                    schema: opt('sint32', 5),
                    zero_threshold: opt('double', 6),
                    zero_count: opt('uint64', 7),
                    zero_count_float: opt('double', 8),
                    negative_span: rep('BucketSpan', 9),
                    negative_delta: rep('sint64', 10),
                    negative_count: rep('double', 11),
                    positive_span: rep('BucketSpan', 12),
                    positive_delta: rep('sint64', 13),
                    positive_count: rep('double', 14),
                    exemplars: rep('Exemplar', 16),
                  },
                },
                Bucket: {
                  fields: {
                    cumulative_count: opt('uint64', 1),
                    cumulative_count_float: opt('double', 4),
                    upper_bound: opt('double', 2),
                    exemplar: opt('Exemplar', 3),
                  },
                },
                BucketSpan: { fields: { offset: opt('sint32', 1), length: opt('uint32', 2) } },
                Exemplar: {
                  fields: {
                    label: rep('LabelPair', 1),
                    value: opt('double', 2),
                    timestamp: opt('google.protobuf.Timestamp', 3),
                  },
                },
                Metric: {
                  fields: {
                    label: rep('LabelPair', 1),
                    gauge: opt('Gauge', 2),
                    counter: opt('Counter', 3),
                    summary: opt('Summary', 4),
                    untyped: opt('Untyped', 5),
                    histogram: opt('Histogram', 7),
                    timestamp_ms: opt('int64', 6),
                  },
                },
                MetricFamily: {
                  fields: {
                    name: opt('string', 1),
                    help: opt('string', 2),
                    type: opt('MetricType', 3),
                    metric: rep('Metric', 4),
                    unit: opt('string', 5),
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

/** protobufjs reads a JSON message or enum without `edition` as proto3 (implicit presence, packed). */
function markProto2(ns: Record<string, unknown>): void {
  if ('fields' in ns || 'values' in ns) ns.edition = 'proto2';
  for (const child of Object.values((ns.nested ?? {}) as Record<string, Record<string, unknown>>)) markProto2(child);
}
markProto2(descriptor);

const root = protobuf.Root.fromJSON(descriptor);
root.resolveAll();

export const MetricFamilyType = root.lookupType('io.prometheus.client.MetricFamily');

/** A 64-bit integer as protobufjs hands it over: a long.js Long, or a number without long.js. */
export type Int64 = number | { toString(): string; unsigned?: boolean };

export interface Timestamp {
  seconds?: Int64;
  nanos?: number;
}
export interface LabelPair {
  name?: string;
  value?: string;
}
export interface Exemplar {
  label: LabelPair[];
  value?: number;
  timestamp?: Timestamp;
}
export interface Quantile {
  quantile?: number;
  value?: number;
}
export interface Bucket {
  cumulative_count?: Int64;
  cumulative_count_float?: number;
  upper_bound?: number;
  exemplar?: Exemplar;
}
export interface Histogram {
  sample_count?: Int64;
  sample_count_float?: number;
  sample_sum?: number;
  bucket: Bucket[];
  schema?: number;
  [native: string]: unknown;
}
export interface Metric {
  label: LabelPair[];
  gauge?: { value?: number };
  counter?: { value?: number; exemplar?: Exemplar; created_timestamp?: Timestamp };
  summary?: { sample_count?: Int64; sample_sum?: number; quantile: Quantile[]; created_timestamp?: Timestamp };
  untyped?: { value?: number };
  histogram?: Histogram;
  timestamp_ms?: Int64;
}
export interface MetricFamily {
  name?: string;
  help?: string;
  type?: number;
  metric: Metric[];
  unit?: string;
}

export const MetricType = {
  COUNTER: 0,
  GAUGE: 1,
  SUMMARY: 2,
  UNTYPED: 3,
  HISTOGRAM: 4,
  GAUGE_HISTOGRAM: 5,
} as const;

/** Whether a decoded (or built) message carries field `key`: proto2 presence, as Go's nil check. */
export function has<T extends object>(m: T | undefined, key: keyof T): boolean {
  return m != null && Object.hasOwn(m, key) && (m as Record<PropertyKey, unknown>)[key as PropertyKey] != null;
}

/** An int64/uint64 field as a bigint (exact, unlike Long#toNumber). */
export function toBigInt(v: Int64 | undefined): bigint {
  if (v == null) return 0n;
  return BigInt(typeof v === 'number' ? v : v.toString());
}
