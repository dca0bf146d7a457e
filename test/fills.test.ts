/** One fill of a key: stored under what the upstream answered, or backed off on failure (src/cache/fills.ts, SPEC 3.3). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Fills } from '../src/cache/fills.js';
import { keyOf } from '../src/cache/key.js';
import { PeerFill } from '../src/cache/peer-fill.js';
import { Prefetcher } from '../src/cache/prefetcher.js';
import { SingleFlight } from '../src/cache/single-flight.js';
import { StoredResponse } from '../src/cache/stored-response.js';
import { ProxyError } from '../src/errors.js';
import { ManualClock, log, nodeRoute, recordFor, RecordingBus, ScriptedFiller, T0, targetOf, tiersWith } from './helpers/cache-parts.js';

const route = nodeRoute();
const target = targetOf(route);
const key = keyOf(target);

function setup() {
  const clock = new ManualClock();
  const bus = new RecordingBus();
  const { tiers, memory, failures, answered } = tiersWith(clock, { bus });
  const flights = new SingleFlight();
  const peer = new PeerFill({ lease: undefined, tiers, failures, now: clock.now });
  const prefetcher = new Prefetcher(false, { route: () => undefined, peek: () => undefined, refresh: () => undefined }, clock);
  const filler = new ScriptedFiller(clock);
  const fills = new Fills({ flights, peer, tiers, failures, prefetcher, answered, filler, bus, log });
  return { clock, bus, tiers, memory, failures, answered, flights, filler, fills };
}

test('a fill stores what the upstream answered and tells the observer of the 200', async () => {
  const { fills, memory, filler } = setup();
  const told: string[] = [];
  fills.observer = (t, entry) => told.push(`${t.representation} ${entry.status}`);
  const result = await fills.fill(key, target, undefined);
  assert.equal(result.stored, true);
  assert.equal(memory.peek(key), result.entry);
  assert.equal(filler.fetched.length, 1);
  assert.deepEqual(told, ['openmetrics;1.0.0 200']);
});

test('an answer in another format is stored under its own key, and a later miss of the asked key finds it', async () => {
  const { fills, memory, tiers, filler, clock } = setup();
  const asked = targetOf(route, 'protobuf', 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited');
  filler.answer = async (t) => ({ record: recordFor(t, clock.at, { headers: ['Content-Type', 'text/plain; version=0.0.4; charset=utf-8'] }), storable: true, fetchedMs: 1 });
  const result = await fills.fill(keyOf(asked), asked, undefined);
  assert.equal(result.entry.representation, 'text;0.0.4');
  assert.equal(memory.peek(keyOf(asked)), undefined, 'nothing under the key asked for');
  assert.equal(memory.peek(result.entry.key), result.entry);
  assert.equal(tiers.lookup(keyOf(asked), asked.accept, clock.at), result.entry);
});

test('what may not be stored is answered but not kept', async () => {
  const { fills, memory, filler, clock } = setup();
  filler.answer = async (t) => ({ record: recordFor(t, clock.at), storable: false, fetchedMs: 1 });
  const result = await fills.fill(key, target, undefined);
  assert.equal(result.stored, false);
  assert.equal(memory.peek(key), undefined);
});

test('a failed refresh keeps the entry, backs its key off and tells the others', async () => {
  const { fills, memory, failures, filler, bus, tiers } = setup();
  const previous = tiers.store(StoredResponse.fromRecord(recordFor(target, T0)))!;
  bus.published.length = 0;
  filler.answer = () => Promise.reject(new ProxyError('UPSTREAM_UNREACHABLE', 'down'));
  await assert.rejects(fills.fill(key, target, previous));
  assert.equal(memory.peek(key), previous);
  assert.equal(failures.of(key, previous)?.retryAt, T0 + 1000);
  assert.deepEqual(bus.published, [{ type: 'failed', key, fwdStatus: 502, retryAt: T0 + 1000 }]);
});

test('a 5xx answer to a refresh backs the key off too', async () => {
  const { fills, failures, filler, tiers, clock } = setup();
  const previous = tiers.store(StoredResponse.fromRecord(recordFor(target, T0)))!;
  filler.answer = async (t) => ({ record: { ...recordFor(t, clock.at), status: 503 }, storable: false, fetchedMs: 1 });
  const result = await fills.fill(key, target, previous);
  assert.equal(result.entry.status, 503);
  assert.equal(failures.of(key, previous)?.fwdStatus, 503);
});

test('a fill an invalidation superseded answers but stores nothing', async () => {
  const { fills, memory, filler, flights, clock } = setup();
  let answer!: () => void;
  filler.answer = (t) => new Promise((resolve) => (answer = () => resolve({ record: recordFor(t, clock.at), storable: true, fetchedMs: 1 })));
  const filling = fills.fill(key, target, undefined);
  await new Promise((r) => setImmediate(r));
  flights.supersede({ route: 'node' }, () => undefined);
  answer();
  const result = await filling;
  assert.equal(result.stored, false);
  assert.equal(memory.peek(key), undefined);
});

test('a background refresh does not start while a fill of the key runs, nor after close', async () => {
  const { fills, filler } = setup();
  const filling = fills.fill(key, target, undefined);
  fills.background(target, undefined);
  await filling;
  assert.equal(filler.fetched.length, 1);
  fills.close();
  fills.background(target, undefined);
  assert.equal(filler.fetched.length, 1);
});
