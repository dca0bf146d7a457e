/** Where an answer other than the planned one is stored, and found again (src/cache/answered-keys.ts, SPEC 3.2). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AnsweredKeys, answeredKeys, asAnswered } from '../src/cache/answered-keys.js';
import { cacheKey, scrapeKey } from '../src/cache/key.js';
import { SOURCE, SOURCE_ACCEPT } from '../src/cache/upstream-profile.js';
import { makeRecord } from './helpers/store-conformance.js';

test('a text answer to a protobuf fetch is stored under the text key', () => {
  const planned = makeRecord({ representation: SOURCE, headers: ['Content-Type', 'text/plain; version=0.0.4; charset=utf-8'] });
  const stored = asAnswered(planned);
  assert.equal(stored.representation, 'text;0.0.4');
  assert.equal(stored.key, cacheKey(planned.route, planned.path, planned.query, 'text;0.0.4'));
});

test('errors and exact-Accept entries keep the key they were fetched for', () => {
  const error = { ...makeRecord({ representation: SOURCE, headers: ['Content-Type', 'text/plain'] }), status: 503 };
  assert.equal(asAnswered(error), error);
  const exact = makeRecord({ representation: 'accept:text/plain', headers: ['Content-Type', 'text/plain; version=0.0.4'] });
  assert.equal(asAnswered(exact), exact);
});

test("a protobuf probe's miss may be held under the client's own answer", () => {
  const key = cacheKey('node', '/m', '', SOURCE);
  const candidates = answeredKeys(key, `${SOURCE_ACCEPT},text/plain;version=0.0.4`);
  assert.ok(candidates.length > 0);
  for (const other of candidates) assert.ok(other.startsWith(`${scrapeKey('node', '/m', '')}\0`) && other !== key, other);
  assert.deepEqual(answeredKeys(key, 'text/plain'), [], 'no probe, no other key');
});

test('a request with an escaping term may be held under the key without it', () => {
  assert.deepEqual(answeredKeys(cacheKey('n', '/m', '', 'text;0.0.4;underscores'), undefined), [cacheKey('n', '/m', '', 'text;0.0.4')]);
  assert.deepEqual(answeredKeys(cacheKey('n', '/m', '', 'text;0.0.4'), undefined), []);
});

test('a learned answer is looked at first, per key and Accept', () => {
  const memo = new AnsweredKeys();
  const key = cacheKey('n', '/m', '', 'text;0.0.4;underscores');
  memo.remember(key, 'a', 'learned');
  assert.deepEqual(memo.candidates(key, 'a'), ['learned', cacheKey('n', '/m', '', 'text;0.0.4')]);
  assert.deepEqual(memo.candidates(key, 'b'), [cacheKey('n', '/m', '', 'text;0.0.4')]);
});
