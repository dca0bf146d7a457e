/** The levels seen as one store: memory, the second level and the bus (src/cache/cache-tiers.ts, SPEC 2.1, 2.2). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keyOf } from '../src/cache/key.js';
import { StoredResponse } from '../src/cache/stored-response.js';
import type { StoredRecord } from '../src/cache/stored-record.js';
import { BytesStore } from './helpers/bytes-store.js';
import { ManualClock, nodeRoute, recordFor, RecordingBus, routesOf, T0, targetOf, tiersWith } from './helpers/cache-parts.js';

const route = nodeRoute();

/** A second level that lists its records, as the disk level does for warm load. */
class ListedStore extends BytesStore {
  async *records(): AsyncIterable<StoredRecord> {
    for (const key of [...this.values.keys()]) {
      const record = await this.get(key);
      if (record) yield record;
    }
  }
}
const target = targetOf(route);

test('a stored fill is held in memory, written below and told on the bus', async () => {
  const clock = new ManualClock();
  const second = new BytesStore(clock.now);
  const bus = new RecordingBus();
  const { tiers, memory, failures } = tiersWith(clock, { second, bus });
  const entry = StoredResponse.fromRecord(recordFor(target));
  failures.failed(entry.key, entry, 502);
  assert.equal(tiers.store(entry), entry);
  assert.equal(memory.peek(entry.key), entry);
  assert.equal((await second.get(entry.key))?.fetchedAt, T0);
  assert.deepEqual(bus.published.map((e) => e.type), ['stored']);
  assert.equal(failures.of(entry.key, entry), undefined, 'a stored entry starts without failures');
});

test('an older fill never replaces a newer entry', () => {
  const clock = new ManualClock();
  const { tiers, memory } = tiersWith(clock);
  const newer = StoredResponse.fromRecord(recordFor(target, T0 + 10));
  tiers.store(newer);
  assert.equal(tiers.store(StoredResponse.fromRecord(recordFor(target, T0))), undefined);
  assert.equal(memory.peek(newer.key), newer);
});

test('under a shared lease, a fill whose lease was taken from it keeps nothing and tells nobody', async () => {
  const clock = new ManualClock();
  const bus = new RecordingBus();
  const { tiers, memory } = tiersWith(clock, { second: new BytesStore(clock.now), bus, shared: true });
  const entry = StoredResponse.fromRecord(recordFor(target));
  tiers.store(entry, async () => false);
  await new Promise((r) => setImmediate(r));
  assert.equal(memory.peek(entry.key), undefined);
  assert.deepEqual(bus.published, []);
});

test('a miss reads the second level, but never a record of a route that fetches differently now', async () => {
  const clock = new ManualClock();
  const second = new BytesStore(clock.now);
  const { tiers, memory } = tiersWith(clock, { second });
  await second.set({ ...recordFor(target), fingerprint: 'another upstream' });
  assert.equal(await tiers.fromSecond(keyOf(target), target), undefined);
  await second.set(recordFor(target));
  const read = await tiers.fromSecond(keyOf(target), target);
  assert.equal(read?.fetchedAt, T0);
  assert.equal(memory.peek(keyOf(target)), read, 'taken into memory');
});

test('a refresh does not take the copy it refreshes back from below', async () => {
  const clock = new ManualClock();
  const second = new BytesStore(clock.now);
  const { tiers } = tiersWith(clock, { second });
  await second.set(recordFor(target));
  const previous = StoredResponse.fromRecord(recordFor(target));
  assert.equal(await tiers.fromSecond(keyOf(target), target, { previous }), undefined);
});

test('a read from below that an invalidation overtook takes nothing into memory', async () => {
  const clock = new ManualClock();
  let answer!: (record: StoredRecord | undefined) => void;
  const second = new BytesStore(clock.now);
  second.get = () => new Promise((resolve) => (answer = resolve));
  const { tiers, memory } = tiersWith(clock, { second });
  const reading = tiers.fromSecond(keyOf(target), target);
  tiers.invalidating();
  answer(recordFor(target));
  assert.equal(await reading, undefined);
  assert.equal(memory.peek(keyOf(target)), undefined);
});

test('while a selection is being cleared below, nothing it names is read back', async () => {
  const clock = new ManualClock();
  const second = new BytesStore(clock.now);
  const { tiers } = tiersWith(clock, { second });
  await second.set(recordFor(target));
  const during = await tiers.whileClearing({ route: 'node' }, () => tiers.fromSecond(keyOf(target), target));
  assert.equal(during, undefined);
  assert.ok(await tiers.fromSecond(keyOf(target), target), 'read once the clearing is over');
});

test('warm load takes the records of routes that still fetch the same way and deletes the others below', async () => {
  const clock = new ManualClock();
  const second = new ListedStore(clock.now);
  const gone = routesOf('  - name: gone\n    path: /g\n    upstream: http://127.0.0.1:9/g\n')[0]!;
  await second.set(recordFor(target));
  await second.set(recordFor(targetOf(gone)));
  await second.set({ ...recordFor(targetOf(route, 'text;0.0.4')), fingerprint: 'old upstream' });
  const { tiers, memory } = tiersWith(clock, { second });
  assert.deepEqual(await tiers.load([route]), { loaded: 1, dropped: 2 });
  assert.equal(memory.count, 1);
  assert.equal(second.values.size, 1);
});

test('a miss finds a fresh entry stored under what the upstream answered a key like it with', () => {
  const clock = new ManualClock();
  const { tiers, answered } = tiersWith(clock);
  const text = StoredResponse.fromRecord(recordFor(targetOf(route, 'text;0.0.4')));
  tiers.store(text);
  const asked = keyOf(targetOf(route, 'openmetrics;1.0.0'));
  assert.equal(tiers.lookup(asked, 'x', clock.at), undefined);
  answered.remember(asked, 'x', text.key);
  assert.equal(tiers.lookup(asked, 'x', clock.at), text);
  clock.advance(60_000);
  assert.equal(tiers.lookup(asked, 'x', clock.at), undefined, 'only while it is fresh');
});

test('a record of another cache is adopted unless a newer copy is held', () => {
  const clock = new ManualClock();
  const { tiers, memory } = tiersWith(clock);
  const adopted = tiers.adopt(recordFor(target, T0 + 5));
  assert.equal(memory.peek(keyOf(target)), adopted);
  assert.equal(tiers.adopt(recordFor(target, T0)), adopted, 'the newer one stays');
});

test('a second level that is not a store is refused where it plugs in, naming what it lacks', () => {
  const clock = new ManualClock();
  const notAStore = { name: 'half', get: () => undefined, set: () => true, close: () => undefined } as unknown as BytesStore;
  assert.throws(() => tiersWith(clock, { second: notAStore }), { name: 'TypeError', message: 'second level.delete must be a function' });
});
