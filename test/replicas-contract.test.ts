/**
 * The parts ScrapeCache is given, used the way replicas sharing one level use them (SPEC 2.2,
 * issue 10 builds on this): one shared store of copies, one fill lease, one event bus.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LocalEventHub } from '../src/cache/event-bus.js';
import { LocalFillLease } from '../src/cache/fill-lease.js';
import { MemoryStore } from '../src/cache/memory-store.js';
import { ScrapeCache, type Lookup, type ScrapeTarget } from '../src/cache/scrape-cache.js';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { UpstreamFiller } from '../src/upstream/upstream-filler.js';
import { BytesStore } from './helpers/bytes-store.js';
import { startFakeExporter, type FakeExporter } from './helpers/fake-exporter.js';
import { PROMETHEUS_ACCEPT } from './helpers/proxy.js';
import { storeConformance } from './helpers/store-conformance.js';

storeConformance('bytes (a shared level that returns copies)', ({ now }) => new BytesStore(now));

let exporter: FakeExporter;
before(async () => {
  exporter = await startFakeExporter();
});
after(() => exporter.close());

function replicas(n: number) {
  const file = join(mkdtempSync(join(tmpdir(), 'scrapecache-replicas-')), 'proxy.yaml');
  writeFileSync(file, `routes:\n  - name: node\n    path: /node/metrics\n    upstream: ${exporter.url}/metrics\n    ttl: 1h\n`);
  const route = loadConfig(file).routes[0]!;
  const shared = new BytesStore();
  const lease = new LocalFillLease();
  const hub = new LocalEventHub();
  const log = createLogger('error');
  const caches = Array.from(
    { length: n },
    () => new ScrapeCache({ memory: new MemoryStore(1 << 20), filler: new UpstreamFiller(undefined, log), second: shared, lease, bus: hub.bus(), log }),
  );
  for (const c of caches) c.setRoutes([route]);
  const target: ScrapeTarget = { route, path: '/node/metrics', query: '', representation: 'openmetrics;1.0.0', accept: PROMETHEUS_ACCEPT };
  return { caches, target, shared, close: () => Promise.all(caches.map((c) => c.close())) };
}

test('caches sharing a lease, a bus and a level fetch a key once; the others wait and answer collapsed', async () => {
  const { caches, target, close } = replicas(3);
  try {
    const before = exporter.count;
    exporter.delayMs = 200;
    const answers = await Promise.all(caches.map((c) => c.lookup(target) as Promise<Lookup>));
    exporter.delayMs = 0;
    assert.equal(exporter.count, before + 1);
    assert.deepEqual(answers.map((a) => a.cache).sort(), ['collapsed', 'collapsed', 'miss']);
    assert.equal(new Set(answers.map((a) => a.entry.body.toString('base64'))).size, 1);
    for (const c of caches) {
      const hit = c.lookup(target);
      assert.ok(!(hit instanceof Promise) && hit.cache === 'hit', 'every memory holds the stored record');
    }
  } finally {
    await close();
  }
});

test('an invalidation on one cache reaches the others and the shared level', async () => {
  const { caches, target, shared, close } = replicas(2);
  try {
    await caches[0]!.lookup(target);
    assert.equal(shared.values.size, 1);
    await caches[0]!.invalidate({ route: 'node' });
    assert.equal(shared.values.size, 0);
    const before = exporter.count;
    const again = await caches[1]!.lookup(target);
    assert.equal(again.cache, 'miss');
    assert.equal(exporter.count, before + 1);
  } finally {
    await close();
  }
});

test('a cache that starts late reads the shared level on a miss: a hit, no fetch', async () => {
  const { caches, target, close } = replicas(2);
  try {
    await caches[0]!.lookup(target);
    const before = exporter.count;
    // Drop the second memory's copy as a restart would.
    (caches[1] as unknown as { memory: MemoryStore }).memory.deleteSelected({});
    const found = await caches[1]!.lookup(target);
    assert.equal(found.cache, 'hit');
    assert.equal(exporter.count, before);
  } finally {
    await close();
  }
});
