/** What listings and the status page read of the memory level (src/cache/cache-reads.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CacheReads } from '../src/cache/cache-reads.js';
import { cacheKey } from '../src/cache/key.js';
import { MemoryStore } from '../src/cache/memory-store.js';
import { ManualClock, nodeRoute, recordFor, targetOf } from './helpers/cache-parts.js';

test('reads find entries by target, by route and path, and in key order, without counting hits', () => {
  const clock = new ManualClock();
  const memory = new MemoryStore(1 << 20, {}, clock.now);
  const reads = new CacheReads(memory);
  const route = nodeRoute();
  const a = targetOf(route, 'text;0.0.4');
  const b = { ...targetOf(route, 'text;0.0.4'), query: 'x=1' };
  memory.set(recordFor(a));
  memory.set(recordFor(b));
  assert.equal(reads.peek(a)?.key, cacheKey('node', '/node/metrics', '', 'text;0.0.4'));
  assert.equal(reads.hitsOf(reads.peek(a)!), 0);
  assert.equal(reads.entriesAt('node', '/node/metrics').length, 2);
  assert.deepEqual([...reads.inKeyOrder()].map((e) => e.query), ['', 'x=1']);
  assert.equal(reads.countSelected({ route: 'node', query: 'x=1' }), 1);
  assert.equal(reads.count, 2);
  assert.equal(reads.usage('node').entries, 2);
  memory.close();
});
