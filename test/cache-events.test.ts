/** What the other caches say on the bus, heard here (src/cache/cache-events.ts, SPEC 2.2). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CacheEvents } from '../src/cache/cache-events.js';
import { LocalFillLease } from '../src/cache/fill-lease.js';
import { HitCounter } from '../src/cache/hit-counter.js';
import { Invalidation } from '../src/cache/invalidation.js';
import { keyOf } from '../src/cache/key.js';
import { PeerFill } from '../src/cache/peer-fill.js';
import { Prefetcher } from '../src/cache/prefetcher.js';
import { SingleFlight } from '../src/cache/single-flight.js';
import type { StoredResponse } from '../src/cache/stored-response.js';
import type { Route } from '../src/config/types.js';
import { BytesStore } from './helpers/bytes-store.js';
import { ManualClock, nodeRoute, recordFor, T0, targetOf, tiersWith } from './helpers/cache-parts.js';

function setup(route: Route = nodeRoute()) {
  const clock = new ManualClock();
  const second = new BytesStore(clock.now);
  const { tiers, memory, failures } = tiersWith(clock, { second, shared: true });
  const routes = () => new Map([[route.name, route]]);
  const flights = new SingleFlight();
  const lease = new LocalFillLease(clock.now);
  const peer = new PeerFill({ lease, tiers, failures, now: clock.now });
  const prefetcher = new Prefetcher(true, { route: (name) => routes().get(name), peek: (key) => memory.peek(key), refresh: () => undefined }, clock);
  const invalidation = new Invalidation({ tiers, flights, failures, hits: new HitCounter(), bus: undefined, metrics: undefined, now: clock.now, release: () => undefined, routes, fill: () => Promise.reject(new Error('no fill')) });
  const events = new CacheEvents({ tiers, failures, invalidation, peer, prefetcher, routes });
  return { clock, second, tiers, memory, failures, lease, peer, prefetcher, events, route };
}

test("a record another cache stored is taken here, and a prefetched key is kept fresh here too", () => {
  const { events, memory, prefetcher, route } = setup(nodeRoute('    prefetch: true\n'));
  const record = recordFor(targetOf(route));
  events.heard({ type: 'stored', key: record.key, record });
  assert.equal(memory.peek(record.key)?.fetchedAt, T0);
  assert.equal(prefetcher.has(record.key), true);
  prefetcher.close();
});

test('a record of a route that fetches differently here is ignored', () => {
  const { events, memory, route } = setup();
  const record = { ...recordFor(targetOf(route)), fingerprint: 'another upstream' };
  events.heard({ type: 'stored', key: record.key, record });
  assert.equal(memory.peek(record.key), undefined);
});

test("a notice of a newer record replaces the copy held here with the shared level's", async () => {
  const { events, memory, second, tiers, route } = setup();
  const target = targetOf(route);
  tiers.adopt(recordFor(target, T0));
  await second.set(recordFor(target, T0 + 5));
  events.heard({ type: 'stored', key: keyOf(target), fetchedAt: T0 + 5, fingerprint: route.recordFingerprint });
  for (let i = 0; i < 10 && memory.peek(keyOf(target))?.fetchedAt !== T0 + 5; i++) await new Promise((r) => setImmediate(r));
  assert.equal(memory.peek(keyOf(target))?.fetchedAt, T0 + 5);
});

test("a peer's failure backs off the copy held here", () => {
  const { events, failures, tiers, route } = setup();
  const held = tiers.adopt(recordFor(targetOf(route)))!;
  events.heard({ type: 'failed', key: held.key, fwdStatus: 502, retryAt: T0 + 8000 });
  assert.equal(failures.of(held.key, held)?.retryAt, T0 + 8000);
});

test("a `stored` event answers the fill waiting for the peer's lease", async () => {
  const { events, lease, peer, tiers, route } = setup();
  const target = targetOf(route);
  lease.acquire(keyOf(target), 60_000);
  const waiting = peer.acquire(keyOf(target), { target, superseded: false }, undefined);
  await new Promise((r) => setImmediate(r));
  const record = recordFor(target);
  events.heard({ type: 'stored', key: record.key, record });
  const result = await waiting;
  assert.ok('entry' in result);
  assert.equal(result.entry, tiers.memory.peek(record.key));
});

test("another cache's soft invalidation marks the copy held here stale", () => {
  const { events, tiers, clock, route } = setup();
  const held: StoredResponse = tiers.adopt(recordFor(targetOf(route)))!;
  events.heard({ type: 'invalidated', selection: { route: 'node' }, soft: true });
  assert.equal(tiers.memory.peek(held.key)!.staleFrom, clock.at);
  assert.equal(held.staleFrom, undefined, 'the mark is a new entry; the one held before is unchanged');
});
