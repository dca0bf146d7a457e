/**
 * The store contract's one suite (src/cache/store.ts), run by every store: memory, disk, and
 * any later one (hono's adapter tests, undici's cacheStoreTests). Time is an injected clock the
 * suite moves, never a sleep.
 *
 *     storeConformance('disk', ({ now }) => new DiskStore({ dir, maxBytes, now, log }));
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cacheKey } from '../../src/cache/key.js';
import type { Representation } from '../../src/cache/representation.js';
import type { Store } from '../../src/cache/store.js';
import { RECORD_VERSION, recordTimes, type StoredRecord } from '../../src/cache/stored-record.js';

export const T0 = Date.UTC(2026, 0, 1);

export interface StoreContext {
  /** The clock the store must read. */
  now: () => number;
}

/** A record as a fill would store it; fields can be overridden. */
export function makeRecord(
  fields: Partial<Pick<StoredRecord, 'route' | 'path' | 'query' | 'representation' | 'accept' | 'fingerprint' | 'headers' | 'coding'>> & {
    body?: Uint8Array | string;
    fetchedAt?: number;
    ttlMs?: number;
    staleWhileRevalidateMs?: number;
    staleIfErrorMs?: number;
  } = {},
): StoredRecord {
  const route = fields.route ?? 'node';
  const path = fields.path ?? '/node/metrics';
  const query = fields.query ?? '';
  const representation: Representation = fields.representation ?? 'openmetrics';
  const body = typeof fields.body === 'string' || fields.body === undefined ? Buffer.from(fields.body ?? 'up 1\n') : fields.body;
  return {
    version: RECORD_VERSION,
    key: cacheKey(route, path, query, representation),
    route,
    path,
    query,
    representation,
    accept: 'accept' in fields ? fields.accept : 'application/openmetrics-text',
    fingerprint: fields.fingerprint ?? 'fp-1',
    status: 200,
    coding: fields.coding ?? 'identity',
    headers: fields.headers ?? ['Content-Type', 'application/openmetrics-text; version=1.0.0; charset=utf-8'],
    body,
    ...recordTimes(fields.fetchedAt ?? T0, {
      ttlMs: fields.ttlMs ?? 60_000,
      staleWhileRevalidateMs: fields.staleWhileRevalidateMs ?? 0,
      staleIfErrorMs: fields.staleIfErrorMs ?? 0,
    }),
  };
}

/** The contract's fields of a record (whatever else a store's object carries), the body as base64, for deepEqual. */
export function plain(record: StoredRecord | undefined): unknown {
  if (record === undefined) return undefined;
  const r = record;
  return {
    version: r.version,
    key: r.key,
    route: r.route,
    path: r.path,
    query: r.query,
    representation: r.representation,
    accept: r.accept,
    fingerprint: r.fingerprint,
    status: r.status,
    coding: r.coding,
    headers: [...r.headers],
    body: Buffer.from(r.body).toString('base64'),
    fetchedAt: r.fetchedAt,
    staleAt: r.staleAt,
    revalidateUntil: r.revalidateUntil,
    errorUntil: r.errorUntil,
    deadAt: r.deadAt,
  };
}

export function storeConformance(name: string, makeStore: (context: StoreContext) => Store | Promise<Store>): void {
  describe(`store contract: ${name}`, () => {
    async function withStore(test: (store: Store, clock: { at: number }) => Promise<void>): Promise<void> {
      const clock = { at: T0 };
      const store = await makeStore({ now: () => clock.at });
      try {
        await test(store, clock);
      } finally {
        await store.close();
      }
    }

    it('answers nothing for a key it never held', () =>
      withStore(async (store) => {
        assert.equal(await store.get(cacheKey('node', '/node/metrics', '', 'text')), undefined);
      }));

    it('returns every field of what was set, the body byte for byte', () =>
      withStore(async (store) => {
        const body = Buffer.from([0, 1, 2, 255, 0x1f, 0x8b, 0, 10, 13]);
        const record = makeRecord({
          query: 'module=http_2xx&target=a%20b',
          representation: 'accept:text/plain',
          accept: undefined,
          coding: 'gzip',
          headers: ['Content-Type', 'text/plain; version=0.0.4', 'X-Multi', 'a', 'X-Multi', 'b'],
          body,
          staleWhileRevalidateMs: 5000,
          staleIfErrorMs: 60_000,
        });
        assert.equal(await store.set(record), true);
        assert.deepEqual(plain(await store.get(record.key)), plain(record));
      }));

    it('a second set of a key replaces the first', () =>
      withStore(async (store, clock) => {
        await store.set(makeRecord({ body: 'up 1\n' }));
        clock.at = T0 + 10_000;
        const newer = makeRecord({ body: 'up 2\n', fetchedAt: T0 + 10_000 });
        await store.set(newer);
        assert.deepEqual(plain(await store.get(newer.key)), plain(newer));
      }));

    it('keeps representations of one path apart', () =>
      withStore(async (store) => {
        const om = makeRecord({ representation: 'openmetrics', body: 'om\n' });
        const text = makeRecord({ representation: 'text', body: 'text\n' });
        await store.set(om);
        await store.set(text);
        assert.deepEqual(plain(await store.get(om.key)), plain(om));
        assert.deepEqual(plain(await store.get(text.key)), plain(text));
      }));

    it('still returns a stale record until its deadAt, and nothing from then on', () =>
      withStore(async (store, clock) => {
        const record = makeRecord({ ttlMs: 10_000, staleIfErrorMs: 20_000 });
        await store.set(record);
        clock.at = record.deadAt - 1;
        assert.deepEqual(plain(await store.get(record.key)), plain(record));
        clock.at = record.deadAt;
        assert.equal(await store.get(record.key), undefined);
      }));

    it('delete removes one key and says whether it held it', () =>
      withStore(async (store) => {
        const a = makeRecord({ path: '/a' });
        const b = makeRecord({ path: '/b' });
        await store.set(a);
        await store.set(b);
        assert.equal(await store.delete(a.key), true);
        assert.equal(await store.delete(a.key), false);
        assert.equal(await store.get(a.key), undefined);
        assert.deepEqual(plain(await store.get(b.key)), plain(b));
      }));

    it('deleteSelected removes what a route, path or path+query selection names, and nothing else', () =>
      withStore(async (store) => {
        const records = [
          makeRecord({ route: 'node', path: '/node/metrics' }),
          makeRecord({ route: 'node', path: '/node/metrics', representation: 'text' }),
          makeRecord({ route: 'probe', path: '/probe', query: 'target=a' }),
          makeRecord({ route: 'probe', path: '/probe', query: 'target=a', representation: 'text' }),
          makeRecord({ route: 'probe', path: '/probe', query: 'target=b' }),
          makeRecord({ route: 'pages', path: '/pages/x' }),
          makeRecord({ route: 'pages', path: '/pages/y' }),
        ];
        for (const r of records) await store.set(r);
        const left = async () => {
          const keys = [];
          for (const r of records) if ((await store.get(r.key)) !== undefined) keys.push(`${r.route} ${r.path}?${r.query} ${r.representation}`);
          return keys;
        };
        assert.equal(await store.deleteSelected({ path: '/probe', route: 'probe', query: 'target=a' }), 2);
        assert.equal(await store.deleteSelected({ route: 'pages', path: '/pages/x' }), 1);
        assert.deepEqual(await left(), ['node /node/metrics? openmetrics', 'node /node/metrics? text', 'probe /probe?target=b openmetrics', 'pages /pages/y? openmetrics']);
        assert.equal(await store.deleteSelected({ route: 'node' }), 2);
        assert.equal(await store.deleteSelected({}), 2);
        assert.deepEqual(await left(), []);
      }));

    it('lists every live record for loading, and no dead one', async (t) => {
      await withStore(async (store, clock) => {
        if (!store.records) {
          t.skip(`${name} is read through, not loaded`);
          return;
        }
        const live = makeRecord({ path: '/live', ttlMs: 60_000 });
        const dead = makeRecord({ path: '/dead', ttlMs: 1000 });
        await store.set(live);
        await store.set(dead);
        clock.at = T0 + 2000;
        const listed = [];
        for await (const r of store.records()) listed.push(plain(r));
        assert.deepEqual(listed, [plain(live)]);
      });
    });
  });
}
