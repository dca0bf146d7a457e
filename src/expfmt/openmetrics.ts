/**
 * OpenMetrics 1.0 text as expfmt's MetricFamilyToOpenMetrics writes it (promhttp's default: no
 * `_created` lines). A counter named `..._total` is announced without the suffix and keeps it on
 * its samples; one without the suffix, and an untyped family, are `unknown`. Exemplars follow
 * counter and bucket samples when they have labels. Integer counts print as integers; timestamps
 * are seconds as floats. The closing `# EOF` is the caller's (renderFamilies writes it).
 */
import { ExpfmtError } from './errors.js';
import { formatOpenMetricsFloat } from './float.js';
import type { Exemplar, MetricFamily, Timestamp } from './metrics-proto.js';
import { has, MetricType, toBigInt } from './metrics-proto.js';
import { escapeQuoted, spellName } from './names.js';
import { labelsText, seriesName } from './text.js';

// google.protobuf.Timestamp's valid range (Timestamp.CheckValid): years 1 to 9999.
const MIN_SECONDS = -62135596800n;
const MAX_SECONDS = 253402300799n;

function timestampSeconds(ts: Timestamp): number {
  const seconds = toBigInt(ts.seconds);
  const nanos = ts.nanos ?? 0;
  if (seconds < MIN_SECONDS || seconds > MAX_SECONDS || nanos < 0 || nanos >= 1e9) {
    throw new ExpfmtError(`exemplar timestamp ${seconds}s ${nanos}ns is out of range`);
  }
  // Go: float64(ts.AsTime().UnixNano()) / 1e9, UnixNano wrapping at int64.
  return Number(BigInt.asIntN(64, seconds * 1_000_000_000n + BigInt(nanos))) / 1e9;
}

function exemplarText(e: Exemplar): string {
  let s = ` # {${labelsText(e.label)}} ${formatOpenMetricsFloat(e.value ?? 0)}`;
  if (has(e, 'timestamp')) s += ` ${formatOpenMetricsFloat(timestampSeconds(e.timestamp!))}`;
  return s;
}

function sample(
  out: string[],
  name: string,
  labels: string,
  extra: string,
  value: number | bigint,
  ts: string,
  exemplar?: Exemplar,
): void {
  const v = typeof value === 'bigint' ? value.toString() : formatOpenMetricsFloat(value);
  const e = exemplar != null && exemplar.label.length > 0 ? exemplarText(exemplar) : '';
  out.push(seriesName(name, labels, extra), ' ', v, ts, e, '\n');
}

const le = (bound: number) => `le="${formatOpenMetricsFloat(bound)}"`;

function expected(what: string, name: string): ExpfmtError {
  return new ExpfmtError(`expected ${what} in a metric of family ${name}`);
}

function floatHistogram(name: string): ExpfmtError {
  return new ExpfmtError(`OpenMetrics 1.0 has no float histograms (family ${name})`);
}

/** Appends one family's lines to `out`; throws ExpfmtError where expfmt's encoder errs. */
export function writeOpenMetricsFamily(out: string[], f: MetricFamily): void {
  const name = f.name ?? '';
  if (name === '') throw new ExpfmtError('a family has no name');
  const type = f.type ?? MetricType.COUNTER;
  const totalCounter = type === MetricType.COUNTER && name.endsWith('_total');
  const announced = totalCounter ? name.slice(0, -'_total'.length) : name;
  let word: string;
  switch (type) {
    case MetricType.COUNTER:
      word = totalCounter ? 'counter' : 'unknown';
      break;
    case MetricType.GAUGE:
      word = 'gauge';
      break;
    case MetricType.SUMMARY:
      word = 'summary';
      break;
    case MetricType.UNTYPED:
      word = 'unknown';
      break;
    case MetricType.HISTOGRAM:
      word = 'histogram';
      break;
    case MetricType.GAUGE_HISTOGRAM:
      word = 'gaugehistogram';
      break;
    default:
      throw new ExpfmtError(`family ${name} has unknown metric type ${type}`);
  }
  if (has(f, 'help')) out.push('# HELP ', spellName(announced), ' ', escapeQuoted(f.help!), '\n');
  out.push('# TYPE ', spellName(announced), ' ', word, '\n');
  if (has(f, 'unit')) out.push('# UNIT ', spellName(announced), ' ', escapeQuoted(f.unit!), '\n');
  for (const m of f.metric) {
    const labels = labelsText(m.label);
    const ts = has(m, 'timestamp_ms') ? ` ${formatOpenMetricsFloat(Number(toBigInt(m.timestamp_ms)) / 1000)}` : '';
    switch (type) {
      case MetricType.COUNTER:
        if (!has(m, 'counter')) throw expected('counter', name);
        sample(out, name, labels, '', m.counter!.value ?? 0, ts, m.counter!.exemplar);
        break;
      case MetricType.GAUGE:
        if (!has(m, 'gauge')) throw expected('gauge', name);
        sample(out, name, labels, '', m.gauge!.value ?? 0, ts);
        break;
      case MetricType.UNTYPED:
        if (!has(m, 'untyped')) throw expected('untyped', name);
        sample(out, name, labels, '', m.untyped!.value ?? 0, ts);
        break;
      case MetricType.SUMMARY: {
        if (!has(m, 'summary')) throw expected('summary', name);
        const s = m.summary!;
        for (const q of s.quantile) sample(out, name, labels, `quantile="${formatOpenMetricsFloat(q.quantile ?? 0)}"`, q.value ?? 0, ts);
        sample(out, `${name}_sum`, labels, '', s.sample_sum ?? 0, ts);
        sample(out, `${name}_count`, labels, '', toBigInt(s.sample_count), ts);
        break;
      }
      default: {
        if (!has(m, 'histogram')) throw expected('histogram', name);
        const h = m.histogram!;
        let infSeen = false;
        for (const b of h.bucket) {
          if ((b.cumulative_count_float ?? 0) > 0) throw floatHistogram(name);
          sample(out, `${name}_bucket`, labels, le(b.upper_bound ?? 0), toBigInt(b.cumulative_count), ts, b.exemplar);
          if (b.upper_bound === Infinity) infSeen = true;
        }
        if (!infSeen) sample(out, `${name}_bucket`, labels, le(Infinity), toBigInt(h.sample_count), ts);
        sample(out, `${name}_sum`, labels, '', h.sample_sum ?? 0, ts);
        if ((h.sample_count_float ?? 0) > 0) throw floatHistogram(name);
        sample(out, `${name}_count`, labels, '', toBigInt(h.sample_count), ts);
      }
    }
  }
}
