/**
 * The text exposition format 0.0.4 as expfmt's MetricFamilyToText writes it: HELP (if any), TYPE,
 * one line per sample in the family's own order. Native histograms have no text form; a
 * histogram shows its classic buckets and, when the +Inf bucket is missing (a native-only one
 * has no buckets at all), a +Inf bucket holding the sample count.
 */
import { ExpfmtError } from './errors.js';
import { formatTextFloat } from './float.js';
import type { LabelPair, MetricFamily } from './metrics-proto.js';
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

/** A metric's label pairs as expfmt writes them inside the braces, made once per metric. */
export function labelsText(labels: readonly LabelPair[]): string {
  let out = '';
  for (const l of labels) {
    if (out !== '') out += ',';
    out += `${spellName(l.name ?? '')}="${escapeQuoted(l.value ?? '')}"`;
  }
  return out;
}

/**
 * `name{labels,extra}` as expfmt's writeNameAndLabelPairs spells it: a name that is not legacy
 * goes quoted inside the braces, first. `extra` is the ready `le="…"` or `quantile="…"` pair.
 */
export function seriesName(name: string, labels: string, extra: string): string {
  const inner = labels === '' ? extra : extra === '' ? labels : `${labels},${extra}`;
  if (isLegacyName(name)) return inner === '' ? name : `${name}{${inner}}`;
  const quoted = `"${escapeQuoted(name)}"`;
  return inner === '' ? `{${quoted}}` : `{${quoted},${inner}}`;
}

function sample(out: string[], name: string, labels: string, extra: string, value: number, ts: string): void {
  out.push(seriesName(name, labels, extra), ' ', formatTextFloat(value), ts, '\n');
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
    const labels = labelsText(m.label);
    const ts = has(m, 'timestamp_ms') ? ` ${toBigInt(m.timestamp_ms).toString()}` : '';
    switch (type) {
      case MetricType.COUNTER:
        if (!has(m, 'counter')) throw expected('counter', name);
        sample(out, name, labels, '', m.counter!.value ?? 0, ts);
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
        for (const q of s.quantile) sample(out, name, labels, `quantile="${formatTextFloat(q.quantile ?? 0)}"`, q.value ?? 0, ts);
        sample(out, `${name}_sum`, labels, '', s.sample_sum ?? 0, ts);
        sample(out, `${name}_count`, labels, '', Number(toBigInt(s.sample_count)), ts);
        break;
      }
      default: {
        if (!has(m, 'histogram')) throw expected('histogram', name);
        const h = m.histogram!;
        let infSeen = false;
        for (const b of h.bucket) {
          let v = b.cumulative_count_float ?? 0;
          if (v === 0) v = Number(toBigInt(b.cumulative_count));
          sample(out, `${name}_bucket`, labels, `le="${formatTextFloat(b.upper_bound ?? 0)}"`, v, ts);
          if (b.upper_bound === Infinity) infSeen = true;
        }
        let count = h.sample_count_float ?? 0;
        if (count === 0) count = Number(toBigInt(h.sample_count));
        if (!infSeen) sample(out, `${name}_bucket`, labels, 'le="+Inf"', count, ts);
        sample(out, `${name}_sum`, labels, '', h.sample_sum ?? 0, ts);
        sample(out, `${name}_count`, labels, '', count, ts);
      }
    }
  }
}
