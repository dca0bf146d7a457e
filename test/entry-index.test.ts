/**
 * The memory level's index (issue 21): per-route gauges, selections and key order kept in step
 * with what the LRU really holds, through any mix of fills, replacements, evictions,
 * invalidations, resizes and sweeps; and GET /cache's pages on a real proxy.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { expiresAt, isDead } from '../src/cache/freshness.js';
import { MemoryStore } from '../src/cache/memory-store.js';
import { selects, type EntrySelection } from '../src/cache/store.js';
import type { StoredResponse } from '../src/cache/stored-response.js';
import { parseEntryView, SORT_KEYS } from '../src/pages/status-model.js';
import { MAX_RANKED_ROWS, viewPage } from '../src/server/entry-listing.js';
import { startFakeExporter } from './helpers/fake-exporter.js';
import { get, post, SCRAPE_HEADERS, startProxy } from './helpers/proxy.js';
import { makeRecord, T0 } from './helpers/store-conformance.js';

const closers: Array<() => Promise<unknown> | unknown> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

const routeArb = fc.constantFrom('a', 'b', 'c');
const pathArb = fc.constantFrom('/x', '/y');
const queryArb = fc.constantFrom('', 't=1', 't=2', 't=10', 'module=if_mib&t=1');
const repArb = fc.constantFrom('text' as const, 'openmetrics' as const);
const selectionArb: fc.Arbitrary<EntrySelection> = fc.oneof(
  fc.constant({}),
  fc.record({ route: routeArb }),
  fc.record({ route: routeArb, path: pathArb }),
  fc.record({ route: routeArb, path: pathArb, query: queryArb }),
  fc.record({ path: pathArb }),
);

type Op =
  | { op: 'set'; route: string; path: string; query: string; representation: 'text' | 'openmetrics'; size: number; age: number; ttl: number; sie: number }
  | { op: 'delete'; route: string; path: string; query: string; representation: 'text' | 'openmetrics' }
  | { op: 'deleteSelected'; selection: EntrySelection }
  | { op: 'resize'; pick: number }
  | { op: 'tick'; ms: number }
  | { op: 'sweep' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), route: routeArb, path: pathArb, query: queryArb, representation: repArb, size: fc.integer({ min: 1, max: 3000 }), age: fc.integer({ min: 0, max: 120_000 }), ttl: fc.integer({ min: 1, max: 60_000 }), sie: fc.integer({ min: 0, max: 60_000 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), route: routeArb, path: pathArb, query: queryArb, representation: repArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteSelected' as const), selection: selectionArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('resize' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 90_000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('sweep' as const) }) },
);

/** What a walk of every entry says: the truth the index must keep without walking. */
function walked(store: MemoryStore, route: string, now: number): { entries: number; bytes: number; oldestAgeSeconds: number | undefined } {
  let entries = 0;
  let bytes = 0;
  let oldest: number | undefined;
  for (const e of store.entries()) {
    if (e.route !== route) continue;
    entries++;
    bytes += e.bytes;
    if (!isDead(e, now) && (oldest === undefined || e.fetchedAt < oldest)) oldest = e.fetchedAt;
  }
  return { entries, bytes, oldestAgeSeconds: oldest === undefined ? undefined : Math.max(0, (now - oldest) / 1000) };
}

test('per-route entries, bytes and oldest age, selections and key order equal a walk of every entry, after any mix of operations', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 80 }), fc.integer({ min: 4000, max: 30_000 }), async (ops, maxBytes) => {
      let now = T0;
      const evicted: StoredResponse[] = [];
      const store = new MemoryStore(maxBytes, { onEvict: (e) => evicted.push(e) }, () => now);
      try {
        for (const o of ops) {
          switch (o.op) {
            case 'set':
              store.set(makeRecord({ route: o.route, path: o.path, query: o.query, representation: o.representation, body: 'x'.repeat(o.size), fetchedAt: now - o.age, ttlMs: o.ttl, staleIfErrorMs: o.sie }));
              break;
            case 'delete':
              store.delete(makeRecord({ route: o.route, path: o.path, query: o.query, representation: o.representation }).key);
              break;
            case 'deleteSelected': {
              const expected = [...store.entries()].filter((e) => selects(o.selection, e)).length;
              assert.equal(store.countSelected(o.selection), expected);
              assert.equal(store.deleteSelected(o.selection), expected);
              break;
            }
            case 'resize': {
              // A converted variant makes an entry larger; the store is told, as ScrapeCache does.
              const held = [...store.entries()];
              if (held.length === 0) break;
              const entry = held[o.pick % held.length]!;
              await entry.convert('gzip');
              store.resize(entry);
              break;
            }
            case 'tick':
              now += o.ms;
              break;
            case 'sweep':
              store.sweep(now);
              break;
          }
          for (const route of ['a', 'b', 'c']) assert.deepEqual(store.usage(route), walked(store, route, now), `route ${route} after ${JSON.stringify(o)}`);
        }
        const all = [...store.entries()];
        assert.equal(store.count, all.length);
        assert.deepEqual([...store.inKeyOrder()].map((e) => e.key), all.map((e) => e.key).sort());
        for (const selection of [{}, { route: 'a' }, { route: 'b', path: '/x' }, { route: 'c', path: '/y', query: 't=1' }, { path: '/x' }]) {
          assert.deepEqual(store.selected(selection).map((e) => e.key).sort(), all.filter((e) => selects(selection, e)).map((e) => e.key).sort());
        }
        // Nothing let go is still counted or listed.
        for (const e of evicted) assert.ok(!store.selected({ route: e.route, path: e.path, query: e.query }).includes(e) || store.peek(e.key) === e);
      } finally {
        store.close();
      }
    }),
    { numRuns: 150 },
  );
});

test("the status page's pages equal sorting and filtering every entry at once, for any sort, order, filter and page", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ route: routeArb, path: pathArb, query: queryArb, representation: repArb, size: fc.integer({ min: 1, max: 50 }), age: fc.integer({ min: 0, max: 50_000 }), hits: fc.nat({ max: 5 }) }), { maxLength: 60 }),
      fc.constantFrom(...SORT_KEYS),
      fc.constantFrom('asc', 'desc'),
      fc.constantFrom('', 'A', 't=1', '/y', 'nothing'),
      fc.integer({ min: 1, max: 5 }),
      async (rows, sort, order, filter, page) => {
        const store = new MemoryStore(1 << 30, {}, () => T0);
        // Hits are counted beside the entries (src/cache/hit-counter.ts), here by key.
        const hitsByKey = new Map<string, number>();
        const hitsOf = (e: StoredResponse) => hitsByKey.get(e.key) ?? 0;
        try {
          for (const r of rows) {
            store.set(makeRecord({ route: r.route, path: r.path, query: r.query, representation: r.representation, body: 'x'.repeat(r.size), fetchedAt: T0 - r.age }));
            hitsByKey.set(makeRecord(r).key, r.hits);
          }
          const view = parseEntryView(new URLSearchParams({ sort, order, filter }));
          const pageSize = 7;
          const shown = await viewPage(store, view, page, pageSize, hitsOf);
          // The naive answer: every entry, filtered, sorted, then the page cut out.
          const key = (e: StoredResponse): string | number =>
            ({ route: e.key, path: `${e.path}\u0000${e.query}`, query: e.query, representation: e.representation, bytes: e.bytes, age: -e.fetchedAt, ttl: expiresAt(e), hits: hitsOf(e) })[sort];
          const cmp = (a: StoredResponse, b: StoredResponse) => {
            const [x, y] = [key(a), key(b)];
            const base = x < y ? -1 : x > y ? 1 : 0;
            return (order === 'asc' ? base : -base) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
          };
          const needle = filter.toLowerCase();
          const all = [...store.entries()].filter((e) => [e.route, e.path, e.query, e.representation].some((f) => f.toLowerCase().includes(needle))).sort(cmp);
          const pages = Math.max(1, Math.ceil(Math.min(all.length, MAX_RANKED_ROWS) / pageSize));
          const expectedPage = Math.min(page, pages);
          assert.equal(shown.matched, all.length);
          assert.equal(shown.pages, pages);
          assert.equal(shown.page, expectedPage);
          assert.deepEqual(shown.entries.map((e) => e.key), all.slice((expectedPage - 1) * pageSize, expectedPage * pageSize).map((e) => e.key));
        } finally {
          store.close();
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('a later page of the default view walks past the rows before it in slices that let scrapes through, and is the right page', async () => {
  const store = new MemoryStore(1 << 30, {}, () => T0);
  try {
    for (let i = 0; i < 4500; i++) store.set(makeRecord({ route: 'a', path: '/x', query: `t=${String(i).padStart(5, '0')}`, representation: 'text', body: 'x', fetchedAt: T0 }));
    const view = parseEntryView(new URLSearchParams());
    const all = [...store.entries()].map((e) => e.key).sort();
    for (const page of [1, 21, 45]) {
      // Work queued before the listing starts: it runs before a listing that yields ends.
      let ranBetween = false;
      setImmediate(() => (ranBetween = true));
      const shown = await viewPage(store, view, page, 100, () => 0);
      assert.deepEqual(shown.entries.map((e) => e.key), all.slice((page - 1) * 100, page * 100), `page ${page}`);
      assert.equal(shown.page, page);
      assert.equal(shown.pages, 45);
      // Page 1 is read straight from key order; pages past 2 000 rows (one slice) yield on the way.
      assert.equal(ranBetween, page * 100 > 2100, `page ${page} yielded: ${ranBetween}`);
    }
  } finally {
    store.close();
  }
});

test('GET /cache pages with a limit and a cursor: every entry held throughout comes once, in key order, while entries come and go between pages', async () => {
  const e = await startFakeExporter();
  closers.push(() => e.close());
  const proxy = await startProxy(`routes:
  - name: multi
    path: /probe
    upstream: ${e.url}/probe
    query_keys: [target]
  - name: other
    path: /other
    upstream: ${e.url}/other
`);
  closers.push(() => proxy.close());
  for (let i = 0; i < 60; i++) await get(`${proxy.url}/probe?target=t${String(i).padStart(2, '0')}`, SCRAPE_HEADERS);
  await get(`${proxy.url}/other`, SCRAPE_HEADERS);

  // Without a limit: the array as before, every entry of a small cache, no next page.
  const whole = await get(`${proxy.adminUrl}/cache`);
  const all = JSON.parse(whole.body.toString()) as Array<{ route: string; query: string }>;
  assert.equal(all.length, 61);
  assert.equal(whole.headers['link'], undefined);
  assert.equal(whole.headers['x-total-count'], '61');

  const seen: string[] = [];
  let next: string | undefined = `/cache?route=multi&limit=25`;
  let pages = 0;
  while (next !== undefined) {
    const res = await get(`${proxy.adminUrl}${next}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-total-count'], pages === 0 ? '60' : '59');
    const rows = JSON.parse(res.body.toString()) as Array<{ route: string; query: string }>;
    assert.ok(rows.length <= 25);
    for (const r of rows) assert.equal(r.route, 'multi');
    seen.push(...rows.map((r) => r.query));
    const link = /^<([^>]+)>; rel="next"$/.exec(String(res.headers['link'] ?? ''));
    next = link?.[1];
    if (pages === 0) {
      // Between pages: one key already listed goes, one after the cursor goes, one new comes.
      await post(`${proxy.adminUrl}/invalidate`, { path: '/probe', query: 'target=t03' });
      await post(`${proxy.adminUrl}/invalidate`, { path: '/probe', query: 'target=t40' });
      await get(`${proxy.url}/probe?target=t99`, SCRAPE_HEADERS);
    }
    pages++;
  }
  assert.equal(pages, 3);
  const expected = Array.from({ length: 60 }, (_, i) => `target=t${String(i).padStart(2, '0')}`).filter((q) => q !== 'target=t40').concat('target=t99');
  assert.deepEqual(seen, expected, 'each key once, in key order: the new one after the cursor listed, the one gone not');

  assert.equal((await get(`${proxy.adminUrl}/cache?limit=0`)).status, 400);
  assert.equal((await get(`${proxy.adminUrl}/cache?limit=10001`)).status, 400);
  assert.equal((await get(`${proxy.adminUrl}/cache?cursor=not%20a%20cursor`)).status, 400);
  assert.equal((await get(`${proxy.adminUrl}/cache?cursor=${Buffer.from('abc').toString('base64url')}`)).status, 400);
});

test('the status page shows one page of entries whatever their number, sorted and filtered by the server', async () => {
  const e = await startFakeExporter();
  closers.push(() => e.close());
  const proxy = await startProxy(`routes:
  - name: multi
    path: /probe
    upstream: ${e.url}/probe
    query_keys: [target]
`);
  closers.push(() => proxy.close());
  const page = async (query = '') => (await get(`${proxy.adminUrl}/${query}`)).body.toString();
  const rowsOf = (html: string) => (html.match(/<tr data-row="multi \/probe\?[^"]*"/g) ?? []).map((r) => r.slice('<tr data-row="multi /probe?'.length, -1));
  for (let i = 0; i < 250; i++) await get(`${proxy.url}/probe?target=t${String(i).padStart(3, '0')}`, SCRAPE_HEADERS);
  const first = await page();
  assert.equal(rowsOf(first).length, 100);
  assert.equal(rowsOf(first)[0], 'target=t000 openmetrics;1.0.0');
  assert.match(first, /data-live="entries\/count">rows 1-100 of 250</);
  assert.match(first, /data-live="route\/multi\/entries" class="big">250 /);
  const size250 = first.length;

  const third = await page('?page=3');
  assert.deepEqual(rowsOf(third).slice(0, 2), ['target=t200 openmetrics;1.0.0', 'target=t201 openmetrics;1.0.0']);
  assert.equal(rowsOf(third).length, 50);
  assert.equal(rowsOf(await page('?page=99')).length, 50, 'a page past the last shows the last');

  // Hits make an order of their own: sorted on the server across every entry, not within a page.
  for (let i = 0; i < 3; i++) await get(`${proxy.url}/probe?target=t217`, SCRAPE_HEADERS);
  await get(`${proxy.url}/probe?target=t042`, SCRAPE_HEADERS);
  assert.deepEqual(rowsOf(await page('?sort=hits&order=desc')).slice(0, 2), ['target=t217 openmetrics;1.0.0', 'target=t042 openmetrics;1.0.0']);
  const filtered = await page('?filter=T21');
  assert.deepEqual(rowsOf(filtered), Array.from({ length: 10 }, (_, i) => `target=t21${i} openmetrics;1.0.0`));
  assert.match(filtered, /data-live="entries\/count">10 of 250</);

  for (let i = 250; i < 1000; i++) await get(`${proxy.url}/probe?target=t${String(i).padStart(3, '0')}`, SCRAPE_HEADERS);
  const at1000 = await page();
  assert.equal(rowsOf(at1000).length, 100);
  assert.ok(at1000.length < size250 * 1.1, `the page grew from ${size250} to ${at1000.length} bytes with four times the entries`);
});
