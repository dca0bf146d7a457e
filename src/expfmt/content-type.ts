/**
 * The Content-Type promhttp writes for each answer, and its inverse. promhttp sets the header
 * to the negotiated expfmt.Format, which always ends in `; escaping=<scheme>` (the scheme the
 * request asked for, else model.NameEscapingScheme, `underscores`).
 */
import type { Escaping } from './escape.js';
import { DEFAULT_ESCAPING, ESCAPINGS } from './escape.js';
import type { WireFormat } from './wire-format.js';

const PROTOBUF = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';
const TEXT = 'text/plain; version=0.0.4; charset=utf-8';
const OPENMETRICS = 'application/openmetrics-text';

export function contentTypeOf(target: WireFormat): string {
  switch (target.kind) {
    case 'protobuf':
      return `${PROTOBUF}; escaping=${target.escaping}`;
    case 'text':
      return `${TEXT}; escaping=${target.escaping}`;
    case 'openmetrics':
      return `${OPENMETRICS}; version=${target.version}; charset=utf-8; escaping=${target.escaping}`;
  }
}

/**
 * What an upstream's Content-Type says it sent, read as expfmt's Format.FormatType and
 * ToEscapingScheme read it: media type and parameter names without case, an absent or unknown
 * `escaping` is `underscores` (a client_golang older than the parameter sent legacy names only).
 * Undefined for anything this module cannot render from (protobuf text encodings, text
 * versions other than 0.0.4, other OpenMetrics versions, other media types).
 */
export function parseContentType(value: string): WireFormat | undefined {
  const [type = '', ...rest] = value.split(';');
  const params = new Map<string, string>();
  for (const part of rest) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    let v = part.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    params.set(part.slice(0, eq).trim().toLowerCase(), v);
  }
  const scheme = params.get('escaping');
  const escaping: Escaping = ESCAPINGS.includes(scheme as Escaping) ? (scheme as Escaping) : DEFAULT_ESCAPING;
  switch (type.trim().toLowerCase()) {
    case 'application/vnd.google.protobuf':
      if (params.get('proto') !== 'io.prometheus.client.MetricFamily' || params.get('encoding') !== 'delimited') return undefined;
      return { kind: 'protobuf', escaping };
    case 'text/plain': {
      const version = params.get('version');
      if (version !== undefined && version !== '0.0.4') return undefined;
      return { kind: 'text', version: '0.0.4', escaping };
    }
    case OPENMETRICS: {
      const version = params.get('version');
      const charset = params.get('charset')?.toLowerCase();
      if (charset !== undefined && charset !== 'utf-8') return undefined;
      if (version !== '1.0.0' && version !== '0.0.1') return undefined;
      return { kind: 'openmetrics', version, escaping };
    }
    default:
      return undefined;
  }
}
