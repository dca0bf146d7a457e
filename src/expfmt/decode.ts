/**
 * Decoding an upstream's `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
 * encoding=delimited` body: varint-length-prefixed MetricFamily messages, as Go's protodelim
 * writes them. Anything that is not exactly that is an ExpfmtError, never a partial list.
 */
import protobuf from 'protobufjs/light.js';
import { ExpfmtError } from './errors.js';
import type { MetricFamily } from './metrics-proto.js';
import { MetricFamilyType } from './metrics-proto.js';

/** The decoded families of one upstream body, and each family's own bytes (prefix included). */
export class DecodedFamilies {
  constructor(
    readonly list: readonly MetricFamily[],
    readonly raw: readonly Uint8Array[],
    readonly body: Uint8Array,
  ) {}

  get length(): number {
    return this.list.length;
  }
}

function readLength(body: Uint8Array, pos: number): [length: number, next: number] {
  let value = 0;
  for (let shift = 0, i = pos; i < body.length; shift += 7, i++) {
    const b = body[i]!;
    if (shift === 28 && b > 0x0f) break; // beyond 2^32: no body this size can follow
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, i + 1];
  }
  throw new ExpfmtError(`truncated or oversized length prefix at byte ${pos}`);
}

/**
 * protobufjs keeps a field it cannot place in $unknowns. A field number this schema knows,
 * arriving with another wire type, is a malformed body (Go would drop the value without a word,
 * and the text rendered from it would be missing data); numbers it does not know are a newer
 * client_model's fields and are skipped, as Go's text encoders skip them.
 */
function checkFields(type: protobuf.Type, m: Record<string, unknown>, where: string): void {
  const unknowns = m.$unknowns as Uint8Array[] | undefined;
  if (unknowns) {
    for (const raw of unknowns) {
      let tag = 0;
      for (let i = 0, shift = 0; i < raw.length && i < 5; i++, shift += 7) {
        tag += (raw[i]! & 0x7f) * 2 ** shift;
        if (raw[i]! < 0x80) break;
      }
      const field = type.fieldsById[Math.floor(tag / 8)];
      if (field) {
        throw new ExpfmtError(`${where}: field ${type.name}.${field.name} (${field.id}) has wire type ${tag % 8}, or a value out of range`);
      }
    }
  }
  for (const field of type.fieldsArray) {
    if (!(field.resolvedType instanceof protobuf.Type)) continue;
    const value = m[field.name];
    if (value == null) continue;
    const items = field.repeated ? (value as Record<string, unknown>[]) : [value as Record<string, unknown>];
    for (const item of items) checkFields(field.resolvedType, item, where);
  }
}

export function decodeFamilies(body: Uint8Array): DecodedFamilies {
  const list: MetricFamily[] = [];
  const raw: Uint8Array[] = [];
  let pos = 0;
  while (pos < body.length) {
    const [length, start] = readLength(body, pos);
    const end = start + length;
    if (end > body.length) {
      throw new ExpfmtError(`family ${list.length + 1} is truncated: ${length} bytes announced at byte ${pos}, ${body.length - start} left`);
    }
    const where = `family ${list.length + 1} (bytes ${pos}-${end})`;
    const reader = protobuf.Reader.create(body.subarray(start, end));
    reader.discardUnknown = false;
    let family: MetricFamily;
    try {
      family = MetricFamilyType.decode(reader) as unknown as MetricFamily;
    } catch (err) {
      throw new ExpfmtError(`${where}: ${(err as Error).message}`, { cause: err });
    }
    checkFields(MetricFamilyType, family as unknown as Record<string, unknown>, where);
    list.push(family);
    raw.push(body.subarray(pos, end));
    pos = end;
  }
  return new DecodedFamilies(list, raw, body);
}
