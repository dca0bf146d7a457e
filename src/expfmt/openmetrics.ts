/**
 * OpenMetrics 1.0 text as expfmt's MetricFamilyToOpenMetrics writes it (promhttp's default: no
 * `_created` lines). A counter named `..._total` is announced without the suffix and keeps it on
 * its samples; one without the suffix, and an untyped family, are `unknown`. Exemplars follow
 * counter and bucket samples when they have labels. Integer counts print as integers; timestamps
 * are seconds as floats. The closing `# EOF` is the caller's (renderFamilies writes it).
 */
import { ExpfmtError } from './errors.js';
import { formatOpenMetricsFloat } from './float.js';
import type { Exemplar, Metric, MetricFamily, Timestamp } from './metrics-proto.js';
import { has, MetricType, toBigInt } from './metrics-proto.js';
import { escapeQuoted, spellName } from './names.js';
import { seriesName } from './text.js';

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
  let s = ` # ${seriesName('', e.label, '', 0, formatOpenMetricsFloat)} ${formatOpenMetricsFloat(e.value ?? 0)}`;
  if (has(e, 'timestamp')) s += ` ${formatOpenMetricsFloat(timestampSeconds(e.timestamp!))}`;
  return s;
}

function sample(
  out: string[],
  name: string,
  m: Metric,
  extraName: string,
  extraValue: number,
  value: number | bigint,
  exemplar?: Exemplar,
): void {
  let line = `${seriesName(name, m.label, extraName, extraValue, formatOpenMetricsFloat)} `;
  line += typeof value === 'bigint' ? value.toString() : formatOpenMetricsFloat(value);
  if (has(m, 'timestamp_ms')) line += ` ${formatOpenMetricsFloat(Number(toBigInt(m.timestamp_ms)) / 1000)}`;
  if (exemplar != null && exemplar.label.length > 0) line += exemplarText(exemplar);
  out.push(line, '\n');
}

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
    switch (type) {
      case MetricType.COUNTER:
        if (!has(m, 'counter')) throw expected('counter', name);
        sample(out, name, m, '', 0, m.counter!.value ?? 0, m.counter!.exemplar);
        break;
      case MetricType.GAUGE:
        if (!has(m, 'gauge')) throw expected('gauge', name);
        sample(out, name, m, '', 0, m.gauge!.value ?? 0);
        break;
      case MetricType.UNTYPED:
        if (!has(m, 'untyped')) throw expected('untyped', name);
        sample(out, name, m, '', 0, m.untyped!.value ?? 0);
        break;
      case MetricType.SUMMARY: {
        if (!has(m, 'summary')) throw expected('summary', name);
        const s = m.summary!;
        for (const q of s.quantile) sample(out, name, m, 'quantile', q.quantile ?? 0, q.value ?? 0);
        sample(out, `${name}_sum`, m, '', 0, s.sample_sum ?? 0);
        sample(out, `${name}_count`, m, '', 0, toBigInt(s.sample_count));
        break;
      }
      default: {
        if (!has(m, 'histogram')) throw expected('histogram', name);
        const h = m.histogram!;
        let infSeen = false;
        for (const b of h.bucket) {
          if ((b.cumulative_count_float ?? 0) > 0) throw floatHistogram(name);
          sample(out, `${name}_bucket`, m, 'le', b.upper_bound ?? 0, toBigInt(b.cumulative_count), b.exemplar);
          if (b.upper_bound === Infinity) infSeen = true;
        }
        if (!infSeen) sample(out, `${name}_bucket`, m, 'le', Infinity, toBigInt(h.sample_count));
        sample(out, `${name}_sum`, m, '', 0, h.sample_sum ?? 0);
        if ((h.sample_count_float ?? 0) > 0) throw floatHistogram(name);
        sample(out, `${name}_count`, m, '', 0, toBigInt(h.sample_count));
      }
    }
  }
}
