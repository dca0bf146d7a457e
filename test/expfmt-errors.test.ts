/**
 * Malformed upstream protobuf is an ExpfmtError from decodeFamilies, never an exception of
 * another kind, a hang, or a partial list: truncation anywhere, wrong and invalid wire types,
 * lengths past the end, values outside the schema. Fields from a newer client_model are skipped.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeFamilies, ExpfmtError, renderFamilies, type WireFormat } from '../src/expfmt/index.js';
import { MetricFamilyType } from '../src/expfmt/metrics-proto.js';
import { pushedFamilies } from './fixtures/expfmt/pushed-families.js';

const encode = (families: object[]) => Buffer.concat(families.map((f) => MetricFamilyType.encodeDelimited(f as never).finish()));
/** One delimited message from its raw field bytes. */
const delimited = (...fields: number[]) => Buffer.from([fields.length, ...fields]);
const TARGETS: WireFormat[] = (['allow-utf-8', 'underscores', 'dots', 'values'] as const).flatMap((escaping) => [
  { kind: 'protobuf', escaping } as const,
  { kind: 'text', version: '0.0.4', escaping } as const,
  { kind: 'openmetrics', version: '1.0.0', escaping } as const,
]);

describe('decodeFamilies refuses malformed bodies with an ExpfmtError', () => {
  test('a body cut anywhere but between two families', () => {
    const body = encode(pushedFamilies);
    const boundaries = new Set<number>([0]);
    for (let pos = 0; pos < body.length; ) {
      // The length prefixes here are one or two bytes.
      const length = body[pos]! < 0x80 ? body[pos]! : (body[pos]! & 0x7f) + body[pos + 1]! * 128;
      pos += (body[pos]! < 0x80 ? 1 : 2) + length;
      boundaries.add(pos);
    }
    assert.equal(decodeFamilies(body).length, pushedFamilies.length);
    for (let cut = 1; cut < body.length; cut++) {
      if (boundaries.has(cut)) {
        assert.equal(decodeFamilies(body.subarray(0, cut)).length, [...boundaries].filter((b) => b > 0 && b <= cut).length);
      } else {
        assert.throws(() => decodeFamilies(body.subarray(0, cut)), ExpfmtError, `cut at ${cut}`);
      }
    }
  });

  test('an empty body is no families', () => {
    assert.equal(decodeFamilies(new Uint8Array()).length, 0);
  });

  test('a known field with another wire type, at the top and nested', () => {
    // MetricFamily.name (1) as a varint.
    assert.throws(() => decodeFamilies(delimited(0x08, 0x05)), ExpfmtError);
    // MetricFamily.metric (4) holding a Metric whose label (1) is a varint.
    assert.throws(() => decodeFamilies(delimited(0x0a, 0x01, 0x61, 0x22, 0x02, 0x08, 0x01)), ExpfmtError);
    // Metric.gauge (2) holding Gauge.value (1) as a varint instead of a double.
    assert.throws(() => decodeFamilies(delimited(0x0a, 0x01, 0x61, 0x22, 0x04, 0x12, 0x02, 0x08, 0x01)), ExpfmtError);
  });

  test('wire types 6 and 7, which do not exist', () => {
    assert.throws(() => decodeFamilies(delimited(0x0e, 0x00)), ExpfmtError);
    assert.throws(() => decodeFamilies(delimited(0x0f, 0x00)), ExpfmtError);
  });

  test('a metric type outside the enum', () => {
    assert.throws(() => decodeFamilies(delimited(0x0a, 0x01, 0x61, 0x18, 0x09)), ExpfmtError);
  });

  test('a length prefix past the end, a string length past its message, an endless varint', () => {
    assert.throws(() => decodeFamilies(Buffer.from([0x05, 0x0a, 0x01, 0x61])), ExpfmtError);
    assert.throws(() => decodeFamilies(delimited(0x0a, 0x09, 0x61)), ExpfmtError);
    assert.throws(() => decodeFamilies(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), ExpfmtError);
    assert.throws(() => decodeFamilies(Buffer.from([0x80])), ExpfmtError);
  });

  test('a field number metrics.proto does not have is skipped, as Go skips it', () => {
    const plain = encode([{ name: 'a', type: 1, metric: [{ label: [], gauge: { value: 1 } }] }]);
    // Field 99 (varint 1) appended to the family.
    const withNew = Buffer.concat([Buffer.from([plain[0]! + 3]), plain.subarray(1), Buffer.from([0x98, 0x06, 0x01])]);
    const target: WireFormat = { kind: 'text', version: '0.0.4', escaping: 'underscores' };
    assert.equal(renderFamilies(decodeFamilies(withNew), target).toString(), renderFamilies(decodeFamilies(plain), target).toString());
  });

  test('any bytes: decoding and rendering either succeed or throw ExpfmtError', () => {
    const valid = encode(pushedFamilies);
    const mutated = fc
      .tuple(fc.nat({ max: valid.length - 1 }), fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 4 }))
      .map(([at, bytes]) => {
        const copy = Buffer.from(valid);
        bytes.forEach((b, i) => {
          if (at + i < copy.length) copy[at + i] = b;
        });
        return copy;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (body) => {
        let families;
        try {
          families = decodeFamilies(body);
        } catch (err) {
          assert.ok(err instanceof ExpfmtError, `${(err as Error).name}: ${(err as Error).message}`);
          return;
        }
        for (const target of TARGETS) {
          try {
            assert.ok(Buffer.isBuffer(renderFamilies(families, target, body)));
          } catch (err) {
            assert.ok(err instanceof ExpfmtError, `${(err as Error).name}: ${(err as Error).message}`);
          }
        }
      }),
      { numRuns: 1500 },
    );
  });
});
