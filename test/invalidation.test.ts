/** Hard and soft invalidation, sliced (src/cache/invalidation.ts, SPEC 4). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ScrapeTarget } from '../src/cache/filler.js';
import { isFresh } from '../src/cache/freshness.js';
import { HitCounter } from '../src/cache/hit-counter.js';
import { Invalidation } from '../src/cache/invalidation.js';
import { keyOf } from '../src/cache/key.js';
import { SingleFlight, type FillResult } from '../src/cache/single-flight.js';
import { StoredResponse } from '../src/cache/stored-response.js';
import type { Route } from '../src/config/types.js';
import { BytesStore } from './helpers/bytes-store.js';
import { ManualClock, nodeRoute, recordFor, RecordingBus, T0, targetOf, tiersWith } from './helpers/cache-parts.js';

function setup(route: Route = nodeRoute()) {
  const clock = new ManualClock();
  const second = new BytesStore(clock.now);
  const bus = new RecordingBus();
  const { tiers, memory, failures } = tiersWith(clock, { second, bus });
  const flights = new SingleFlight();
  const refetched: Array<{ target: ScrapeTarget; previous: StoredResponse | undefined }> = [];
  const fill = async (_key: string, target: ScrapeTarget, previous: StoredResponse | undefined): Promise<FillResult> => {
    refetched.push({ target, previous });
    const entry = tiers.store(StoredResponse.fromRecord(recordFor(target, clock.at + 1)));
    return entry ? { entry, stored: true } : { entry: previous!, stored: false };
  };
  const hits = new HitCounter();
  const invalidation = new Invalidation({ tiers, flights, failures, hits, bus, metrics: undefined, now: clock.now, release: () => undefined, routes: () => new Map([[route.name, route]]), fill });
  const store = (t: ScrapeTarget) => tiers.store(StoredResponse.fromRecord(recordFor(t, clock.at)))!;
  return { clock, second, bus, tiers, memory, failures, flights, refetched, invalidation, store, route, hits };
}

test('a hard invalidation drops the entries here and below and tells the others', async () => {
  const { invalidation, store, memory, second, bus, route } = setup();
  const entry = store(targetOf(route));
  bus.published.length = 0;
  assert.deepEqual(await invalidation.invalidate({ route: 'node' }, false), { invalidated: 1, refreshed: 0 });
  assert.equal(memory.peek(entry.key), undefined);
  assert.equal(second.values.size, 0);
  assert.deepEqual(bus.published, [{ type: 'invalidated', selection: { route: 'node' } }]);
});

test('with refresh, the dropped keys are fetched again, and an exact-path route with nothing held is fetched too', async () => {
  const { invalidation, refetched } = setup();
  const result = await invalidation.invalidate({ route: 'node' }, true);
  assert.equal(result.refreshed, 1);
  assert.deepEqual(refetched.map((r) => r.target.representation), ['protobuf'], 'the start-up representation');
});

test('a fill in flight for a selected key is superseded', async () => {
  const { invalidation, flights, store, route } = setup();
  const target = targetOf(route);
  const entry = store(target);
  let superseded: boolean | undefined;
  let done!: () => void;
  const filling = flights.start(keyOf(target), target, (flight) => new Promise((resolve) => (done = () => resolve({ entry, stored: !(superseded = flight.superseded) }))));
  await invalidation.invalidate({ route: 'node' }, false);
  assert.equal(flights.joinable(keyOf(target)), undefined, 'new requests do not join it');
  done();
  assert.equal((await filling).stored, false);
  assert.equal(superseded, true);
});

test('a large selection is dropped in slices of a thousand, and whole', async () => {
  const { invalidation, store, memory, route } = setup();
  for (let i = 0; i < 2500; i++) store({ ...targetOf(route), query: `q=${i}` });
  assert.equal(memory.count, 2500);
  const invalidating = invalidation.invalidate({}, false);
  assert.equal(memory.count, 1500, 'one slice, then the scrapes waiting get their turn');
  assert.equal((await invalidating).invalidated, 2500);
  assert.equal(memory.count, 0);
});

test('a soft invalidation keeps the entry servable but stale, marks it below, clears its back-off and refetches it', async () => {
  const { invalidation, store, memory, second, failures, refetched, clock, route } = setup();
  const entry = store(targetOf(route));
  failures.failed(entry.key, entry, 502);
  clock.advance(1000);
  const result = await invalidation.softInvalidate({ route: 'node' }, true);
  assert.deepEqual(result, { invalidated: 1, refetching: 1, refreshed: 1 });
  const marked = refetched[0]!.previous!;
  assert.notEqual(marked, entry, 'the mark is a new entry: the one a store returned is never changed');
  assert.equal(marked.body, entry.body, 'sharing its body');
  assert.equal(isFresh(marked, clock.at), false, 'the refetch replaces the marked entry');
  assert.equal(isFresh(entry, clock.at), true);
  assert.equal((await second.get(entry.key))!.fetchedAt > T0, true, 'the refetched copy is below');
  assert.equal(failures.of(entry.key, entry), undefined);
  assert.ok(memory.peek(entry.key));
});

test('a softly invalidated entry is a new entry in the same place, with the hits its predecessor had', () => {
  const { invalidation, store, memory, hits, clock, route } = setup();
  const entry = store(targetOf(route));
  hits.count(entry);
  hits.count(entry);
  invalidation.heard({ route: 'node' }, true);
  const marked = memory.peek(entry.key)!;
  assert.notEqual(marked, entry);
  assert.equal(isFresh(marked, clock.at), false);
  assert.equal(hits.of(marked), 2);
  assert.equal(memory.count, 1);
});

test("another cache's invalidation drops (hard) or marks (soft) the copies held here, without refetching", async () => {
  const { invalidation, store, memory, refetched, clock, route } = setup();
  const entry = store(targetOf(route));
  invalidation.heard({ route: 'node' }, true);
  const marked = memory.peek(entry.key)!;
  assert.equal(isFresh(marked, clock.at), false);
  assert.equal(marked.body, entry.body);
  assert.equal(isFresh(entry, clock.at), true, 'a new entry holds the mark; the old one is unchanged');
  invalidation.heard({ route: 'node' }, false);
  await new Promise((r) => setImmediate(r));
  assert.equal(memory.peek(entry.key), undefined);
  assert.equal(refetched.length, 0);
});

test('an invalidation that did not reach the fleet is remembered until one does', async () => {
  const { invalidation, bus } = setup();
  bus.publish = () => ({ reached: 'this replica only', reason: 'redis down' }) as never;
  const result = await invalidation.invalidate({}, false);
  assert.equal(result.reach?.reason, 'redis down');
  assert.equal(invalidation.lastUnreached?.at, T0);
  bus.publish = () => undefined;
  await invalidation.invalidate({}, false);
  assert.equal(invalidation.lastUnreached, undefined);
});

test('dropping a reloaded route removes its entries at once', () => {
  const { invalidation, store, memory, route } = setup();
  store(targetOf(route));
  assert.equal(invalidation.dropRoutes(new Set(['node'])), 1);
  assert.equal(memory.count, 0);
});
