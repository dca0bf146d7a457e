/** Prefetch timers and their back-off (src/cache/prefetcher.ts, SPEC 3.4), on an injected clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ScrapeTarget } from '../src/cache/filler.js';
import { keyOf } from '../src/cache/key.js';
import { Prefetcher } from '../src/cache/prefetcher.js';
import type { Route } from '../src/config/types.js';
import { StoredResponse } from '../src/cache/stored-response.js';
import { ManualClock, nodeRoute, recordFor, T0, targetOf } from './helpers/cache-parts.js';

function setup(route: Route, enabled = true) {
  const clock = new ManualClock();
  const routes = new Map([[route.name, route]]);
  const held = new Map<string, StoredResponse>();
  const refreshed: Array<{ target: ScrapeTarget; held: StoredResponse | undefined }> = [];
  let fired: () => void = () => undefined;
  const prefetcher = new Prefetcher(
    enabled,
    {
      route: (name) => routes.get(name),
      peek: (key) => held.get(key),
      refresh: (target, entry) => {
        refreshed.push({ target, held: entry });
        fired();
      },
    },
    clock,
  );
  const nextRefresh = () => new Promise<void>((resolve) => (fired = resolve));
  return { clock, routes, held, refreshed, prefetcher, nextRefresh };
}

test('an entry is refreshed ahead of its expiry, replacing the one held', async () => {
  const route = nodeRoute('    prefetch: true\n');
  const { clock, held, refreshed, prefetcher, nextRefresh } = setup(route);
  const target = targetOf(route);
  const entry = StoredResponse.fromRecord(recordFor(target, T0));
  held.set(entry.key, entry);
  // A minute's ttl refreshes 6 s ahead; the clock says that time has come.
  clock.at = T0 + 54_000;
  const refresh = nextRefresh();
  prefetcher.schedule(target, entry);
  assert.equal(prefetcher.has(entry.key), true);
  await refresh;
  assert.equal(refreshed[0]!.held, entry);
  assert.equal(prefetcher.has(entry.key), false, 'the timer is spent');
});

test('an entry whose refresh time has not come keeps its timer; close stops it', () => {
  const route = nodeRoute('    prefetch: true\n');
  const { refreshed, prefetcher } = setup(route);
  const target = targetOf(route);
  const entry = StoredResponse.fromRecord(recordFor(target, T0));
  prefetcher.schedule(target, entry);
  assert.equal(prefetcher.has(entry.key), true);
  prefetcher.close();
  assert.equal(prefetcher.has(entry.key), false);
  assert.equal(refreshed.length, 0);
});

test('a failed prefetch is tried again after a back-off that doubles', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const route = nodeRoute('    prefetch: true\n');
  const { refreshed, prefetcher } = setup(route);
  const target = targetOf(route, 'protobuf', 'application/vnd.google.protobuf');
  prefetcher.failed(target, keyOf(target));
  t.mock.timers.tick(999);
  assert.equal(refreshed.length, 0);
  t.mock.timers.tick(1);
  assert.equal(refreshed.length, 1, 'retried after 1 s');
  prefetcher.failed(target, keyOf(target));
  t.mock.timers.tick(1999);
  assert.equal(refreshed.length, 1);
  t.mock.timers.tick(1);
  assert.equal(refreshed.length, 2, 'retried after 2 s');
  prefetcher.close();
});

test('a disabled prefetcher (a cluster worker) plans nothing', () => {
  const route = nodeRoute('    prefetch: true\n');
  const { prefetcher } = setup(route, false);
  const target = targetOf(route);
  prefetcher.schedule(target, StoredResponse.fromRecord(recordFor(target)));
  prefetcher.failed(target, keyOf(target));
  assert.equal(prefetcher.has(keyOf(target)), false);
});

test('a reload that turns prefetch off stops the route timers', () => {
  const route = nodeRoute('    prefetch: true\n');
  const { routes, prefetcher } = setup(route);
  const target = targetOf(route);
  prefetcher.schedule(target, StoredResponse.fromRecord(recordFor(target)));
  prefetcher.retain();
  assert.equal(prefetcher.has(keyOf(target)), true, 'the route still prefetches');
  routes.set(route.name, nodeRoute());
  prefetcher.retain();
  assert.equal(prefetcher.has(keyOf(target)), false);
});

test('an evicted representation other than the start-up one is not fetched again by prefetch', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const route = nodeRoute('    prefetch: true\n');
  const { clock, refreshed, prefetcher } = setup(route);
  const target = targetOf(route, 'text;0.0.4');
  const entry = StoredResponse.fromRecord(recordFor(target, T0));
  clock.at = T0 + 60_000;
  prefetcher.schedule(target, entry);
  // The timer fires at once (its time has passed); nothing is held under its key.
  t.mock.timers.tick(0);
  assert.equal(prefetcher.has(entry.key), false);
  assert.equal(refreshed.length, 0);
});
