/**
 * Rendering one upstream protobuf answer into every answer client_golang's promhttp (with a
 * current prometheus/common expfmt) would give: protobuf, text 0.0.4 and OpenMetrics 1.0.0/0.0.1,
 * each with the four name escaping schemes. Pure: no I/O, no clock.
 *
 * Where this differs from the API first agreed (issue 16):
 * - `WireFormat`'s text variant is `version: '0.0.4'` only. expfmt has no text 1.0.0 (its
 *   FormatType calls `text/plain; version=1.0.0` unknown, and Negotiate answers such a request
 *   with 0.0.4), so there is no such answer to render or to key on.
 * - `renderFamilies` throws ExpfmtError where expfmt's own encoder fails (a family without
 *   metrics or name in text, a float histogram in OpenMetrics 1.0, a sample without the value
 *   its family's type needs): promhttp then stops mid-body, so there is no correct body to serve.
 * - OpenMetrics carries no `_created` lines: promhttp writes them only with
 *   EnableOpenMetricsTextCreatedSamples, which is off by default (the created timestamps stay in
 *   the protobuf answers).
 */
import type { DecodedFamilies } from './decode.js';
import { decodeFamilies as decode } from './decode.js';
import { escapeFamily, familyNeedsEscaping } from './escape.js';
import { MetricFamilyType } from './metrics-proto.js';
import { writeOpenMetricsFamily } from './openmetrics.js';
import { writeTextFamily } from './text.js';
import type { WireFormat } from './wire-format.js';

export type { Escaping } from './escape.js';
export { escapeName, unescapeName, isLegacyName, DEFAULT_ESCAPING, ESCAPINGS } from './escape.js';
export type { WireFormat } from './wire-format.js';
export { contentTypeOf, parseContentType } from './content-type.js';
export { ExpfmtError } from './errors.js';

/** The decoded MetricFamily list of one upstream body. Opaque; `length` counts the families. */
export interface Families {
  readonly length: number;
}

/** Decodes a length-delimited MetricFamily body; throws ExpfmtError on anything malformed. */
export function decodeFamilies(body: Uint8Array): Families {
  return decode(body);
}

function asDecoded(families: Families): DecodedFamilies {
  const d = families as DecodedFamilies;
  if (!Array.isArray(d.list) || !Array.isArray(d.raw)) throw new TypeError('renderFamilies: not a value from decodeFamilies');
  return d;
}

function bytesOf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function renderProtobuf(d: DecodedFamilies, target: WireFormat, original: Uint8Array | undefined): Buffer {
  const escaping = target.escaping;
  const changed = escaping === 'allow-utf-8' ? [] : d.list.map(familyNeedsEscaping);
  if (!changed.includes(true)) return bytesOf(original ?? d.body);
  // Families whose names all stay are the upstream's bytes; the others are re-encoded as
  // Go's proto.Marshal would write model.EscapeMetricFamily's result.
  const parts: Uint8Array[] = d.list.map((f, i) =>
    changed[i]
      ? MetricFamilyType.encodeDelimited(escapeFamily(f, escaping) as never).finish()
      : d.raw[i]!,
  );
  return Buffer.concat(parts);
}

/**
 * The body promhttp would send for `target`, built from decoded families. `original` is the
 * body they were decoded from; a protobuf answer whose names need no escaping is those bytes
 * (without it, the decoded body is used, which is the same bytes).
 */
export function renderFamilies(families: Families, target: WireFormat, original?: Uint8Array): Buffer {
  const d = asDecoded(families);
  if (target.kind === 'protobuf') return renderProtobuf(d, target, original);
  const out: string[] = [];
  for (const f of d.list) {
    const escaped = escapeFamily(f, target.escaping);
    if (target.kind === 'text') writeTextFamily(out, escaped);
    else writeOpenMetricsFamily(out, escaped);
  }
  if (target.kind === 'openmetrics') out.push('# EOF\n');
  return Buffer.from(out.join(''), 'utf8');
}

