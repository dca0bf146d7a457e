/**
 * HTML with every interpolation escaped: `html` templates escape each value unless it is
 * already Html (a nested template), so text from a request, a config or an upstream can only
 * ever show as text.
 */
import { createHash } from 'node:crypto';

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

const SPECIAL = /[&<>"']/;

/** Escapes text for an HTML text node or a quoted attribute value. */
export function escapeHtml(text: string): string {
  // Most values (numbers, names, ages) have nothing to escape: no new string for them.
  return SPECIAL.test(text) ? text.replace(/[&<>"']/g, (c) => ESCAPES[c]!) : text;
}

export type Value = Html | string | number | boolean | null | undefined | readonly Value[];

function render(value: Value): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) {
    // Appended, not joined: `+=` links the pieces (a rope) where join copies them, and a page is
    // copied once, when it is written, instead of once per level of nesting (issue 21).
    let out = '';
    for (const item of value as readonly Value[]) out += render(item);
    return out;
  }
  return escapeHtml(String(value));
}

/** A template whose values are escaped; arrays are joined, null/undefined/false render nothing. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** CSP source for an inline element's exact text (CSP3 hash-source). */
export function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
}

/** Headers every page carries: nothing loads from anywhere but this listener, nothing frames it. */
export function pageHeaders(body: string, csp: string): Record<string, string | number> {
  return {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Content-Security-Policy': csp,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
  };
}

/** "12 s", "4 min 3 s", "2 h 5 min", "3 d 4 h": how people read an age. */
export function formatAge(seconds: number): string {
  const negative = seconds < 0;
  let s = Math.round(Math.abs(seconds));
  const parts: string[] = [];
  const units: Array<[number, string]> = [
    [86400, 'd'],
    [3600, 'h'],
    [60, 'min'],
    [1, 's'],
  ];
  for (const [size, unit] of units) {
    if (s >= size || (size === 1 && parts.length === 0)) {
      parts.push(`${Math.floor(s / size)} ${unit}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return (negative ? '−' : '') + parts.join(' ');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
