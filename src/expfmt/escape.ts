/**
 * Name escaping as prometheus/common's model package does it (model.EscapeName,
 * model.EscapeMetricFamily, model.UnescapeName), for clients that cannot take UTF-8 names.
 */
import type { LabelPair, Metric, MetricFamily } from './metrics-proto.js';
import { has } from './metrics-proto.js';

export type Escaping = 'allow-utf-8' | 'underscores' | 'dots' | 'values';

export const ESCAPINGS: readonly Escaping[] = ['allow-utf-8', 'underscores', 'dots', 'values'];

/** model.NameEscapingScheme: what expfmt applies when a request names no (known) scheme. */
export const DEFAULT_ESCAPING: Escaping = 'underscores';

function isLegacyRune(c: string, first: boolean): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || c === ':' || (!first && c >= '0' && c <= '9');
}

/** The legacy metric name rule, [a-zA-Z_:][a-zA-Z0-9_:]*; expfmt also applies it to label names. */
export function isLegacyName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const ok =
      (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58 || (i > 0 && c >= 48 && c <= 57);
    if (!ok) return false;
  }
  return true;
}

/** model.EscapeName. Unlike the other schemes, `dots` rewrites even a legacy name's underscores. */
export function escapeName(name: string, scheme: Escaping): string {
  if (name.length === 0 || scheme === 'allow-utf-8') return name;
  if (scheme !== 'dots' && isLegacyName(name)) return name;
  let out = scheme === 'values' ? 'U__' : '';
  let first = true;
  for (const c of name) {
    if (scheme === 'underscores') out += isLegacyRune(c, first) ? c : '_';
    else if (c === '_') out += '__';
    else if (scheme === 'dots' && c === '.') out += '_dot_';
    else if (isLegacyRune(c, first)) out += c;
    else if (scheme === 'dots') out += '__';
    else {
      const cp = c.codePointAt(0)!;
      // A lone surrogate reaches Go as U+FFFD (invalid UTF-8 decodes so), written _fffd_.
      out += `_${(cp >= 0xd800 && cp <= 0xdfff ? 0xfffd : cp).toString(16)}_`;
    }
    first = false;
  }
  return out;
}

/**
 * model.UnescapeName: the inverse where one exists (`dots`, `values`); `underscores` cannot be
 * undone, and a malformed `values` name comes back unchanged.
 */
export function unescapeName(name: string, scheme: Escaping): string {
  if (name.length === 0) return name;
  switch (scheme) {
    case 'allow-utf-8':
    case 'underscores':
      return name;
    case 'dots':
      return name.replaceAll('_dot_', '.').replaceAll('__', '_');
    case 'values': {
      if (!name.startsWith('U__')) return name;
      const s = name.slice(3);
      let out = '';
      for (let i = 0; i < s.length; i++) {
        if (s[i] !== '_') {
          out += s[i];
          continue;
        }
        i++;
        if (i >= s.length) return name;
        if (s[i] === '_') {
          out += '_';
          continue;
        }
        let value = 0;
        let j = 0;
        for (; i < s.length && s[i] !== '_'; i++, j++) {
          if (j >= 6) return name;
          const d = parseInt(s[i]!, 16);
          if (Number.isNaN(d)) return name;
          value = value * 16 + d;
        }
        if (i >= s.length) return name;
        if (value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return name;
        out += String.fromCodePoint(value);
      }
      return out;
    }
  }
}

function metricNeedsEscaping(m: Metric): boolean {
  for (const l of m.label) {
    if (l.name === '__name__' && !isLegacyName(l.value ?? '')) return true;
    if (!isLegacyName(l.name ?? '')) return true;
  }
  return false;
}

/** Whether model.EscapeMetricFamily would build a new family (some name is not legacy). */
export function familyNeedsEscaping(f: MetricFamily): boolean {
  if (has(f, 'name') && !isLegacyName(f.name!)) return true;
  return f.metric.some(metricNeedsEscaping);
}

/**
 * model.EscapeMetricFamily: a family whose metric and label names follow `scheme`. Legacy names
 * stay as they are (even under `dots`); exemplar labels are left alone, as expfmt leaves them.
 * Shares unchanged parts with the input and never mutates it.
 */
export function escapeFamily(f: MetricFamily, scheme: Escaping): MetricFamily {
  if (scheme === 'allow-utf-8' || !familyNeedsEscaping(f)) return f;
  const out: MetricFamily = { metric: [] };
  if (has(f, 'help')) out.help = f.help!;
  if (has(f, 'type')) out.type = f.type!;
  if (has(f, 'unit')) out.unit = f.unit!;
  if (has(f, 'name')) out.name = isLegacyName(f.name!) ? f.name! : escapeName(f.name!, scheme);
  for (const m of f.metric) {
    if (!metricNeedsEscaping(m)) {
      out.metric.push(m);
      continue;
    }
    const e: Metric = { label: [] };
    for (const k of ['gauge', 'counter', 'summary', 'untyped', 'histogram', 'timestamp_ms'] as const) {
      if (has(m, k)) (e as unknown as Record<string, unknown>)[k] = m[k];
    }
    for (const l of m.label) {
      if (l.name === '__name__') {
        e.label.push(
          !has(l, 'value') || isLegacyName(l.value!) ? l : { name: '__name__', value: escapeName(l.value!, scheme) },
        );
      } else if (!has(l, 'name') || isLegacyName(l.name!)) {
        e.label.push(l);
      } else {
        const escaped: LabelPair = { name: escapeName(l.name!, scheme) };
        if (has(l, 'value')) escaped.value = l.value!;
        e.label.push(escaped);
      }
    }
    out.metric.push(e);
  }
  return out;
}
