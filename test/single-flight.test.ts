/** At most one fill per key in flight within a process (src/cache/single-flight.ts, SPEC 3.3). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SingleFlight, type FillResult, type Flight } from '../src/cache/single-flight.js';
import { StoredResponse } from '../src/cache/stored-response.js';
import { nodeRoute, recordFor, routesOf, targetOf } from './helpers/cache-parts.js';

const route = nodeRoute();
const result = (): FillResult => ({ entry: StoredResponse.fromRecord(recordFor(targetOf(route))), stored: true });

function held(): { promise: Promise<FillResult>; resolve: (r: FillResult) => void; flights: Flight[]; run: (f: Flight) => Promise<FillResult> } {
  let resolve!: (r: FillResult) => void;
  const promise = new Promise<FillResult>((r) => (resolve = r));
  const flights: Flight[] = [];
  return { promise, resolve, flights, run: (f) => (flights.push(f), promise) };
}

test('a request for a key being filled joins that fill, and the key is free once it settles', async () => {
  const sf = new SingleFlight();
  const fill = held();
  const started = sf.start('k', targetOf(route), fill.run);
  assert.equal(sf.has('k'), true);
  const joined = sf.joinable('k');
  assert.ok(joined);
  fill.resolve(result());
  assert.equal(await joined, await started);
  assert.equal(sf.has('k'), false);
  assert.equal(sf.joinable('k'), undefined);
});

test('a superseded fill still answers its waiters, new requests do not join it, and its lease is freed', async () => {
  const sf = new SingleFlight();
  const fill = held();
  const started = sf.start('k', targetOf(route), fill.run);
  fill.flights[0]!.token = 'token-1';
  const released: string[] = [];
  sf.supersede({ route: 'node' }, (key, token) => released.push(`${key}:${token}`));
  assert.equal(fill.flights[0]!.superseded, true);
  assert.equal(sf.joinable('k'), undefined);
  assert.deepEqual(released, ['k:token-1']);
  fill.resolve(result());
  assert.equal((await started).stored, true);
});

test('an invalidation of another route leaves a fill alone', () => {
  const sf = new SingleFlight();
  const other = routesOf('  - name: other\n    path: /o\n    upstream: http://127.0.0.1:9/o\n')[0]!;
  const fill = held();
  void sf.start('k', targetOf(other), fill.run);
  sf.supersede({ route: 'node' }, () => assert.fail('nothing to release'));
  assert.equal(fill.flights[0]!.superseded, false);
  assert.ok(sf.joinable('k'));
  fill.resolve(result());
});

test('a new fill started while an older one runs is the one joined, and the older one leaving does not free it', async () => {
  const sf = new SingleFlight();
  const first = held();
  const second = held();
  const older = sf.start('k', targetOf(route), first.run);
  const newer = sf.start('k', targetOf(route), second.run);
  first.resolve(result());
  await older;
  assert.equal(sf.joinable('k'), newer);
  second.resolve(result());
  await newer;
});

test('drain waits for every fill in flight, failed ones included', async () => {
  const sf = new SingleFlight();
  const fill = held();
  void sf.start('a', targetOf(route), fill.run);
  sf.start('b', targetOf(route), () => Promise.reject(new Error('unreachable'))).catch(() => undefined);
  let drained = false;
  const draining = sf.drain().then(() => (drained = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(drained, false);
  fill.resolve(result());
  await draining;
  assert.equal(drained, true);
});
