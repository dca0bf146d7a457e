/** Refresh failures and their back-off, local and learned from peers (src/cache/failure-book.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FailureBook } from '../src/cache/failure-book.js';
import { ManualClock, T0 } from './helpers/cache-parts.js';

const entry = { fetchedAt: T0, staleAt: T0 + 60_000 };

test('the back-off doubles with each failure of the same entry, from one second', () => {
  const clock = new ManualClock();
  const book = new FailureBook(clock.now);
  assert.equal(book.failed('k', entry, 502).retryAt, T0 + 1000);
  assert.equal(book.failed('k', entry, 502).retryAt, T0 + 2000);
  const third = book.failed('k', entry, 'timeout');
  assert.deepEqual(third, { count: 3, retryAt: T0 + 4000, fwdStatus: 'timeout', fetchedAt: T0 });
});

test('the back-off never exceeds the entry ttl', () => {
  const book = new FailureBook(() => T0);
  const short = { fetchedAt: T0, staleAt: T0 + 3000 };
  for (let i = 0; i < 5; i++) book.failed('k', short, 502);
  assert.equal(book.of('k', short)!.retryAt, T0 + 3000);
});

test('a failure belongs to the entry it refreshed: a newer entry starts clean', () => {
  const book = new FailureBook(() => T0);
  book.failed('k', entry, 502);
  assert.ok(book.of('k', entry));
  assert.equal(book.of('k', { fetchedAt: T0 + 1 }), undefined);
  assert.equal(book.failed('k', { fetchedAt: T0 + 1, staleAt: T0 + 60_001 }, 502).count, 1);
});

test("a peer's failure holds here with the peer's retry time, for the copy held here", () => {
  const clock = new ManualClock();
  const book = new FailureBook(clock.now);
  book.learn('k', T0 + 5000, 504, T0);
  assert.equal(book.of('k', entry)?.retryAt, T0 + 5000);
  assert.equal(book.pending('k', entry)?.fwdStatus, 504, 'a fill waiting for the peer answers its failure');
  assert.equal(book.pending('k', undefined), undefined, 'not for a fill of nothing held');
  clock.advance(5000);
  assert.equal(book.pending('k', entry), undefined, 'the back-off is over');
});

test('clearing a key lets the next refresh go upstream at once', () => {
  const book = new FailureBook(() => T0);
  book.failed('k', entry, 502);
  book.clear('k');
  assert.equal(book.of('k', entry), undefined);
});
