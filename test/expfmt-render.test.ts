/**
 * What src/expfmt writes for each answer, case by case, as expfmt's encoders write it (the
 * byte-for-byte comparison with real processes is expfmt-real.test.ts; OpenMetrics, which
 * neither of those processes serves, is pinned here).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  contentTypeOf,
  decodeFamilies,
  ExpfmtError,
  parseContentType,
  renderFamilies,
  type Escaping,
  type WireFormat,
} from '../src/expfmt/index.js';
import { MetricFamilyType } from '../src/expfmt/metrics-proto.js';
import { pushedFamilies } from './fixtures/expfmt/pushed-families.js';

const encode = (families: object[]) => Buffer.concat(families.map((f) => MetricFamilyType.encodeDelimited(f as never).finish()));
const render = (families: object[], target: WireFormat) => renderFamilies(decodeFamilies(encode(families)), target).toString('utf8');
const text = (escaping: Escaping = 'allow-utf-8'): WireFormat => ({ kind: 'text', version: '0.0.4', escaping });
const om = (escaping: Escaping = 'allow-utf-8', version: '1.0.0' | '0.0.1' = '1.0.0'): WireFormat => ({ kind: 'openmetrics', version, escaping });
const pair = (name: string, value: string) => ({ name, value });

describe('text 0.0.4', () => {
  test('writes HELP with backslash and newline escaped but quotes kept, then TYPE, then samples in order', () => {
    const out = render([{ name: 'a_total', help: 'x \\ "y"\nz', type: 0, metric: [{ label: [pair('b', 'q"\\\n')], counter: { value: 2 } }] }], text());
    assert.equal(out, '# HELP a_total x \\\\ "y"\\nz\n# TYPE a_total counter\na_total{b="q\\"\\\\\\n"} 2\n');
  });

  test('writes timestamps as integer milliseconds after the value', () => {
    const out = render([{ name: 'g', type: 1, metric: [{ label: [], gauge: { value: 0.5 }, timestamp_ms: -1234 }, { label: [], gauge: { value: 1 }, timestamp_ms: 1700000000123 }] }], text());
    assert.equal(out, '# TYPE g gauge\ng 0.5 -1234\ng 1 1700000000123\n');
  });

  test('writes a summary count and histogram counts as floats (1e+06), and adds the missing +Inf bucket', () => {
    const out = render(
      [
        { name: 's', type: 2, metric: [{ label: [], summary: { sample_count: 1000000, sample_sum: 3, quantile: [{ quantile: 0.5, value: 1 }] } }] },
        { name: 'h', type: 4, metric: [{ label: [pair('x', 'y')], histogram: { sample_count: 2000000, sample_sum: 0, bucket: [{ upper_bound: 0.25, cumulative_count: 1500000 }] } }] },
      ],
      text(),
    );
    assert.equal(
      out,
      '# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 3\ns_count 1e+06\n' +
        '# TYPE h histogram\nh_bucket{x="y",le="0.25"} 1.5e+06\nh_bucket{x="y",le="+Inf"} 2e+06\nh_sum{x="y"} 0\nh_count{x="y"} 2e+06\n',
    );
  });

  test('writes a native-only histogram as its +Inf bucket, sum and count, and a gauge histogram as a histogram', () => {
    const native = { sample_count: 3, sample_sum: 1.5, schema: 2, zero_threshold: 1e-128, zero_count: 1, positive_span: [{ offset: 0, length: 1 }], positive_delta: [2] };
    const out = render(
      [
        { name: 'n', type: 4, metric: [{ label: [], histogram: native }] },
        { name: 'gh', type: 5, metric: [{ label: [], histogram: { sample_count: 1, sample_sum: 1, bucket: [{ upper_bound: 1, cumulative_count: 1 }] } }] },
      ],
      text(),
    );
    assert.equal(
      out,
      '# TYPE n histogram\nn_bucket{le="+Inf"} 3\nn_sum 1.5\nn_count 3\n' +
        '# TYPE gh histogram\ngh_bucket{le="1"} 1\ngh_bucket{le="+Inf"} 1\ngh_sum 1\ngh_count 1\n',
    );
  });

  test('writes float histogram counts', () => {
    const out = render([{ name: 'f', type: 4, metric: [{ label: [], histogram: { sample_count_float: 2.5, sample_sum: 1, bucket: [{ upper_bound: 1, cumulative_count_float: 0.5 }] } }] }], text());
    assert.equal(out, '# TYPE f histogram\nf_bucket{le="1"} 0.5\nf_bucket{le="+Inf"} 2.5\nf_sum 1\nf_count 2.5\n');
  });

  test('quotes UTF-8 names with allow-utf-8 and escapes them with each other scheme', () => {
    const family = [{ name: 'app.requests_total', type: 0, metric: [{ label: [pair('service.name', 'api'), pair('code', '200')], counter: { value: 7 } }] }];
    assert.equal(render(family, text('allow-utf-8')), '# TYPE "app.requests_total" counter\n{"app.requests_total","service.name"="api",code="200"} 7\n');
    assert.equal(render(family, text('underscores')), '# TYPE app_requests_total counter\napp_requests_total{service_name="api",code="200"} 7\n');
    assert.equal(render(family, text('dots')), '# TYPE app_dot_requests__total counter\napp_dot_requests__total{service_dot_name="api",code="200"} 7\n');
    assert.equal(render(family, text('values')), '# TYPE U__app_2e_requests__total counter\nU__app_2e_requests__total{U__service_2e_name="api",code="200"} 7\n');
  });

  test('leaves legacy names alone under every scheme, even their underscores under dots', () => {
    const family = [{ name: 'a_b', type: 1, metric: [{ label: [pair('c_d', 'e.f')], gauge: { value: 1 } }] }];
    for (const escaping of ['allow-utf-8', 'underscores', 'dots', 'values'] as const) {
      assert.equal(render(family, text(escaping)), '# TYPE a_b gauge\na_b{c_d="e.f"} 1\n');
    }
  });
});

describe('OpenMetrics 1.0.0', () => {
  test('renders the pushed set as expfmt does: _total, unknown, UNIT, integer counts, exemplars, # EOF', () => {
    const out = render(pushedFamilies, om('underscores'));
    const expected = [
      '# HELP demo_requests Requests \\\\ served.\\nSecond line \\"quoted\\"',
      '# TYPE demo_requests counter',
      'demo_requests_total{code="200",path="/a\\"b\\\\c\\nd"} 1027.0 # {trace_id="abc123"} 0.5 1.7000000001230001e+09',
      'demo_requests_total{code="500",path="/"} 1.23456789e+07',
      'demo_requests_total{code="503",path="/"} 0.0',
      '# HELP demo_events A counter without the suffix.',
      '# TYPE demo_events unknown',
      'demo_events 1e+21',
      '# HELP demo_temperature_celsius Gauge with a unit.',
      '# TYPE demo_temperature_celsius gauge',
      '# UNIT demo_temperature_celsius celsius',
      'demo_temperature_celsius{room="a"} -1.0',
      'demo_temperature_celsius{room="b"} 3.5e-07',
      'demo_temperature_celsius{room="c"} +Inf',
      'demo_temperature_celsius{room="d"} -Inf',
      'demo_temperature_celsius{room="e"} NaN',
      'demo_temperature_celsius{room="f"} 123456.0',
      'demo_temperature_celsius{room="g"} 1.234567e+06',
      'demo_temperature_celsius{room="h"} -0.0001',
      'demo_temperature_celsius{room="i"} 0.30000000000000004',
      '# TYPE demo_untyped unknown',
      'demo_untyped 42.0',
      '# HELP demo_latency_seconds Summary.',
      '# TYPE demo_latency_seconds summary',
      'demo_latency_seconds{op="read",quantile="0.5"} 0.05',
      'demo_latency_seconds{op="read",quantile="0.9"} 0.2',
      'demo_latency_seconds{op="read",quantile="0.99"} NaN',
      'demo_latency_seconds_sum{op="read"} 1234.5',
      'demo_latency_seconds_count{op="read"} 1000000',
      '# HELP demo_size_bytes Classic histogram.',
      '# TYPE demo_size_bytes histogram',
      'demo_size_bytes_bucket{kind="noinf",le="100.0"} 3 # {trace_id="b1"} 42.0 1.700000001e+09',
      'demo_size_bytes_bucket{kind="noinf",le="1000.0"} 10',
      'demo_size_bytes_bucket{kind="noinf",le="10000.0"} 15',
      'demo_size_bytes_bucket{kind="noinf",le="+Inf"} 17',
      'demo_size_bytes_sum{kind="noinf"} 12345.5',
      'demo_size_bytes_count{kind="noinf"} 17',
      'demo_size_bytes_bucket{kind="inf",le="0.1"} 2',
      'demo_size_bytes_bucket{kind="inf",le="+Inf"} 5',
      'demo_size_bytes_sum{kind="inf"} 0.25',
      'demo_size_bytes_count{kind="inf"} 5',
      '# HELP demo_native_seconds Native histogram only.',
      '# TYPE demo_native_seconds histogram',
      'demo_native_seconds_bucket{le="+Inf"} 6',
      'demo_native_seconds_sum 3.5',
      'demo_native_seconds_count 6',
      '# HELP demo_mixed_seconds Native and classic.',
      '# TYPE demo_mixed_seconds histogram',
      'demo_mixed_seconds_bucket{le="0.5"} 1',
      'demo_mixed_seconds_bucket{le="1.0"} 3',
      'demo_mixed_seconds_bucket{le="+Inf"} 4',
      'demo_mixed_seconds_sum 1.5',
      'demo_mixed_seconds_count 4',
      '# HELP demo_queue_depth Gauge histogram.',
      '# TYPE demo_queue_depth gaugehistogram',
      'demo_queue_depth_bucket{le="1.0"} 1',
      'demo_queue_depth_bucket{le="5.0"} 3',
      'demo_queue_depth_bucket{le="+Inf"} 3',
      'demo_queue_depth_sum 7.0',
      'demo_queue_depth_count 3',
      '# HELP app_demo_requests UTF-8 metric and label names.',
      '# TYPE app_demo_requests counter',
      'app_demo_requests_total{service_name="api",http_method="GET",_n_code___="x"} 7.0',
      '# HELP demo_gauge A dotted gauge.',
      '# TYPE demo_gauge gauge',
      'demo_gauge{le_gacy="y",plain_label="z"} 2.0',
      '# TYPE demo_legacy_with_utf8_label gauge',
      'demo_legacy_with_utf8_label{service_name="a"} 3.0',
      '# HELP demo_under_score A legacy name with underscores keeps them under dots.',
      '# TYPE demo_under_score gauge',
      'demo_under_score{a_b="c"} 1.0',
      '# EOF',
      '',
    ].join('\n');
    assert.equal(out, expected);
  });

  test('quotes UTF-8 names with allow-utf-8, the counter announced without _total', () => {
    const family = [{ name: 'app.requests_total', help: 'h', type: 0, metric: [{ label: [pair('service.name', 'api')], counter: { value: 7 } }] }];
    assert.equal(render(family, om()), '# HELP "app.requests" h\n# TYPE "app.requests" counter\n{"app.requests_total","service.name"="api"} 7.0\n# EOF\n');
  });

  test('writes timestamps as seconds, and no exemplar without labels', () => {
    const out = render(
      [{ name: 'c_total', type: 0, metric: [{ label: [], counter: { value: 1, exemplar: { label: [], value: 3 } }, timestamp_ms: 1234567890 }] }],
      om(),
    );
    assert.equal(out, '# TYPE c counter\nc_total 1.0 1.23456789e+06\n# EOF\n');
  });

  test('0.0.1 has the same body as 1.0.0', () => {
    assert.equal(render(pushedFamilies, om('values', '0.0.1')), render(pushedFamilies, om('values', '1.0.0')));
  });

  test('refuses a float histogram, which OpenMetrics 1.0 cannot carry', () => {
    const family = [{ name: 'f', type: 4, metric: [{ label: [], histogram: { sample_count_float: 2.5, sample_sum: 1, bucket: [{ upper_bound: 1, cumulative_count_float: 0.5 }] } }] }];
    assert.throws(() => render(family, om()), ExpfmtError);
  });
});

describe('what expfmt refuses to encode is an ExpfmtError, not a partial body', () => {
  test('a family without metrics in text, a family without a name, a metric without its type', () => {
    assert.throws(() => render([{ name: 'x', type: 1, metric: [] }], text()), ExpfmtError);
    assert.throws(() => render([{ type: 1, metric: [{ label: [], gauge: { value: 1 } }] }], text()), ExpfmtError);
    assert.throws(() => render([{ type: 1, metric: [{ label: [], gauge: { value: 1 } }] }], om()), ExpfmtError);
    assert.throws(() => render([{ name: 'x', type: 0, metric: [{ label: [], gauge: { value: 1 } }] }], text()), ExpfmtError);
    assert.throws(() => render([{ name: 'x', type: 2, metric: [{ label: [], gauge: { value: 1 } }] }], om()), ExpfmtError);
  });

  test('OpenMetrics writes a family without metrics as its HELP and TYPE', () => {
    assert.equal(render([{ name: 'x', help: 'h', type: 1, metric: [] }], om()), '# HELP x h\n# TYPE x gauge\n# EOF\n');
  });
});

describe('protobuf', () => {
  test('is the original body when no name needs escaping, or when UTF-8 names are allowed', () => {
    const legacy = encode([{ name: 'a', type: 1, metric: [{ label: [pair('b', 'c')], gauge: { value: 1 } }] }]);
    for (const escaping of ['allow-utf-8', 'underscores', 'dots', 'values'] as const) {
      assert.ok(renderFamilies(decodeFamilies(legacy), { kind: 'protobuf', escaping }, legacy).equals(legacy));
    }
    const utf8 = encode(pushedFamilies);
    assert.ok(renderFamilies(decodeFamilies(utf8), { kind: 'protobuf', escaping: 'allow-utf-8' }, utf8).equals(utf8));
  });

  test('re-encodes only the families with names to escape, with escaped names', () => {
    const body = encode(pushedFamilies);
    const out = renderFamilies(decodeFamilies(body), { kind: 'protobuf', escaping: 'dots' }, body);
    assert.ok(!out.equals(body));
    const text004 = renderFamilies(decodeFamilies(out), text('allow-utf-8')).toString();
    assert.equal(text004, renderFamilies(decodeFamilies(body), text('dots')).toString());
  });
});

describe('Content-Type', () => {
  const all: WireFormat[] = (['allow-utf-8', 'underscores', 'dots', 'values'] as const).flatMap((escaping) => [
    { kind: 'protobuf', escaping } as const,
    { kind: 'text', version: '0.0.4', escaping } as const,
    { kind: 'openmetrics', version: '1.0.0', escaping } as const,
    { kind: 'openmetrics', version: '0.0.1', escaping } as const,
  ]);

  test('is what promhttp writes: the negotiated format, then "; escaping=" and the scheme', () => {
    assert.equal(contentTypeOf({ kind: 'text', version: '0.0.4', escaping: 'underscores' }), 'text/plain; version=0.0.4; charset=utf-8; escaping=underscores');
    assert.equal(
      contentTypeOf({ kind: 'protobuf', escaping: 'allow-utf-8' }),
      'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=allow-utf-8',
    );
    assert.equal(contentTypeOf({ kind: 'openmetrics', version: '0.0.1', escaping: 'values' }), 'application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=values');
  });

  test('parses back to the same answer for every format and scheme', () => {
    for (const target of all) assert.deepEqual(parseContentType(contentTypeOf(target)), target);
  });

  test('reads an older client_golang (no escaping parameter) as underscores, and ignores case and spacing', () => {
    assert.deepEqual(parseContentType('text/plain; version=0.0.4'), { kind: 'text', version: '0.0.4', escaping: 'underscores' });
    assert.deepEqual(parseContentType('text/plain'), { kind: 'text', version: '0.0.4', escaping: 'underscores' });
    assert.deepEqual(parseContentType('Application/OpenMetrics-Text;Version=1.0.0;charset=utf-8'), { kind: 'openmetrics', version: '1.0.0', escaping: 'underscores' });
    assert.deepEqual(
      parseContentType('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=bogus'),
      { kind: 'protobuf', escaping: 'underscores' },
    );
  });

  test('is undefined for what this module cannot render', () => {
    for (const value of [
      'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text',
      'application/vnd.google.protobuf; proto=other; encoding=delimited',
      'text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8',
      'application/openmetrics-text; version=2.0.0; charset=utf-8',
      'application/openmetrics-text; charset=utf-8',
      'application/json',
      '',
    ]) {
      assert.equal(parseContentType(value), undefined, value);
    }
  });
});
