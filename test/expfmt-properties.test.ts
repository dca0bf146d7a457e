/**
 * Property tests (fast-check) for src/expfmt: Go float formatting, the escaping rules of
 * prometheus/common's model package, protobuf round trips, and text renderings that parse back
 * to the samples of the families they came from.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import protobuf from 'protobufjs/light.js';
import {
  decodeFamilies,
  escapeName,
  isLegacyName,
  renderFamilies,
  unescapeName,
  type Escaping,
  type WireFormat,
} from '../src/expfmt/index.js';
import type { DecodedFamilies } from '../src/expfmt/decode.js';
import { formatGoFloat, formatOpenMetricsFloat, formatTextFloat } from '../src/expfmt/float.js';
import { MetricFamilyType } from '../src/expfmt/metrics-proto.js';

const RUNS = { numRuns: 300 };
const ESCAPINGS: Escaping[] = ['allow-utf-8', 'underscores', 'dots', 'values'];
const Long = protobuf.util.Long as unknown as { fromString(s: string, unsigned: boolean): object };

describe('Go float formatting (strconv.FormatFloat(f, \'g\', -1, 64))', () => {
  test('reads back as the same number, in %e form exactly when the exponent is < -4 or >= 6', () => {
    const nearPowers = fc.tuple(fc.integer({ min: -8, max: 8 }), fc.constantFrom(1, 0.9999995, 0.99999999, 9.9999995)).map(([e, m]) => m * 10 ** e);
    fc.assert(
      fc.property(fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), nearPowers), (f) => {
        const s = formatGoFloat(f);
        assert.ok(Object.is(Number(s), f) || (f === 0 && Number(s) === 0), `${f} -> ${s}`);
        // The decimal exponent of the shortest digits (rounding to one digit could carry 9.99 to 10).
        const exp = Number(Math.abs(f).toExponential().split('e')[1]);
        const eForm = /e[+-]\d{2,3}$/.test(s);
        assert.equal(eForm, exp < -4 || exp >= 6, `${f} -> ${s}`);
        if (!eForm) assert.ok(!s.includes('e'));
      }),
      { numRuns: 2000 },
    );
  });

  test('text and OpenMetrics spell the special values and integers as expfmt does', () => {
    fc.assert(
      fc.property(fc.double(), (f) => {
        const t = formatTextFloat(f);
        const o = formatOpenMetricsFloat(f);
        if (Number.isNaN(f)) return assert.ok(t === 'NaN' && o === 'NaN');
        if (f === Infinity) return assert.ok(t === '+Inf' && o === '+Inf');
        if (f === -Infinity) return assert.ok(t === '-Inf' && o === '-Inf');
        assert.equal(Number(t), f === 0 ? 0 : f);
        assert.equal(Number(o), f === 0 ? 0 : f);
        // OpenMetrics adds ".0" exactly where the text form has neither "." nor "e".
        assert.equal(o, /[.e]/.test(t) ? t : `${t}.0`);
      }),
      { numRuns: 2000 },
    );
  });
});

const legacyName = fc.stringMatching(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,12}$/);
const anyName = fc.string({ unit: 'binary', minLength: 1, maxLength: 10 });
const someName = fc.oneof(legacyName, anyName);

describe('name escaping (model.EscapeName / UnescapeName)', () => {
  test('leaves a legacy name alone under underscores and values', () => {
    fc.assert(
      fc.property(legacyName, (name) => {
        assert.equal(escapeName(name, 'underscores'), name);
        assert.equal(escapeName(name, 'values'), name);
        assert.equal(escapeName(name, 'allow-utf-8'), name);
      }),
      RUNS,
    );
  });

  test('always gives a legacy name, except allow-utf-8 which changes nothing', () => {
    fc.assert(
      fc.property(anyName, (name) => {
        for (const scheme of ['underscores', 'dots', 'values'] as const) assert.ok(isLegacyName(escapeName(name, scheme)), `${scheme}: ${escapeName(name, scheme)}`);
        assert.equal(escapeName(name, 'allow-utf-8'), name);
      }),
      RUNS,
    );
  });

  test('underscores replaces each offending character by one underscore', () => {
    fc.assert(
      fc.property(anyName, (name) => {
        const escaped = escapeName(name, 'underscores');
        assert.equal([...escaped].length, [...name].length);
        [...name].forEach((c, i) => assert.equal([...escaped][i], isLegacyName(i === 0 ? c : `a${c}`) ? c : '_'));
      }),
      RUNS,
    );
  });

  test('values is undone by unescapeName for every name it changes', () => {
    fc.assert(
      fc.property(anyName, (name) => {
        if (!isLegacyName(name)) assert.equal(unescapeName(escapeName(name, 'values'), 'values'), name);
      }),
      RUNS,
    );
  });

  test('dots is undone by unescapeName for dotted names of legacy characters (others map to "__")', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-zA-Z:][a-zA-Z0-9:._]{0,12}$/), (name) => {
        fc.pre(!name.includes('_dot_'));
        assert.equal(unescapeName(escapeName(name, 'dots'), 'dots'), name);
      }),
      RUNS,
    );
  });
});

// Families as protobufjs plain objects, every type, names legacy or not.
const value = fc.double();
const count = fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((b) => Long.fromString(b.toString(), true)));
const labels = fc.uniqueArray(fc.record({ name: someName, value: fc.string({ unit: 'binary', maxLength: 8 }) }), {
  selector: (l) => l.name,
  maxLength: 3,
});
const timestamp = fc.option(fc.integer({ min: -(2 ** 40), max: 2 ** 42 }), { nil: undefined });
const exemplar = fc.option(
  fc.record({
    label: labels,
    value,
    timestamp: fc.option(fc.record({ seconds: fc.integer({ min: 0, max: 2 ** 33 }), nanos: fc.integer({ min: 0, max: 999_999_999 }) }), { nil: undefined }),
  }, { requiredKeys: ['label', 'value'] }),
  { nil: undefined },
);
const sortedBounds = fc.uniqueArray(fc.double({ noNaN: true }), { maxLength: 4 }).map((b) => b.sort((x, y) => x - y));
const histogram = fc.record({
  sample_count: count,
  sample_sum: value,
  bucket: fc.tuple(sortedBounds, fc.array(fc.nat(), { minLength: 4, maxLength: 4 }), fc.array(exemplar, { minLength: 4, maxLength: 4 })).map(([bounds, counts, exemplars]) =>
    bounds.map((upper_bound, i) => ({ upper_bound, cumulative_count: counts[i]!, ...(exemplars[i] ? { exemplar: exemplars[i] } : {}) })),
  ),
  schema: fc.integer({ min: -4, max: 8 }),
  zero_threshold: fc.double({ min: 0, max: 1, noNaN: true }),
  positive_span: fc.array(fc.record({ offset: fc.integer({ min: -5, max: 5 }), length: fc.nat({ max: 3 }) }), { maxLength: 2 }),
  positive_delta: fc.array(fc.integer({ min: -5, max: 5 }), { maxLength: 3 }),
}, { requiredKeys: ['sample_count', 'sample_sum', 'bucket'] });

const withTimestamp = <T extends object>(m: T, ts: number | undefined) => (ts === undefined ? m : { ...m, timestamp_ms: ts });
const family = fc.oneof(
  fc.record({ type: fc.constant(0), v: fc.array(fc.tuple(labels, value, exemplar, timestamp), { minLength: 1, maxLength: 3 }) }).map(({ type, v }) => ({
    type,
    metric: v.map(([label, val, ex, ts]) => withTimestamp({ label, counter: { value: val, ...(ex ? { exemplar: ex } : {}) } }, ts)),
  })),
  fc.record({ type: fc.constantFrom(1, 3), v: fc.array(fc.tuple(labels, value, timestamp), { minLength: 1, maxLength: 3 }) }).map(({ type, v }) => ({
    type,
    metric: v.map(([label, val, ts]) => withTimestamp({ label, ...(type === 1 ? { gauge: { value: val } } : { untyped: { value: val } }) }, ts)),
  })),
  fc.record({
    type: fc.constant(2),
    v: fc.array(fc.tuple(labels, count, value, fc.array(fc.record({ quantile: value, value }), { maxLength: 3 })), { minLength: 1, maxLength: 2 }),
  }).map(({ type, v }) => ({ type, metric: v.map(([label, sample_count, sample_sum, quantile]) => ({ label, summary: { sample_count, sample_sum, quantile } })) })),
  fc.record({ type: fc.constantFrom(4, 5), v: fc.array(fc.tuple(labels, histogram, timestamp), { minLength: 1, maxLength: 2 }) }).map(({ type, v }) => ({
    type,
    metric: v.map(([label, h, ts]) => withTimestamp({ label, histogram: h }, ts)),
  })),
);
const families = fc.uniqueArray(
  fc.tuple(someName, fc.option(fc.string({ unit: 'binary', maxLength: 12 }), { nil: undefined }), family).map(([name, help, f]) => ({
    name,
    ...(help === undefined ? {} : { help }),
    ...f,
  })),
  { selector: (f) => f.name, minLength: 1, maxLength: 4 },
);
const encode = (fs: object[]) => Buffer.concat(fs.map((f) => MetricFamilyType.encodeDelimited(f as never).finish()));

describe('protobuf round trips', () => {
  test('a decoded family re-encodes to its own bytes (presence and field order kept)', () => {
    fc.assert(
      fc.property(families, (fs) => {
        const body = encode(fs);
        const decoded = decodeFamilies(body) as DecodedFamilies;
        decoded.list.forEach((f, i) => assert.ok(Buffer.from(MetricFamilyType.encodeDelimited(f as never).finish()).equals(decoded.raw[i]!)));
        assert.ok(renderFamilies(decoded, { kind: 'protobuf', escaping: 'allow-utf-8' }).equals(body));
      }),
      RUNS,
    );
  });

  test('protobuf with an escaping scheme, read back, renders as text what text with that scheme renders', () => {
    fc.assert(
      fc.property(families, fc.constantFrom(...ESCAPINGS), (fs, escaping) => {
        const decoded = decodeFamilies(encode(fs));
        const pb = renderFamilies(decoded, { kind: 'protobuf', escaping });
        for (const kind of ['text', 'openmetrics'] as const) {
          const target = (e: Escaping): WireFormat => (kind === 'text' ? { kind, version: '0.0.4', escaping: e } : { kind, version: '1.0.0', escaping: e });
          let direct: string | Error;
          let viaProtobuf: string | Error;
          try {
            direct = renderFamilies(decoded, target(escaping)).toString();
          } catch (err) {
            direct = err as Error;
          }
          try {
            viaProtobuf = renderFamilies(decodeFamilies(pb), target('allow-utf-8')).toString();
          } catch (err) {
            viaProtobuf = err as Error;
          }
          if (direct instanceof Error || viaProtobuf instanceof Error) assert.equal(String(viaProtobuf), String(direct));
          else assert.equal(viaProtobuf, direct);
        }
      }),
      RUNS,
    );
  });
});

// A small reader for sample lines: `name{l="v",...} value[ timestamp][ # exemplar]`, names
// plain or quoted, the name possibly inside the braces.
interface Sample {
  name: string;
  labels: [string, string][];
  value: string;
}
function readQuoted(s: string, at: number): [string, number] {
  let out = '';
  let i = at + 1;
  for (; s[i] !== '"'; i++) {
    if (s[i] === '\\') {
      i++;
      out += s[i] === 'n' ? '\n' : s[i];
    } else out += s[i];
  }
  return [out, i + 1];
}
function readName(s: string, at: number): [string, number] {
  if (s[at] === '"') return readQuoted(s, at);
  let i = at;
  while (i < s.length && /[a-zA-Z0-9_:]/.test(s[i]!)) i++;
  return [s.slice(at, i), i];
}
function parseSample(line: string): Sample {
  let [name, i] = readName(line, 0);
  const labels: [string, string][] = [];
  if (line[i] === '{') {
    i++;
    let first = true;
    while (line[i] !== '}') {
      if (!first) {
        assert.equal(line[i], ',');
        i++;
      }
      const [key, afterKey] = readName(line, i);
      if (first && name === '' && line[afterKey] !== '=') {
        name = key;
        i = afterKey;
      } else {
        assert.equal(line[afterKey], '=');
        const [val, afterValue] = readQuoted(line, afterKey + 1);
        labels.push([key, val]);
        i = afterValue;
      }
      first = false;
    }
    i++;
  }
  assert.equal(line[i], ' ');
  const rest = line.slice(i + 1).split(' ');
  return { name, labels, value: rest[0]! };
}
function samplesOf(body: string): Sample[] {
  return body
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('# '))
    .map(parseSample);
}
const number = (s: string) => (s === '+Inf' ? Infinity : s === '-Inf' ? -Infinity : Number(s));
const asNumber = (v: unknown) => (typeof v === 'number' ? v : Number(BigInt(String(v))));

/** The samples expfmt writes for a family, in order, with escaped names. */
function expectedSamples(f: ReturnType<typeof Object>, escaping: Escaping): { name: string; labels: [string, string][]; value: number }[] {
  const esc = (n: string) => (isLegacyName(n) ? n : escapeName(n, escaping));
  const name = esc(f.name);
  const out: { name: string; labels: [string, string][]; value: number }[] = [];
  for (const m of f.metric) {
    const ls: [string, string][] = m.label.map((l: { name: string; value: string }) => [esc(l.name), l.value]);
    const add = (suffix: string, v: number, extra?: [string, string]) => out.push({ name: name + suffix, labels: extra ? [...ls, extra] : ls, value: v });
    if (m.counter) add('', m.counter.value);
    if (m.gauge) add('', m.gauge.value);
    if (m.untyped) add('', m.untyped.value);
    if (m.summary) {
      for (const q of m.summary.quantile) add('', q.value, ['quantile', formatTextFloat(q.quantile)]);
      add('_sum', m.summary.sample_sum);
      add('_count', asNumber(m.summary.sample_count));
    }
    if (m.histogram) {
      const h = m.histogram;
      for (const b of h.bucket) add('_bucket', b.cumulative_count, ['le', formatTextFloat(b.upper_bound)]);
      if (!h.bucket.some((b: { upper_bound: number }) => b.upper_bound === Infinity)) add('_bucket', asNumber(h.sample_count), ['le', '+Inf']);
      add('_sum', h.sample_sum);
      add('_count', asNumber(h.sample_count));
    }
  }
  return out;
}

describe('text renderings parse back to the families\' samples', () => {
  test('text 0.0.4 and OpenMetrics, every scheme: names, labels in order, values', () => {
    fc.assert(
      fc.property(families, fc.constantFrom(...ESCAPINGS), (fs, escaping) => {
        const decoded = decodeFamilies(encode(fs));
        const want = fs.flatMap((f) => expectedSamples(f, escaping));
        for (const target of [
          { kind: 'text', version: '0.0.4', escaping },
          { kind: 'openmetrics', version: '1.0.0', escaping },
        ] as WireFormat[]) {
          const got = samplesOf(renderFamilies(decoded, target).toString());
          assert.equal(got.length, want.length);
          got.forEach((g, i) => {
            const w = want[i]!;
            assert.equal(g.name, w.name);
            // OpenMetrics writes le and quantile values in its own float spelling.
            assert.deepEqual(g.labels.map(([k, v]) => [k, k === 'le' || k === 'quantile' ? String(number(v)) : v]), w.labels.map(([k, v]) => [k, k === 'le' || k === 'quantile' ? String(number(v)) : v]));
            const gv = number(g.value);
            assert.ok(Object.is(gv, w.value) || (Number.isNaN(gv) && Number.isNaN(w.value)) || (gv === 0 && w.value === 0), `${g.name}: ${g.value} vs ${w.value}`);
          });
        }
      }),
      RUNS,
    );
  });
});
