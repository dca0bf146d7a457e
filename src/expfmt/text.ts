/**
 * The text exposition format 0.0.4 as expfmt's MetricFamilyToText writes it: HELP (if any), TYPE,
 * one line per sample in the family's own order. Native histograms have no text form; a
 * histogram shows its classic buckets and, when the +Inf bucket is missing (a native-only one
 * has no buckets at all), a +Inf bucket holding the sample count.
 */
import { ExpfmtError } from './errors.js';
import { formatTextFloat } from './float.js';
import type { LabelPair, Metric, MetricFamily } from './metrics-proto.js';
import { has, MetricType, toBigInt } from './metrics-proto.js';
import { escapeHelp, escapeQuoted, spellName } from './names.js';
import { isLegacyName } from './escape.js';

const TYPE_WORD: Record<number, string> = {
  [MetricType.COUNTER]: 'counter',
  [MetricType.GAUGE]: 'gauge',
  [MetricType.SUMMARY]: 'summary',
  [MetricType.UNTYPED]: 'untyped',
  // The text format has no gauge histogram; expfmt writes it as a histogram.
  [MetricType.HISTOGRAM]: 'histogram',
  [MetricType.GAUGE_HISTOGRAM]: 'histogram',
};

/**
 * `name{labels,extra="v"}` as expfmt's writeNameAndLabelPairs spells it: a name that is not legacy
 * goes quoted inside the braces; `format` writes the extra label's float value.
 */
export function seriesName(
  name: string,
  labels: readonly LabelPair[],
  extraName: string,
  extraValue: number,
  format: (f: number) => string,
): string {
  let out = '';
  let sep = '{';
  let inside = false;
  if (name !== '') {
    if (!isLegacyName(name)) {
      out += sep;
      sep = ',';
      inside = true;
    }
    out += spellName(name);
  }
  if (labels.length === 0 && extraName === '') return inside ? `${out}}` : out;
  for (const l of labels) {
    out += `${sep}${spellName(l.name ?? '')}="${escapeQuoted(l.value ?? '')}"`;
    sep = ',';
  }
  if (extraName !== '') out += `${sep}${extraName}="${format(extraValue)}"`;
  return `${out}}`;
}

function sample(out: string[], name: string, m: Metric, extraName: string, extraValue: number, value: number): void {
  let line = `${seriesName(name, m.label, extraName, extraValue, formatTextFloat)} ${formatTextFloat(value)}`;
  if (has(m, 'timestamp_ms')) line += ` ${toBigInt(m.timestamp_ms).toString()}`;
  out.push(line, '\n');
}

function expected(what: string, name: string): ExpfmtError {
  return new ExpfmtError(`expected ${what} in a metric of family ${name}`);
}

/** Appends one family's lines to `out`; throws ExpfmtError where expfmt's encoder errs. */
export function writeTextFamily(out: string[], f: MetricFamily): void {
  const name = f.name ?? '';
  if (f.metric.length === 0) throw new ExpfmtError(`family ${name} has no metrics`);
  if (name === '') throw new ExpfmtError('a family has no name');
  const type = f.type ?? MetricType.COUNTER;
  const word = TYPE_WORD[type];
  if (word === undefined) throw new ExpfmtError(`family ${name} has unknown metric type ${type}`);
  if (has(f, 'help')) out.push('# HELP ', spellName(name), ' ', escapeHelp(f.help!), '\n');
  out.push('# TYPE ', spellName(name), ' ', word, '\n');
  for (const m of f.metric) {
    switch (type) {
      case MetricType.COUNTER:
        if (!has(m, 'counter')) throw expected('counter', name);
        sample(out, name, m, '', 0, m.counter!.value ?? 0);
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
        sample(out, `${name}_count`, m, '', 0, Number(toBigInt(s.sample_count)));
        break;
      }
      default: {
        if (!has(m, 'histogram')) throw expected('histogram', name);
        const h = m.histogram!;
        let infSeen = false;
        for (const b of h.bucket) {
          let v = b.cumulative_count_float ?? 0;
          if (v === 0) v = Number(toBigInt(b.cumulative_count));
          sample(out, `${name}_bucket`, m, 'le', b.upper_bound ?? 0, v);
          if (b.upper_bound === Infinity) infSeen = true;
        }
        let count = h.sample_count_float ?? 0;
        if (count === 0) count = Number(toBigInt(h.sample_count));
        if (!infSeen) sample(out, `${name}_bucket`, m, 'le', Infinity, count);
        sample(out, `${name}_sum`, m, '', 0, h.sample_sum ?? 0);
        sample(out, `${name}_count`, m, '', 0, count);
      }
    }
  }
}
