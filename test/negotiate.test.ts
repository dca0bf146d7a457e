/**
 * The negotiation of a client_golang exporter (src/cache/negotiate.ts): expfmt.Negotiate over
 * goautoneg, checked case by case, by properties, and against a real client_golang process
 * (Pushgateway 1.11, which offers protobuf and text but not OpenMetrics) on random headers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { answerContentType, negotiate, parseAcceptGo, parseGoFloat32, type Offers } from '../src/cache/negotiate.js';
import { startPushgateway, type Pushgateway } from './helpers/pushgateway.js';
import { SCRAPERS } from './helpers/scrapers.js';
import { skipUnlessUnstable } from './helpers/unstable-binaries.js';

const ALL: Offers = { protobuf: true, openmetrics: true };
const NO_OM: Offers = { protobuf: true, openmetrics: false };
const PB = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';
const RUNS = { numRuns: 300 };

const ct = (accept: string | undefined, offers: Offers) => answerContentType(negotiate(accept, offers));

describe('negotiate, case by case', () => {
  const cases: Array<[string, string | undefined, Offers, string]> = [
    ['no Accept is text with the default escaping', undefined, ALL, 'text/plain; version=0.0.4; charset=utf-8; escaping=underscores'],
    ['*/* alone is text', '*/*', ALL, 'text/plain; version=0.0.4; charset=utf-8; escaping=underscores'],
    ['a wildcard never reaches protobuf or OpenMetrics', 'application/*,*/*;q=0.9', ALL, 'text/plain; version=0.0.4; charset=utf-8; escaping=underscores'],
    [
      'Prometheus 2.42 gets OpenMetrics 1.0.0 where offered',
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      ALL,
      'application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores',
    ],
    [
      'and text 0.0.4 where not',
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      NO_OM,
      'text/plain; version=0.0.4; charset=utf-8; escaping=underscores',
    ],
    [
      'escaping= is sticky: Prometheus 3.4+ gets text 0.0.4 with allow-utf-8 from an exporter without OpenMetrics',
      'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
      NO_OM,
      'text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8',
    ],
    ['text/plain version 1.0.0 is not a version expfmt has: text 0.0.4', 'text/plain;version=1.0.0;escaping=allow-utf-8', ALL, 'text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8'],
    ['OpenMetrics without a version is 0.0.1', 'application/openmetrics-text', ALL, 'application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=underscores'],
    ['OpenMetrics of a version expfmt lacks is skipped', 'application/openmetrics-text;version=2.0.0,text/plain;q=0.1', ALL, 'text/plain; version=0.0.4; charset=utf-8; escaping=underscores'],
    ['q=0 does not refuse: the first clause that names a format wins', `${PB};q=0`, ALL, `${answerContentType({ kind: 'protobuf', version: '', escaping: 'underscores' })}`],
    ['type and subtype are case-sensitive', 'Application/Vnd.Google.Protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited', ALL, 'text/plain; version=0.0.4; charset=utf-8; escaping=underscores'],
    ['an unknown escaping is ignored', `${PB};escaping=bogus`, ALL, answerContentType({ kind: 'protobuf', version: '', escaping: 'underscores' })],
    [
      "goautoneg puts a concrete type before a wildcard whatever their q: the wildcard's escaping comes too late",
      '*/*;escaping=allow-utf-8,text/plain;q=0.5',
      ALL,
      'text/plain; version=0.0.4; charset=utf-8; escaping=underscores',
    ],
    ['protobuf without encoding is no protobuf', 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily', ALL, 'text/plain; version=0.0.4; charset=utf-8; escaping=underscores'],
    ['the protobuf text encodings', `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text`, ALL, 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=compact-text; escaping=underscores'],
    ['a q that does not parse is 0, so later clauses come first', `${PB};q=x,text/plain;q=0.1`, ALL, 'text/plain; version=0.0.4; charset=utf-8; escaping=underscores'],
  ];
  for (const [name, accept, offers, want] of cases) test(name, () => assert.equal(ct(accept, offers), want));

  test("Go's ParseFloat(s, 32) values, as goautoneg keeps them on error", () => {
    assert.equal(parseGoFloat32('0.5'), Math.fround(0.5));
    assert.equal(parseGoFloat32('1e50'), Infinity);
    assert.equal(parseGoFloat32('0x1p-1'), 0.5);
    assert.equal(parseGoFloat32(' 0.5'), 0);
    assert.equal(parseGoFloat32('inf'), Infinity);
    assert.ok(Number.isNaN(parseGoFloat32('NaN')));
  });
});

/** Accept members as scrapers and hostile clients write them. */
const mediaType = fc.constantFrom(
  'application/openmetrics-text',
  'text/plain',
  'application/vnd.google.protobuf',
  'application/json',
  'text/*',
  '*/*',
  '*',
  'TEXT/PLAIN',
  'text/plain/x',
);
const param = fc.constantFrom(
  'version=1.0.0',
  'version=0.0.4',
  'version=0.0.1',
  'charset=utf-8',
  'proto=io.prometheus.client.MetricFamily',
  'encoding=delimited',
  'encoding=text',
  'escaping=underscores',
  'escaping=allow-utf-8',
  'escaping=dots',
  'escaping=values',
  'escaping=bogus',
  'q=0',
  'q=0.1',
  'q=0.5',
  'q=1',
  'q=x',
  'q=2',
  'novalue',
  'a=b=c',
);
const member = fc.tuple(mediaType, fc.array(param, { maxLength: 4 })).map(([t, ps]) => [t, ...ps].join(';'));
const acceptHeader = fc.array(member, { maxLength: 7 }).map((m) => m.join(','));
const offers = fc.record({ protobuf: fc.boolean(), openmetrics: fc.boolean() });

describe('negotiate, by properties', () => {
  test('never throws, and answers a format the exporter offers', () => {
    fc.assert(
      fc.property(fc.oneof(acceptHeader, fc.string()), offers, (header, o) => {
        const a = negotiate(header, o);
        if (a.kind === 'openmetrics') assert.ok(o.openmetrics);
        if (a.kind === 'protobuf' || a.kind === 'proto-text' || a.kind === 'proto-compact') assert.ok(o.protobuf);
      }),
      RUNS,
    );
  });

  test('protobuf and OpenMetrics go only to a header that names them: a wildcard never reaches them', () => {
    fc.assert(
      fc.property(acceptHeader, offers, (header, o) => {
        const a = negotiate(header, o);
        if (a.kind === 'openmetrics') assert.ok(header.includes('application/openmetrics-text'), header);
        if (a.kind === 'protobuf') assert.ok(header.includes('application/vnd.google.protobuf'), header);
        const wildcardsOnly = header
          .split(',')
          .map((m) => (m.startsWith('application/openmetrics-text') || m.startsWith('application/vnd.google.protobuf') ? '*/*' : m))
          .join(',');
        assert.equal(negotiate(wildcardsOnly, o).kind === 'text' || negotiate(wildcardsOnly, o).kind.startsWith('proto-'), true);
      }),
      RUNS,
    );
  });

  test('the escaping answered is the default or one the header names', () => {
    fc.assert(
      fc.property(acceptHeader, offers, (header, o) => {
        const { escaping } = negotiate(header, o);
        assert.ok(escaping === 'underscores' || header.includes(`escaping=${escaping}`), `${escaping} from ${header}`);
      }),
      RUNS,
    );
  });

  test('spaces after commas change nothing (goautoneg trims them)', () => {
    fc.assert(
      fc.property(acceptHeader, offers, (header, o) => assert.deepEqual(negotiate(header.replaceAll(',', ',  '), o), negotiate(header, o))),
      RUNS,
    );
  });

  test('clauses of distinct q and concrete types are visited by q, highest first', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 999 }), { minLength: 1, maxLength: 8 }), (qs) => {
        const header = qs.map((q, i) => `application/x-${i};q=${q / 1000}`).join(',');
        const visited = parseAcceptGo(header).map((c) => c.q);
        assert.deepEqual(visited, [...visited].sort((a, b) => b - a));
        assert.equal(visited.length, qs.length);
      }),
      RUNS,
    );
  });
});

describe('negotiate agrees with a real client_golang process', { skip: skipUnlessUnstable('pushgateway') }, () => {
  let pg: Pushgateway;
  before(async () => {
    pg = await startPushgateway();
  });
  after(async () => {
    await pg?.stop();
  });

  test('on the Accept header of every scraper in the field', async () => {
    for (const s of SCRAPERS) {
      const theirs = await pg.scrape(s.accept ?? '');
      assert.equal(ct(s.accept, NO_OM), theirs.contentType, s.name);
    }
  });

  test('on random Accept headers: the same Content-Type, escaping included', async () => {
    await fc.assert(
      fc.asyncProperty(acceptHeader, async (header) => {
        const theirs = await pg.scrape(header);
        assert.equal(theirs.status, 200);
        assert.equal(ct(header, NO_OM), theirs.contentType, header);
      }),
      { numRuns: 250 },
    );
  });
});
