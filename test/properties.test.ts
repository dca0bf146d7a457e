/**
 * Property tests (fast-check) for the parsers on the request path: canonical query, Accept and
 * Accept-Encoding classification, path checks and route matching, durations and sizes.
 * Runs are seeded by fast-check and reported with their seed when one fails.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { canonicalQuery, QueryError } from '../src/cache/key.js';
import { acceptedCodings, acceptsCoding, admits, chooseCoding } from '../src/cache/representation.js';
import { formatDuration, parseDuration, parseSize } from '../src/config/units.js';
import type { Route } from '../src/config/types.js';
import { RouteTable } from '../src/server/route-table.js';
import { hasDotSegment } from '../src/server/scrape-request.js';

const RUNS = { numRuns: 500 };

/** Query names and values: any text, including what needs percent-encoding. */
const part = fc.string({ unit: fc.constantFrom('a', 'b', 'Z', '0', ' ', '+', '&', '=', '%', '/', '?', '#', 'é', '€', '\u{1F600}', '.', '~') });
const params = fc.array(fc.tuple(part, part), { maxLength: 12 });
const encode = ([k, v]: [string, string]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`;

describe('canonical query', () => {
  test('is the same for every order of the same parameters', () => {
    fc.assert(
      fc.property(
        params.chain((p) => fc.tuple(fc.constant(p), fc.shuffledSubarray(p, { minLength: p.length, maxLength: p.length }))),
        ([p, shuffled]) => {
          // Repeated names keep their relative order (stable sort), so only distinct names may move.
          fc.pre(new Set(p.map(([k]) => k)).size === p.length);
          assert.equal(canonicalQuery(shuffled.map(encode).join('&')).query, canonicalQuery(p.map(encode).join('&')).query);
        },
      ),
      RUNS,
    );
  });

  test('is a fixed point, and decodes back to the parameters sent', () => {
    fc.assert(
      fc.property(params, (p) => {
        const { query, params: parsed } = canonicalQuery(p.map(encode).join('&'));
        assert.equal(canonicalQuery(query).query, query);
        const sorted = [...p].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        assert.deepEqual(parsed, sorted);
        assert.deepEqual([...new URLSearchParams(query)], sorted);
      }),
      RUNS,
    );
  });

  test('does not depend on how a character is percent-encoded', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'B', '1', '-', '_', '.', '~'), minLength: 1 }), fc.array(fc.boolean()), (value, flips) => {
        const spelled = [...value].map((c, i) => (flips[i] ? `%${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c)).join('');
        assert.equal(canonicalQuery(`x=${spelled}`).query, canonicalQuery(`x=${value}`).query);
      }),
      RUNS,
    );
  });

  test('any input either canonicalises or is a QueryError, never another failure', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', '=', '&', '%', '2', 'G', '+', 'é', '\uD800', '%E0', '%C0%AF') }), (raw) => {
        try {
          canonicalQuery(raw);
        } catch (err) {
          assert.ok(err instanceof QueryError, String(err));
        }
      }),
      RUNS,
    );
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
  'application/x-other',
  'TEXT/PLAIN',
);
const q = fc.option(fc.constantFrom('0', '0.1', '0.5', '0.75', '1', '1.0', 'x', '-1', '2'), { nil: undefined });
const param = fc.option(fc.constantFrom('version=1.0.0', 'version=0.0.4', 'charset=utf-8', 'proto=io.prometheus.client.MetricFamily', 'encoding=delimited', 'escaping=underscores'), { nil: undefined });
const member = fc.tuple(mediaType, param, q).map(([t, p, qv]) => [t, p, qv === undefined ? undefined : `q=${qv}`].filter(Boolean).join(';'));
const acceptHeader = fc.array(member, { maxLength: 6 }).map((m) => m.join(','));
const CONTENT_TYPES = {
  text: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
  protobuf: 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited',
};

describe('Accept classification', () => {
  test('admits is the same with spaces around members and parameters', () => {
    fc.assert(
      fc.property(acceptHeader, (header) => {
        const spaced = header.replaceAll(',', ' , ').replaceAll(';', ' ; ');
        for (const ct of Object.values(CONTENT_TYPES)) assert.equal(admits(spaced, ct), admits(header, ct));
      }),
      RUNS,
    );
  });

  test('admits: no Accept and */* admit every type; type/subtype;q=0 alone admits nothing of that type', () => {
    fc.assert(
      fc.property(fc.constantFrom(...Object.values(CONTENT_TYPES)), (ct) => {
        assert.equal(admits(undefined, ct), true);
        assert.equal(admits('*/*', ct), true);
        const [type] = ct.split(';');
        assert.equal(admits(`${type};q=0`, ct), false);
        assert.equal(admits(`*/*;q=1, ${type};q=0`, ct), false);
      }),
    );
  });
});

const coding = fc.constantFrom('gzip', 'GZIP', 'x-gzip', 'identity', 'br', 'deflate', '*', 'zstd', '');
const codingMember = fc.tuple(coding, q).map(([c, qv]) => (qv === undefined ? c : `${c};q=${qv}`));
const acceptEncoding = fc.array(codingMember, { maxLength: 5 }).map((m) => m.join(', '));

describe('Accept-Encoding classification', () => {
  test('the coding chosen is one the header accepts; null only when it accepts neither gzip nor identity', () => {
    fc.assert(
      fc.property(fc.option(acceptEncoding, { nil: undefined }), fc.constantFrom('gzip', 'identity') as fc.Arbitrary<'gzip' | 'identity'>, (header, stored) => {
        const ok = acceptedCodings(header);
        const chosen = chooseCoding(header, stored);
        if (chosen === null) assert.ok(!ok.gzip && !ok.identity);
        else assert.ok(ok[chosen], `${chosen} for ${header}`);
        if (chosen === 'gzip') assert.ok(acceptsCoding(header, 'gzip'));
      }),
      RUNS,
    );
  });

  test('codings are case-insensitive', () => {
    fc.assert(
      fc.property(acceptEncoding, (header) => {
        assert.deepEqual(acceptedCodings(header.toUpperCase()), acceptedCodings(header.toLowerCase()));
        assert.equal(acceptsCoding(header.toUpperCase(), 'br'), acceptsCoding(header.toLowerCase(), 'br'));
      }),
      RUNS,
    );
  });

  test('a coding refused with q=0 and no other mention is never accepted', () => {
    fc.assert(
      fc.property(fc.constantFrom('gzip', 'br', 'zstd'), (c) => {
        assert.equal(acceptsCoding(`${c};q=0`, c), false);
        assert.equal(acceptsCoding(`*;q=1, ${c};q=0`, c), false);
        assert.equal(acceptsCoding('identity', c), false);
        assert.equal(acceptsCoding(undefined, c), false);
      }),
    );
  });
});

const segment = fc.constantFrom('a', 'metrics', '.', '..', '%2e', '%2E', '%2e%2E', '.%2e', '%2e.', '...', 'a.b', '%2F', '%5c', '%00', 'x%20y', '\\', '%', '%zz', '');
const requestPath = fc.array(segment, { maxLength: 6 }).map((s) => `/${s.join('/')}`);

describe('path checks and route matching', () => {
  test('a path that passes the dot-segment check is one a URL parser leaves as it is: no segment is resolved away', () => {
    fc.assert(
      fc.property(requestPath, (path) => {
        if (hasDotSegment(path)) return;
        const normalised = new URL(`http://h${path}`).pathname;
        assert.equal(normalised.split('/').length, path.split('/').length, `${path} -> ${normalised}`);
        assert.ok(new URL(`http://h${path}`).host === 'h');
      }),
      RUNS,
    );
  });

  test('every raw or percent-encoded . and .. segment is caught', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b'), { maxLength: 3 }), fc.constantFrom('.', '..', '%2e', '%2E%2e', '.%2E'), fc.array(fc.constantFrom('a', ''), { maxLength: 3 }), (before, dot, after) => {
        assert.equal(hasDotSegment(`/${[...before, dot, ...after].join('/')}`), true);
      }),
      RUNS,
    );
  });

  const route = (name: string, at: { path?: string; pathPrefix?: string }) => ({ name, ...at }) as unknown as Route;
  test('an exact path wins over any prefix; otherwise the longest prefix that matches', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.constantFrom('/a', '/a/b', '/a/b/c', '/m', '/a/'), { minLength: 0, maxLength: 4 }),
        fc.uniqueArray(fc.constantFrom('/', '/a/', '/a/b/', '/m/', '/ab'), { minLength: 0, maxLength: 4 }),
        fc.constantFrom('/a', '/a/', '/a/b', '/a/b/c', '/a/b/c/d', '/ab/x', '/m', '/m/x', '/z'),
        (exact, prefixes, path) => {
          const table = new RouteTable([...exact.map((p, i) => route(`e${i}`, { path: p })), ...prefixes.map((p, i) => route(`p${i}`, { pathPrefix: p }))]);
          const got = table.match(path);
          if ((exact as string[]).includes(path)) return assert.equal(got?.path, path);
          const matching = (prefixes as string[]).filter((p) => path.startsWith(p)).sort((x, y) => y.length - x.length);
          assert.equal(got?.pathPrefix, matching[0]);
        },
      ),
      RUNS,
    );
  });
});

describe('durations and sizes', () => {
  test('a duration of units in order parses to the sum of its parts, and formats back to the same value', () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.nat(1000), { nil: undefined }), { minLength: 5, maxLength: 5 }), (parts) => {
        const units: Array<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]];
        const text = parts.map((n, i) => (n === undefined ? '' : `${n}${units[i]![0]}`)).join('');
        const expected = parts.reduce<number>((sum, n, i) => sum + (n ?? 0) * units[i]![1], 0);
        if (text === '') return assert.equal(parseDuration(text), undefined);
        assert.equal(parseDuration(text), expected);
        assert.equal(parseDuration(formatDuration(expected)), expected);
      }),
      RUNS,
    );
  });

  test('a duration with units out of order, repeated or unknown is refused', () => {
    fc.assert(
      fc.property(fc.nat(99), fc.nat(99), fc.constantFrom(['s', 'm'], ['m', 'h'], ['s', 's'], ['ms', 's'], ['h', 'd'], ['x', 's'], ['s', 'x']), (a, b, [u1, u2]) => {
        assert.equal(parseDuration(`${a}${u1}${b}${u2}`), undefined);
      }),
    );
  });

  test('a size is the number times its unit, 1000 for KB/MB/GB and 1024 for KiB/MiB/GiB', () => {
    const units: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, '': 1 };
    fc.assert(
      fc.property(fc.nat(100_000), fc.constantFrom(...Object.keys(units)), (n, unit) => {
        assert.equal(parseSize(`${n}${unit}`), n * units[unit]!);
      }),
      RUNS,
    );
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom('-', 'x', 'e', 'iK', '.'), minLength: 1 }), (junk) => assert.equal(parseSize(`1${junk}B`), undefined)));
  });
});
