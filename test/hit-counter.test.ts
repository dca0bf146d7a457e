/** Hits counted beside the entries, never in them (src/cache/hit-counter.ts, issue 18). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HitCounter } from '../src/cache/hit-counter.js';
import { StoredResponse } from '../src/cache/stored-response.js';
import { nodeRoute, recordFor, T0, targetOf } from './helpers/cache-parts.js';

test('each serve of an entry counts once, and the entry itself is not changed', () => {
  const counter = new HitCounter();
  const entry = StoredResponse.fromRecord(recordFor(targetOf(nodeRoute())));
  const before = JSON.stringify(Object.entries(entry));
  counter.count(entry);
  counter.count(entry);
  assert.equal(counter.of(entry), 2);
  assert.equal(JSON.stringify(Object.entries(entry)), before);
});

test('an entry that replaces another under the same key starts at zero', () => {
  const counter = new HitCounter();
  const target = targetOf(nodeRoute());
  const old = StoredResponse.fromRecord(recordFor(target, T0));
  counter.count(old);
  const refreshed = StoredResponse.fromRecord(recordFor(target, T0 + 1));
  assert.equal(counter.of(refreshed), 0);
  assert.equal(counter.of(old), 1);
});
