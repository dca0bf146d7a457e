/**
 * The store contract (issue 9): the record codec, the conformance suite for memory and disk,
 * and the disk level's bad files and faults (SPEC 2.1).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statfsSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DiskStore, fileOf } from '../src/cache/disk-store.js';
import { MemoryStore } from '../src/cache/memory-store.js';
import { assertStore } from '../src/cache/store.js';
import { decodeRecord, encodeRecord, RECORD_VERSION, RecordError, checkRecord } from '../src/cache/stored-record.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { makeRecord, plain, storeConformance, T0 } from './helpers/store-conformance.js';

const tempDir = () => mkdtempSync(join(tmpdir(), 'scrapecache-disk-'));

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
  return { log, lines, warnings: () => lines.filter((l) => l['level'] === 40) };
}

storeConformance('memory', ({ now }) => new MemoryStore(1 << 20, {}, now));
storeConformance('disk', ({ now }) => new DiskStore({ dir: tempDir(), maxBytes: 1 << 20, log: capture().log, now }));

describe('the record codec', () => {
  test('decodes what it encoded, for any key, headers and body', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.array(fc.string(), { maxLength: 6 }),
        fc.uint8Array({ maxLength: 2048 }),
        fc.option(fc.string(), { nil: undefined }),
        (path, query, headerValues, body, accept) => {
          const headers = headerValues.flatMap((v, i) => [`X-H${i}`, v]);
          const record = makeRecord({ path, query, headers, body, accept });
          assert.deepEqual(plain(decodeRecord(encodeRecord(record))), plain(record));
        },
      ),
    );
  });

  test('a record cut short at any length is refused, never decoded', () => {
    const bytes = encodeRecord(makeRecord({ body: 'up 1\nother_metric 2\n' }));
    for (let n = 0; n < bytes.length; n++) {
      assert.throws(() => decodeRecord(bytes.subarray(0, n)), (err: unknown) => err instanceof RecordError && err.reason === 'truncated', `cut at ${n}`);
    }
  });

  test('any one flipped bit is refused', () => {
    const bytes = encodeRecord(makeRecord({ body: 'up 1\n' }));
    for (let i = 6; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i]! ^= 0x10;
      assert.throws(() => decodeRecord(bad), RecordError, `bit flipped in byte ${i}`);
    }
  });

  test('a record of another version is told apart from a corrupt one', () => {
    const bytes = Buffer.from(encodeRecord(makeRecord()));
    bytes.writeUInt16BE(RECORD_VERSION + 1, 4);
    assert.throws(() => decodeRecord(bytes), (err: unknown) => err instanceof RecordError && err.reason === 'version');
  });

  test('random bytes are refused as foreign or corrupt, never decoded', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        assert.throws(() => decodeRecord(bytes), RecordError);
      }),
    );
  });

  test('a record whose key does not match its route, path, query and representation is refused', () => {
    assert.throws(() => checkRecord({ ...makeRecord(), key: 'other\0/x\0\0text' }), /field key/);
  });

  test('stores pass the contract check; a partial object does not', () => {
    assertStore(new MemoryStore(1024));
    assert.throws(() => assertStore({ name: 'x', get() {} }), /store\.set must be a function/);
  });
});

describe('the disk level', () => {
  test('writes one file per entry, named by its key, and nothing under a temporary name stays', async () => {
    const dir = tempDir();
    const store = new DiskStore({ dir, maxBytes: 1 << 20, log: capture().log });
    const a = makeRecord({ path: '/a' });
    const b = makeRecord({ path: '/b' });
    assert.equal(await store.set(a), true);
    assert.equal(await store.set(b), true);
    await store.close();
    assert.deepEqual(readdirSync(dir).sort(), [fileOf(a.key), fileOf(b.key)].sort());
    assert.deepEqual(plain(decodeRecord(readFileSync(join(dir, fileOf(a.key))))), plain(a));
  });

  test('start-up skips a truncated file, random bytes, a file of another version and a misnamed one, each with one warning, and loads the rest', async () => {
    const dir = tempDir();
    const good = makeRecord({ path: '/good' });
    writeFileSync(join(dir, fileOf(good.key)), encodeRecord(good));
    const truncated = encodeRecord(makeRecord({ path: '/truncated' }));
    writeFileSync(join(dir, fileOf(makeRecord({ path: '/truncated' }).key)), truncated.subarray(0, truncated.length - 3));
    writeFileSync(join(dir, 'f'.repeat(64) + '.rec'), Buffer.from('\x89PNG random bytes that are not a record'));
    const newer = Buffer.from(encodeRecord(makeRecord({ path: '/newer' })));
    newer.writeUInt16BE(RECORD_VERSION + 1, 4);
    writeFileSync(join(dir, fileOf(makeRecord({ path: '/newer' }).key)), newer);
    writeFileSync(join(dir, 'e'.repeat(64) + '.rec'), encodeRecord(makeRecord({ path: '/misnamed' })));
    writeFileSync(join(dir, `${fileOf(good.key)}.tmp-999999999-abcd`), truncated.subarray(0, 10));
    writeFileSync(join(dir, 'README'), 'not ours');

    const { log, warnings } = capture();
    const store = new DiskStore({ dir, maxBytes: 1 << 20, log, now: () => T0 });
    const loaded = [];
    for await (const r of store.records()) loaded.push(plain(r));
    await store.close();
    assert.deepEqual(loaded, [plain(good)]);
    assert.deepEqual(
      warnings().map((w) => w['reason']).sort(),
      ['foreign', 'misnamed', 'truncated', 'version'],
    );
    const left = readdirSync(dir);
    assert.ok(!left.some((n) => n.includes('.tmp-')), 'the stray temporary file is gone');
    assert.ok(!left.includes(fileOf(makeRecord({ path: '/truncated' }).key)), 'the truncated file is gone');
    assert.ok(left.includes(fileOf(makeRecord({ path: '/newer' }).key)), 'a newer version is left for the build that reads it');
    assert.ok(left.includes('README'));
  });

  for (const code of ['ENOSPC', 'EROFS']) {
    test(`a disk that fails with ${code} while running keeps the good file, says so once, and recovers`, async () => {
      const dir = tempDir();
      let failing = false;
      const { log, warnings, lines } = capture();
      const metrics = new Metrics({ usage: () => ({ entries: 0, bytes: 0, oldestAgeSeconds: undefined }) }, { defaultMetrics: false });
      const store = new DiskStore({
        dir,
        maxBytes: 1 << 20,
        log,
        metrics,
        now: () => T0,
        writeDurably: async (path, bytes) => {
          if (!failing) return writeFileSync(path, bytes);
          // Half the bytes land, then the disk gives up: the half file must never replace the good one.
          writeFileSync(path, bytes.subarray(0, bytes.length >> 1));
          throw Object.assign(new Error(`${code}: simulated`), { code });
        },
      });
      const good = makeRecord({ body: 'up 1\n' });
      assert.equal(await store.set(good), true);
      failing = true;
      for (let i = 0; i < 3; i++) assert.equal(await store.set(makeRecord({ body: `up ${i + 2}\n`, fetchedAt: T0 + i + 1 })), false);
      assert.equal(warnings().length, 1, 'one warning for the whole outage');
      assert.match(String(warnings()[0]!['msg']), code === 'ENOSPC' ? /disk is full/ : /read-only/);
      assert.match(await metrics.registry.metrics(), /^scrapecache_store_up\{store="disk"\} 0$/m);
      assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.rec')), [fileOf(good.key)]);
      assert.ok(!readdirSync(dir).some((n) => n.includes('.tmp-')));
      assert.deepEqual(plain(await store.get(good.key)), plain(good), 'the good entry is still whole');
      failing = false;
      const next = makeRecord({ body: 'up 9\n', fetchedAt: T0 + 10 });
      assert.equal(await store.set(next), true);
      assert.ok(lines.some((l) => l['msg'] === 'cache directory writable again'));
      assert.match(await metrics.registry.metrics(), /^scrapecache_store_up\{store="disk"\} 1$/m);
      assert.deepEqual(plain(await store.get(next.key)), plain(next));
      await store.close();
    });
  }

  test('max_bytes bounds the directory: the oldest writes go first', async () => {
    const dir = tempDir();
    const body = 'x'.repeat(1000);
    const block = statfsSync(dir).bsize;
    const one = Math.ceil(encodeRecord(makeRecord({ path: '/0', body })).length / block) * block;
    const store = new DiskStore({ dir, maxBytes: one * 3 + 10, log: capture().log, now: () => T0 });
    for (let i = 0; i < 5; i++) await store.set(makeRecord({ path: `/${i}`, body }));
    await store.close();
    const kept = readdirSync(dir).filter((n) => n.endsWith('.rec'));
    assert.deepEqual(kept.sort(), ['/2', '/3', '/4'].map((p) => fileOf(makeRecord({ path: p }).key)).sort());
    assert.ok(kept.reduce((n, f) => n + statSync(join(dir, f)).size, 0) <= one * 3 + 10);
  });

  test('max_bytes bounds what small files occupy on the file system (whole blocks), not the sum of their lengths', async () => {
    const dir = tempDir();
    const block = statfsSync(dir).bsize;
    // Records of about 1.2 KB: by length 30 would fit in 10 blocks; on disk each takes a block.
    const maxBytes = 10 * block;
    const store = new DiskStore({ dir, maxBytes, log: capture().log, now: () => T0 });
    for (let i = 0; i < 30; i++) await store.set(makeRecord({ path: `/${i}`, body: 'y'.repeat(1000) }));
    assert.equal(store.occupiedBytes, 10 * block);
    await store.close();
    const kept = readdirSync(dir).filter((n) => n.endsWith('.rec'));
    assert.equal(kept.length, 10);
    const allocated = kept.reduce((n, f) => n + statSync(join(dir, f)).blocks * 512, 0);
    assert.ok(allocated <= maxBytes, `the files occupy ${allocated} bytes, over max_bytes ${maxBytes}`);
  });

  test('an unwritable directory is a start-up error that names it', () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, '');
    assert.throws(() => new DiskStore({ dir: join(file, 'cache'), maxBytes: 1 << 20, log: capture().log }), new RegExp(`cache\\.disk\\.path ${join(file, 'cache')}: cannot write there \\(ENOTDIR\\)`));
  });

  test('a second process on the same directory is warned about, and both go on', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'scrapecache.lock'), JSON.stringify({ pid: 1, host: `${hostname()}-other` }));
    const now = new Date();
    utimesSync(join(dir, 'scrapecache.lock'), now, now);
    const { log, warnings } = capture();
    const store = new DiskStore({ dir, maxBytes: 1 << 20, log });
    assert.equal(warnings().length, 1);
    assert.match(String(warnings()[0]!['msg']), /another scrapecache process uses this cache\.disk\.path/);
    assert.equal(await store.set(makeRecord()), true);
    await store.close();
  });

  test('a lock left by a process that is gone is taken over without a warning', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'scrapecache.lock'), JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname() }));
    const { log, warnings } = capture();
    const store = new DiskStore({ dir, maxBytes: 1 << 20, log });
    assert.equal(warnings().length, 0);
    await store.close();
  });
});
