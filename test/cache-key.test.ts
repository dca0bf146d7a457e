/** One module builds and parses cache keys (src/cache/key.ts, SPEC 3.2). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cacheKey, keyOf, parseKey, representationOfKey, routeKeyPrefix, routeOfKey, scrapeKey, withRepresentation } from '../src/cache/key.js';
import { nodeRoute, targetOf } from './helpers/cache-parts.js';

test('a key parses back into the route, path, query and representation it was built from', () => {
  const key = cacheKey('node', '/probe', 'module=a&target=b', 'text;0.0.4');
  assert.deepEqual(parseKey(key), { route: 'node', path: '/probe', query: 'module=a&target=b', representation: 'text;0.0.4' });
  assert.equal(routeOfKey(key), 'node');
  assert.equal(representationOfKey(key), 'text;0.0.4');
});

test('a target and its parts give the same key', () => {
  const target = targetOf(nodeRoute());
  assert.equal(keyOf(target), cacheKey('node', '/node/metrics', '', 'openmetrics;1.0.0'));
  assert.ok(keyOf(target).startsWith(scrapeKey('node', '/node/metrics', '')));
  assert.ok(keyOf(target).startsWith(routeKeyPrefix('node')));
  assert.ok(!cacheKey('node2', '/', '', 'text').startsWith(routeKeyPrefix('node')), "a route's prefix is not another route's");
});

test('anything but a four-part key does not parse', () => {
  assert.equal(parseKey('node'), undefined);
  assert.equal(parseKey('node\0/metrics\0'), undefined);
  assert.equal(parseKey('a\0b\0c\0d\0e'), undefined);
});

test('the same scrape in another representation keeps route, path and query', () => {
  const key = cacheKey('node', '/m', 'a=1', 'protobuf');
  assert.equal(withRepresentation(key, 'text;0.0.4'), cacheKey('node', '/m', 'a=1', 'text;0.0.4'));
});
