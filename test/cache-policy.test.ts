/** The cache's decision as a pure function of entry, back-off and time (src/cache/cache-policy.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, isPrefetched, startupTarget } from '../src/cache/cache-policy.js';
import { softTimes } from '../src/cache/freshness.js';
import { SOURCE, SOURCE_ACCEPT } from '../src/cache/upstream-profile.js';
import { PROMETHEUS_ACCEPT } from '../src/cache/accept-headers.js';
import { makeRecord, T0 } from './helpers/store-conformance.js';
import { nodeRoute, targetOf } from './helpers/cache-parts.js';

// Fresh for a minute, then served while revalidating for a minute, and on error for ten.
const entry = makeRecord({ fetchedAt: T0, ttlMs: 60_000, staleWhileRevalidateMs: 60_000, staleIfErrorMs: 600_000 });

test('a fresh entry is a hit, with or without a failure on record', () => {
  assert.equal(decide(entry, undefined, T0 + 59_999), 'hit');
  assert.equal(decide(entry, { retryAt: T0 + 999_999 }, T0 + 1), 'hit');
});

test('nothing held is a fill', () => {
  assert.equal(decide(undefined, undefined, T0), 'fill');
});

test('a stale entry within stale-while-revalidate is served and refreshed', () => {
  assert.equal(decide(entry, undefined, T0 + 60_000), 'stale-and-refresh');
});

test('within stale-while-revalidate a failed refresh is not retried before its back-off ends', () => {
  assert.equal(decide(entry, { retryAt: T0 + 70_000 }, T0 + 65_000), 'stale-under-back-off');
  assert.equal(decide(entry, { retryAt: T0 + 70_000 }, T0 + 70_000), 'stale-and-refresh');
});

test('past stale-while-revalidate a failed refresh serves stale_if_error until the back-off ends, then fills', () => {
  assert.equal(decide(entry, { retryAt: T0 + 200_000 }, T0 + 150_000), 'stale-under-back-off');
  assert.equal(decide(entry, { retryAt: T0 + 200_000 }, T0 + 200_000), 'fill');
  assert.equal(decide(entry, undefined, T0 + 150_000), 'fill', 'stale_if_error alone does not serve without a failure');
});

test('a soft-invalidated entry is served while refetched, but not once its refetch failed', () => {
  const plain = makeRecord({ fetchedAt: T0, ttlMs: 60_000 });
  const soft = { ...plain, ...softTimes(plain, T0 + 1000, 30_000) };
  assert.equal(decide(soft, undefined, T0 + 1000), 'stale-and-refresh');
  assert.equal(decide(soft, { retryAt: T0 + 5000 }, T0 + 2000), 'fill');
});

test('prefetch keeps the route path without a query in a metrics format, not exact-Accept keys', () => {
  const route = nodeRoute('    prefetch: true\n');
  assert.equal(isPrefetched(targetOf(route)), true);
  assert.equal(isPrefetched({ ...targetOf(route), query: 'a=1' }), false);
  assert.equal(isPrefetched({ ...targetOf(route), path: '/other' }), false);
  assert.equal(isPrefetched({ ...targetOf(route), representation: 'accept:text/plain' }), false);
  assert.equal(isPrefetched(targetOf(nodeRoute())), false);
  assert.equal(isPrefetched(undefined), false);
});

test('start-up prefetch asks for protobuf then Prometheus formats, or the pinned format', () => {
  const negotiated = startupTarget(nodeRoute(), '/node/metrics');
  assert.equal(negotiated.representation, SOURCE);
  assert.equal(negotiated.accept, `${SOURCE_ACCEPT},${PROMETHEUS_ACCEPT}`);
  assert.equal(startupTarget(nodeRoute('    format: protobuf\n'), '/node/metrics').accept, SOURCE_ACCEPT);
  assert.equal(startupTarget(nodeRoute('    format: text\n'), '/node/metrics').representation, 'text;0.0.4;underscores');
  assert.equal(startupTarget(nodeRoute('    format: openmetrics\n'), '/node/metrics').representation, 'openmetrics;1.0.0;underscores');
});
