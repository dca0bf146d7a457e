/** Single flight across replicas: the lease, and waiting for the peer that holds it (src/cache/peer-fill.ts, SPEC 2.2). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalFillLease } from '../src/cache/fill-lease.js';
import { keyOf } from '../src/cache/key.js';
import { PeerFill } from '../src/cache/peer-fill.js';
import type { Flight } from '../src/cache/single-flight.js';
import { StoredResponse } from '../src/cache/stored-response.js';
import type { ProxyError } from '../src/errors.js';
import { BytesStore } from './helpers/bytes-store.js';
import { ManualClock, nodeRoute, recordFor, T0, targetOf, tiersWith } from './helpers/cache-parts.js';

const route = nodeRoute();
const target = targetOf(route);
const key = keyOf(target);
const flight = (): Flight => ({ target, superseded: false });
const tick = () => new Promise((r) => setImmediate(r));

function setup(withLease = true) {
  const clock = new ManualClock();
  const second = new BytesStore(clock.now);
  const parts = tiersWith(clock, { second, shared: true });
  const lease = new LocalFillLease(clock.now);
  const peer = new PeerFill({ lease: withLease ? lease : undefined, tiers: parts.tiers, failures: parts.failures, now: clock.now });
  return { clock, second, lease, peer, ...parts };
}

test('without a shared lease a fill fetches at once', async () => {
  const { peer } = setup(false);
  assert.deepEqual(await peer.acquire(key, flight(), undefined), {});
});

test('the fill that takes the lease fetches under its token, and releasing frees the key', async () => {
  const { peer, lease } = setup();
  const fetch = await peer.acquire(key, flight(), undefined);
  assert.ok('token' in fetch && typeof fetch.token === 'string');
  assert.equal(lease.acquire(key, 1000), undefined, 'held meanwhile');
  assert.equal(await peer.release(key, fetch.token!), true);
  assert.ok(lease.acquire(key, 1000));
});

test("a fill waiting for the lease holder answers with the holder's record as soon as its event comes", async () => {
  const { peer, lease, tiers } = setup();
  lease.acquire(key, 60_000);
  const waiting = peer.acquire(key, flight(), undefined);
  await tick();
  const held = tiers.adopt(recordFor(target));
  peer.heard({ type: 'stored', key });
  const result = await waiting;
  assert.ok('entry' in result);
  assert.equal(result.entry, held);
  assert.equal(result.via, 'joined');
});

test("a holder's failure is the waiting fill's failure: it does not fetch again", async () => {
  const { peer, lease } = setup();
  lease.acquire(key, 60_000);
  const waiting = peer.acquire(key, flight(), undefined);
  await tick();
  peer.heard({ type: 'failed', key, fwdStatus: 504, retryAt: T0 + 4000 });
  await assert.rejects(waiting, (err: ProxyError) => err.code === 'UPSTREAM_TIMEOUT' && /failed \(504\); next try in 4s/.test(err.message));
});

test('a record the holder stored before this fill took the freed lease is that fill\'s answer, and the lease goes back', async () => {
  const { peer, lease, second } = setup();
  await second.set(recordFor(target));
  const result = await peer.acquire(key, flight(), undefined);
  assert.ok('entry' in result && result.entry.fetchedAt === T0);
  assert.ok(lease.acquire(key, 1000), 'the lease was released');
});

test('a fill of an entry it refreshes waits for a newer record than that one', async () => {
  const { peer, lease, tiers } = setup();
  const previous = StoredResponse.fromRecord(recordFor(target, T0));
  lease.acquire(key, 60_000);
  const waiting = peer.acquire(key, flight(), previous);
  await tick();
  tiers.adopt(recordFor(target, T0 + 1));
  peer.heard({ type: 'stored', key });
  const result = await waiting;
  assert.ok('entry' in result && result.entry.fetchedAt === T0 + 1);
});

test('closing wakes the waiting fills, which then fetch themselves', async () => {
  const { peer, lease } = setup();
  lease.acquire(key, 60_000);
  const waiting = peer.acquire(key, flight(), undefined);
  await tick();
  peer.close();
  assert.deepEqual(await waiting, {});
});
